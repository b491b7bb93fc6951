using System.Diagnostics;
using ClusterConv.Cluster.Telemetry;
using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Optimizers;
using ClusterConv.Engine.Specs;
using ClusterConv.Engine.Statistics;
using Orleans.Runtime;

namespace ClusterConv.Cluster;

/// <summary>A rollback asked for a checkpoint a shard does not hold: the job cannot continue consistently.</summary>
[GenerateSerializer, Alias("clusterconv.CheckpointMissingException")]
public sealed class CheckpointMissingException : Exception
{
    public CheckpointMissingException()
    {
    }

    public CheckpointMissingException(string message)
        : base(message)
    {
    }

    public CheckpointMissingException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>A parameter-server shard's checkpoint: weights and optimizer state of its slice after <see cref="Step"/> steps.</summary>
[GenerateSerializer, Alias("clusterconv.ParameterServerState")]
public sealed class ParameterServerState
{
    [Id(0)] public string JobId { get; set; } = string.Empty;

    [Id(1)] public long Step { get; set; }

    [Id(2)] public int SliceStart { get; set; }

    [Id(3)] public byte[] Weights { get; set; } = [];

    [Id(4)] public byte[] OptimizerState { get; set; } = [];

    /// <summary>
    /// Hand-over only (bsp): the weights of version Step − 1 as served, so that a step recomputed after the hand-over
    /// starts from the weights it started from before. Empty in checkpoints.
    /// </summary>
    [Id(5)] public byte[][] PriorSegments { get; set; } = [];
}

/// <summary>
/// One slice of the trainable-parameter vector with its optimizer state. Collects the gradient contributions of a
/// step as reduction-tree nodes (each chunk once), reduces them over the fixed tree and applies the optimizer once
/// per step, so pushing or applying a step twice changes nothing. Version = steps applied.
/// </summary>
[SpreadPlacement]
public sealed class ParameterServerGrain : Grain, IParameterServerGrain
{
    public const string StorageName = "clusterconv-checkpoints";

    private readonly IPersistentState<ParameterServerState> checkpoint;
    private readonly IPersistentState<ParameterServerState> handover;
    private readonly IPersistentState<ParameterServerState> previous;
    private readonly Dictionary<long, Dictionary<TreeNode, PendingNode>> pending = [];
    private JobSpec? spec;
    private ShardRange slice;
    private float[] weights = [];
    private float[] state = [];
    private IOptimizer? optimizer;
    private ILearningRateSchedule? schedule;
    private Segment[] segments = [];
    private long version;
    private byte[][]? snapshot;
    private ApplyReport? lastApplied;

    // This activation continued from a checkpoint of its own accord (not at the job's order) and has not said so yet.
    private bool restoredUnreported;

    // This activation continued from a graceful hand-over and has not told the job yet (it counts a rebalance).
    private bool handedOverUnreported;

    // Buffers of applied steps, reused so each step does not put megabytes on the large-object heap.
    private readonly Stack<float[]> free = new();

    // ssp and async: the (round, first micro-batch) contributions already applied, oldest first, bounded.
    private readonly HashSet<(long Round, int Node)> appliedRounds = [];
    private readonly Queue<(long Round, int Node)> appliedOrder = new();
    private const int AppliedRoundsKept = 4096;
    private readonly Dictionary<TreeNode, float[]> sums = [];
    private byte[][]? prior;

    // bsp: a set of weight segments nobody reads any more, written over by the next version's snapshot.
    private byte[][]? spareSegments;

    // Statistics steps: the weights before the update.
    private float[]? before;
    private long lastStep = -1;

    // Checksum of the current weights (bsp: workers send theirs with each push), and the last step each worker was
    // reported at for a refusal or a mismatch, so a worker's many chunks make one event per step and shard.
    private ulong? servedChecksum;
    private readonly Dictionary<int, long> refusalReported = [];
    private readonly Dictionary<int, long> mismatchReported = [];
    private TaskCompletionSource versionChanged = new();
    private readonly string siloName;

    public ParameterServerGrain(
        [PersistentState("ps", StorageName)] IPersistentState<ParameterServerState> checkpoint,
        [PersistentState("handover", StorageName)] IPersistentState<ParameterServerState> handover,
        [PersistentState("ps-previous", StorageName)] IPersistentState<ParameterServerState> previous,
        ILocalSiloDetails silo)
    {
        ArgumentNullException.ThrowIfNull(silo);
        this.checkpoint = checkpoint;
        this.handover = handover;
        this.previous = previous;
        siloName = silo.Name;
    }

    /// <summary>
    /// A graceful deactivation (silo shutting down, SIGTERM) leaves the exact current state for the next activation,
    /// apart from the checkpoints a rollback uses, so training goes on without losing a step.
    /// </summary>
    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (spec is not null && version > 0)
        {
            handover.State = Capture(spec, withPrior: true);
            await handover.WriteStateAsync(cancellationToken);
        }
    }

    private ParameterServerState Capture(JobSpec jobSpec, bool withPrior = false) => new()
    {
        JobId = jobSpec.JobId,
        Step = version,
        SliceStart = slice.Start,
        Weights = WireFormat.ToBytes(weights),
        OptimizerState = WireFormat.ToBytes(state),
        // Copies: these segments are written over once they are two versions old.
        PriorSegments = withPrior && prior is not null ? prior.Select(segment => segment.ToArray()).ToArray() : [],
    };

    private int ShardIndex => (int)this.GetPrimaryKeyLong(out _);

    public Task<long> InitializeAsync(JobSpec spec, bool fresh)
    {
        ArgumentNullException.ThrowIfNull(spec);
        this.spec = null;
        Setup(spec, fresh);
        restoredUnreported = false;
        return Task.FromResult(version);
    }

    public async Task<WeightsChunk> GetWeightsAsync(JobSpec spec, int chunk, long minVersion)
    {
        Ensure(spec);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (version < minVersion && DateTime.UtcNow < deadline)
        {
            var changed = versionChanged.Task;
            await Task.WhenAny(changed, Task.Delay(deadline - DateTime.UtcNow));
        }

        // The weights of the version asked for: the current ones, or those of the version before when this shard has
        // already applied the step (a step recomputed after a worker failed must see the weights it started from on
        // every shard, also on shards that applied it before the failure).
        var (ofVersion, at) = minVersion >= 0 && minVersion == version - 1 && prior is not null ? (prior, version - 1) : (Snapshot(), version);
        var chunks = WireFormat.Chunks(weights.Length, 4).ToArray();
        var (offset, count) = chunks[chunk];
        var segments = WireFormat.SegmentsOf(ofVersion, offset, count);
        ClusterTelemetry.NetworkSent.Add((long)count * sizeof(float), NetworkTags(spec));
        return new WeightsChunk(at, offset, weights.Length, chunks.Length, segments);
    }

    public Task<long> GetVersionAsync(JobSpec spec)
    {
        Ensure(spec);
        return Task.FromResult(version);
    }

    /// <summary>The current weights as bytes, made once per version and shared read-only by every reader.</summary>
    private byte[][] Snapshot()
    {
        if (snapshot is null)
        {
            snapshot = WireFormat.ToSegments(weights, spareSegments);
            spareSegments = null;
        }

        return snapshot;
    }

    /// <summary>
    /// Before the version moves on: bsp keeps the current weights servable as the version before (a step recomputed
    /// after a failure starts from them). The set kept until now is served to no one any more, and every answer that
    /// carried it was delivered before this step could be pushed: its segments hold the next version's bytes.
    /// </summary>
    private void KeepPrior()
    {
        if (spec!.Mode != ConsistencyMode.Bsp)
        {
            prior = null;
            return;
        }

        var older = prior;
        prior = Snapshot();
        spareSegments = older;
    }

    public Task<PushResult> PushAsync(JobSpec spec, GradientChunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        ArgumentNullException.ThrowIfNull(spec);
        Ensure(spec);

        if (chunk.NonFinite)
        {
            // The worker found non-finite values in this node (maybe on another shard's slice): every shard refuses it,
            // so no shard completes, let alone applies, part of the step. Refused even when late, so it is counted.
            return Task.FromResult(Refuse(spec, chunk, mismatch: false));
        }

        // bsp: a gradient is only ever for the current version. A late push computed before a rollback (for a step
        // this shard will reach again) must not be mistaken for the recomputed one. ssp and async: chunk.Step is the
        // worker's round, behind the version (which counts every worker's updates) by design; each contribution is
        // taken once, so a retried push is not applied twice.
        if (spec.Mode == ConsistencyMode.Bsp ? chunk.Step != version : appliedRounds.Contains((chunk.Step, chunk.NodeStart)))
        {
            return Task.FromResult(new PushResult(false, ShardIndex, null));
        }

        if (!pending.TryGetValue(chunk.Step, out var nodes))
        {
            pending[chunk.Step] = nodes = [];
        }

        var mismatch = spec.Mode == ConsistencyMode.Bsp && chunk.WeightsChecksum != 0 && chunk.WeightsChecksum != (servedChecksum ??= WeightsChecksum.Of(weights));
        if (mismatch && ReportOnce(mismatchReported, chunk))
        {
            Event(spec, chunk, ClusterTelemetry.Events.WeightsMismatch, $"worker {chunk.Worker} computed step {chunk.Step} on weights that differ from parameter-server shard {ShardIndex}'s version {version}", error: false);
        }

        var key = new TreeNode(chunk.NodeStart, chunk.NodeEnd);
        if (!nodes.TryGetValue(key, out var node))
        {
            nodes[key] = node = new PendingNode(free.TryPop(out var reused) ? reused : new float[weights.Length]);
        }

        if (!node.Offsets.Add(chunk.Offset))
        {
            return Task.FromResult(new PushResult(false, ShardIndex, null));
        }

        var destination = node.Values.AsSpan(chunk.Offset, chunk.Count);
        if (chunk.Encoding == GradientCompression.None)
        {
            WireFormat.FromBytes(chunk.Bytes.Span, destination);
        }
        else
        {
            WireFormat.Decompress(chunk.Bytes.Span, destination, chunk.Encoding);
        }

        ClusterTelemetry.NetworkReceived.Add(chunk.Bytes.Length, NetworkTags(spec));
        if (!System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(destination))
        {
            // Refused: the chunk is not taken, so the step cannot complete with it; the job skips the step.
            node.Offsets.Remove(chunk.Offset);
            return Task.FromResult(Refuse(spec, chunk, mismatch));
        }

        node.Received += chunk.Count;
        node.Samples = chunk.Samples;
        if (spec.Mode != ConsistencyMode.Bsp && node.Received == weights.Length)
        {
            // ssp and async: every complete contribution is one optimizer step of its own.
            RememberApplied(chunk.Step, chunk.NodeStart);
            nodes.Remove(key);
            if (nodes.Count == 0)
            {
                pending.Remove(chunk.Step);
            }

            var rows = Update(node.Values, chunk.WithStats, chunk.Step, node.Samples > 0 ? (float)chunk.GlobalSamples / node.Samples : 0f);
            if (chunk.WithStats || restoredUnreported)
            {
                // A statistics round gets the row sums of this update back; the first update after this shard lost its
                // state says so (the job then rolls every shard back).
                return Task.FromResult(new PushResult(true, ShardIndex, Report(version, true, 0, rows)));
            }
        }

        ApplyReport? applied = null;
        if (spec.Mode == ConsistencyMode.Bsp && spec.BackupWorkers == 0 && chunk.Step == version && node.Received == weights.Length && TreeComplete(nodes, spec.MicroBatches))
        {
            applied = Apply(new ApplyOrder(spec, chunk.Step, chunk.WithStats, false, chunk.GlobalSamples));
        }

        return Task.FromResult(new PushResult(true, ShardIndex, applied, WeightsMismatch: mismatch));
    }

    private PushResult Refuse(JobSpec jobSpec, GradientChunk chunk, bool mismatch)
    {
        if (ReportOnce(refusalReported, chunk))
        {
            Event(jobSpec, chunk, ClusterTelemetry.Events.NonFiniteGradient, $"worker {chunk.Worker} pushed a non-finite gradient for step {chunk.Step}; parameter-server shard {ShardIndex} refused it", error: true);
        }

        return new PushResult(false, ShardIndex, null, Refused: true, WeightsMismatch: mismatch);
    }

    private static bool ReportOnce(Dictionary<int, long> reported, GradientChunk chunk)
    {
        if (reported.TryGetValue(chunk.Worker, out var step) && step == chunk.Step)
        {
            return false;
        }

        reported[chunk.Worker] = chunk.Step;
        return true;
    }

    /// <summary>A span of its own for a refusal (an error) or a mismatch, with an event naming worker, step and shard.</summary>
    private void Event(JobSpec jobSpec, GradientChunk chunk, string name, string message, bool error)
    {
        using var span = ClusterTelemetry.Source.StartActivity(ClusterTelemetry.Spans.PsAggregate);
        if (span is null)
        {
            return;
        }

        span.SetTag(ClusterTelemetry.Attributes.Job, jobSpec.JobId)
            .SetTag(ClusterTelemetry.Attributes.Step, chunk.Step)
            .SetTag(ClusterTelemetry.Attributes.Shard, ShardIndex)
            .SetTag(ClusterTelemetry.Attributes.Silo, siloName);
        if (error)
        {
            span.SetStatus(ActivityStatusCode.Error, message);
        }

        span.AddEvent(new ActivityEvent(name, tags: new ActivityTagsCollection
        {
            [ClusterTelemetry.Attributes.Worker] = chunk.Worker,
            [ClusterTelemetry.Attributes.Step] = chunk.Step,
            [ClusterTelemetry.Attributes.Shard] = ShardIndex,
            [ClusterTelemetry.Attributes.Error] = message,
        }));
    }

    public Task<ApplyReport> SkipAsync(JobSpec spec, long step)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Ensure(spec);
        if (step == version - 1 && lastStep == step && lastApplied is { } last)
        {
            // Done already: skipped (Applied false), or applied (Applied true: the job must roll back).
            return Task.FromResult(last);
        }

        if (step != version)
        {
            return Task.FromResult(Report(version, false, 0, []));
        }

        // The version moves on with the weights and optimizer state unchanged; the step's contributions are dropped.
        KeepPrior();
        foreach (var old in pending.Keys.Where(s => s <= step).ToArray())
        {
            foreach (var node in pending[old].Values)
            {
                node.Offsets.Clear();
                free.Push(node.Values);
            }

            pending.Remove(old);
        }

        version++;
        SignalVersion();
        lastApplied = Report(version, false, 0, []);
        lastStep = step;
        return Task.FromResult(lastApplied);
    }

    private TagList NetworkTags(JobSpec jobSpec) => new()
    {
        { ClusterTelemetry.Tags.Job, jobSpec.JobId },
        { ClusterTelemetry.Tags.Silo, siloName },
        { ClusterTelemetry.Tags.Role, ClusterTelemetry.Tags.RolePs },
    };

    /// <summary>True when the complete nodes cover every micro-batch.</summary>
    private bool TreeComplete(Dictionary<TreeNode, PendingNode> nodes, int leaves)
    {
        var covered = 0;
        foreach (var (key, node) in nodes)
        {
            if (node.Received == weights.Length)
            {
                covered += key.End - key.Start;
            }
        }

        return covered == leaves;
    }

    public Task<ApplyReport> ApplyAsync(ApplyOrder order)
    {
        ArgumentNullException.ThrowIfNull(order);
        Ensure(order.Spec);
        if (order.Step == version - 1 && lastApplied is { } last && lastStep == order.Step)
        {
            // Applied already (by the push that completed the tree, or an earlier call): report it again.
            return Task.FromResult(last with { Applied = false });
        }

        if (order.Step != version)
        {
            // Already applied (version above) or this shard lost steps (version below: the job rolls back).
            return Task.FromResult(Report(version, false, 0, []));
        }

        if (!order.AllowPartial && !TreeComplete(pending.GetValueOrDefault(order.Step) ?? [], order.Spec.MicroBatches))
        {
            // Contributions were lost (e.g. this shard was handed over mid-step): the job recomputes the step.
            return Task.FromResult(Report(version, false, -1, []));
        }

        return Task.FromResult(Apply(order));
    }

    private ApplyReport Apply(ApplyOrder order)
    {
        pending.TryGetValue(order.Step, out var nodes);
        nodes ??= [];
        var complete = nodes.Where(n => n.Value.Received == weights.Length).ToDictionary(n => n.Key, n => n.Value.Values);
        var missing = 0;
        var clock = Stopwatch.StartNew();
        float[] sum;
        using (var aggregate = StartSpan(ClusterTelemetry.Spans.PsAggregate, order))
        {
            sum = ReductionTree.Reduce(new TreeNode(0, order.Spec.MicroBatches), complete, weights.Length, order.AllowPartial, ref missing, SumBuffer)
                ?? new float[weights.Length];
            if (missing > 0)
            {
                // Backup workers: the mean over the samples present, not over the whole global batch.
                var present = complete.Values.Count == 0 ? 0 : nodes.Where(n => n.Value.Received == weights.Length).Sum(n => n.Value.Samples);
                var scale = present > 0 ? (float)order.GlobalSamples / present : 0f;
                sum = (float[])sum.Clone();
                System.Numerics.Tensors.TensorPrimitives.Multiply(sum, scale, sum);
            }

            aggregate?.SetTag(ClusterTelemetry.Attributes.Chunks, complete.Count).SetTag(ClusterTelemetry.Attributes.MissingNodes, missing);
            if (order.WithStats && aggregate is { IsAllDataRequested: true })
            {
                TagGradientNorms(aggregate, sum);
            }
        }

        ClusterTelemetry.PsAggregateDuration.Record(clock.Elapsed.TotalSeconds, new TagList
        {
            { ClusterTelemetry.Tags.Job, order.Spec.JobId },
            { ClusterTelemetry.Tags.Shard, ClusterTelemetry.FilterLabel(ShardIndex) },
            { ClusterTelemetry.Tags.Silo, siloName },
        });
        RowSums[] rows;
        using (var apply = StartSpan(ClusterTelemetry.Spans.PsApply, order))
        {
            rows = Update(sum, order.WithStats, version);
            apply?.SetTag(ClusterTelemetry.Attributes.Version, version);
        }

        foreach (var step in pending.Keys.Where(s => s < version).ToArray())
        {
            foreach (var node in pending[step].Values)
            {
                node.Offsets.Clear();
                free.Push(node.Values);
            }

            pending.Remove(step);
        }

        lastApplied = Report(version, true, missing, rows);
        lastStep = order.Step;
        return lastApplied;
    }

    private Activity? StartSpan(string name, ApplyOrder order) => ClusterTelemetry.Source.StartActivity(name)
        ?.SetTag(ClusterTelemetry.Attributes.Job, order.Spec.JobId)
        .SetTag(ClusterTelemetry.Attributes.Step, order.Step)
        .SetTag(ClusterTelemetry.Attributes.Shard, ShardIndex)
        .SetTag(ClusterTelemetry.Attributes.Silo, siloName)
        .SetTag(ClusterTelemetry.Attributes.Statistics, order.WithStats);

    public async Task<bool> CheckpointAsync(JobSpec spec, long step)
    {
        Ensure(spec);
        if (version != step)
        {
            return false;
        }

        // The checkpoint before stays readable: when a checkpoint round fails on another shard, the job's last complete
        // checkpoint is that one, and a rollback must find it here.
        if (checkpoint.RecordExists && checkpoint.State.JobId == spec.JobId && checkpoint.State.Step != step)
        {
            previous.State = checkpoint.State;
            await previous.WriteStateAsync();
        }

        checkpoint.State = Capture(spec);
        await checkpoint.WriteStateAsync();
        return true;
    }

    public async Task<long> RollbackAsync(JobSpec spec, long step)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Ensure(spec);

        // The job ordered this restore and counts it itself.
        restoredUnreported = false;
        if (version == step)
        {
            return version;
        }

        if (step == 0)
        {
            this.spec = null;
            Setup(spec, fresh: true);
            return version;
        }

        await checkpoint.ReadStateAsync();
        await previous.ReadStateAsync();
        var saved = new[] { checkpoint, previous }.FirstOrDefault(c => c.RecordExists && c.State.Step == step && c.State.JobId == spec.JobId && c.State.SliceStart == slice.Start)
            ?? throw new CheckpointMissingException($"parameter-server shard {ShardIndex} of job {spec.JobId} has no checkpoint of step {step}");
        Restore(saved.State);
        return version;
    }

    /// <summary>A report to the job; the first after this activation restored itself from a checkpoint, or continued from a hand-over, says so.</summary>
    private ApplyReport Report(long version, bool applied, int droppedNodes, RowSums[] rows)
    {
        var report = new ApplyReport(version, applied, droppedNodes, rows, restoredUnreported, handedOverUnreported);
        restoredUnreported = false;
        handedOverUnreported = false;
        return report;
    }

    private void Ensure(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (this.spec is null || this.spec.JobId != spec.JobId)
        {
            // A reactivated shard continues from its last checkpoint; the job sees the lower version and rolls back,
            // or, when the checkpoint is the job's step, counts the restart from the report.
            Setup(spec, fresh: false);
        }
    }

    private void Setup(JobSpec spec, bool fresh)
    {
        this.spec = spec;
        var model = new Model(KerasModelReader.Read(spec.ModelJson, $"job {spec.JobId}"));
        var layout = new ClusterVector(model);
        slice = Sharding.Range(layout.Length, ShardIndex, spec.PsShards);
        optimizer = Optimizers.Create(new OptimizerSettings { Name = spec.Optimizer, LearningRate = spec.LearningRate });
        var segmentList = new List<Segment>();
        var offset = 0;
        var index = 0;
        var measuredNames = FilterStatisticsCollector.MeasuredLayers(model).ToDictionary(l => l.Kernel, l => l.Layer.Name);
        foreach (var p in model.TrainableParameters)
        {
            var start = Math.Max(offset, slice.Start);
            var end = Math.Min(offset + p.Length, slice.End);
            if (start < end)
            {
                segmentList.Add(new Segment(index, start - slice.Start, end - start, offset - slice.Start, p.Length, p.Name == "kernel" ? p.Rows : 0, p.Name == "kernel", measuredNames.GetValueOrDefault(p)));
            }

            offset += p.Length;
            index++;
        }

        foreach (var (start, length, momentum) in layout.MovingRuns())
        {
            // Moving statistics: no optimizer, a moving average with the layer's momentum (see ClusterVector).
            var from = Math.Max(start, slice.Start);
            var to = Math.Min(start + length, slice.End);
            if (from < to)
            {
                segmentList.Add(new Segment(-1, from - slice.Start, to - from, start - slice.Start, length, 0, false, null, momentum));
            }
        }

        segments = segmentList.ToArray();
        pending.Clear();
        appliedRounds.Clear();
        appliedOrder.Clear();
        snapshot = null;
        servedChecksum = null;
        state = new float[slice.Count * optimizer.StateSlotsPerParameter];
        if (!fresh && handover.RecordExists && handover.State.JobId == spec.JobId && handover.State.SliceStart == slice.Start
            && (!checkpoint.RecordExists || handover.State.Step >= checkpoint.State.Step))
        {
            // Handed over by a graceful deactivation: continue exactly where it stopped (once).
            Restore(handover.State);
            handedOverUnreported = true;
            handover.State = new ParameterServerState();
            _ = handover.ClearStateAsync();
            schedule = CreateSchedule(spec);
            return;
        }

        if (!fresh && checkpoint.RecordExists && checkpoint.State.JobId == spec.JobId && checkpoint.State.SliceStart == slice.Start)
        {
            Restore(checkpoint.State);
            restoredUnreported = true;
            schedule = CreateSchedule(spec);
            return;
        }

        model.Initialize(spec.Seed);
        var all = new float[layout.Length];
        layout.Copy(model, all);
        weights = all.AsSpan(slice.Start, slice.Count).ToArray();
        version = 0;
        prior = null;
        lastApplied = null;

        // Not asked for by the job: this shard's state was lost and there is no checkpoint; it is back at the start.
        restoredUnreported = !fresh;
        SignalVersion();
        schedule = CreateSchedule(spec);
    }

    private void RememberApplied(long round, int node)
    {
        if (appliedRounds.Add((round, node)))
        {
            appliedOrder.Enqueue((round, node));
            if (appliedOrder.Count > AppliedRoundsKept)
            {
                appliedRounds.Remove(appliedOrder.Dequeue());
            }
        }
    }

    /// <summary>The learning-rate schedule over the job's total steps (the job writes them into the spec from its plan).</summary>
    private static ILearningRateSchedule CreateSchedule(JobSpec spec) => LearningRateSchedules.Create(spec.Schedule, spec.LearningRate, Math.Max(1, spec.ScheduleSteps));

    private void Restore(ParameterServerState saved)
    {
        weights = new float[saved.Weights.Length / 4];
        WireFormat.FromBytes(saved.Weights, weights);
        state = new float[saved.OptimizerState.Length / 4];
        WireFormat.FromBytes(saved.OptimizerState, state);
        version = saved.Step;
        pending.Clear();
        appliedRounds.Clear();
        appliedOrder.Clear();
        snapshot = null;
        servedChecksum = null;
        // Without the version before, a step recomputed after a hand-over (a worker on the stopping silo whose report
        // was lost) would get this version's weights, be taken for stale and roll the whole job back to its checkpoint.
        prior = saved.PriorSegments.Length > 0 ? saved.PriorSegments : null;
        lastApplied = null;
        SignalVersion();
    }

    private float[] SumBuffer(TreeNode node)
    {
        if (!sums.TryGetValue(node, out var buffer) || buffer.Length != weights.Length)
        {
            sums[node] = buffer = new float[weights.Length];
        }

        return buffer;
    }

    /// <summary>
    /// Wakes the weight requests waiting for a newer version. Their continuations run synchronously (on this
    /// activation, in this turn) rather than after a thread-pool hop: the state they read (version, weights, prior) is
    /// already final here, and the last worker's weights went out about 0.3 ms sooner per step.
    /// </summary>
    private void SignalVersion()
    {
        var changed = versionChanged;
        versionChanged = new TaskCompletionSource();
        changed.TrySetResult();
    }

    /// <summary>One optimizer step on the slice, split at parameter boundaries (weight decay on kernels only).</summary>
    /// <param name="movingScale">Factor on the moving-statistics part (ssp and async: a node's contribution to its own mean); 0 leaves them as they are.</param>
    /// <param name="scheduleStep">The step the learning-rate schedule is read at: the version in bsp, the worker's round in ssp and async (where every worker's update is a version of its own).</param>
    private RowSums[] Update(float[] gradient, bool withStats, long scheduleStep, float movingScale = 1f)
    {
        KeepPrior();
        if (withStats)
        {
            // The statistics compare with the weights before this update (one buffer, kept: no large allocation per step).
            if (before?.Length != weights.Length)
            {
                before = new float[weights.Length];
            }

            weights.CopyTo(before, 0);
        }

        var lr = schedule!.At(scheduleStep);
        var slots = optimizer!.StateSlotsPerParameter;
        foreach (var s in segments)
        {
            if (s.Momentum is { } momentum)
            {
                if (movingScale != 0f)
                {
                    var values = weights.AsSpan(s.Start, s.Length);
                    var contribution = gradient.AsSpan(s.Start, s.Length);
                    for (var i = 0; i < values.Length; i++)
                    {
                        values[i] = (values[i] * momentum) + (contribution[i] * movingScale);
                    }
                }

                continue;
            }

            var stateRun = slots == 0 ? Span<float>.Empty : state.AsSpan(s.Start);
            optimizer.Step(weights.AsSpan(s.Start, s.Length), gradient.AsSpan(s.Start, s.Length), stateRun, weights.Length, version + 1, lr, s.Decay);
        }

        version++;
        snapshot = null;
        servedChecksum = null;
        SignalVersion();
        if (!withStats)
        {
            return [];
        }

        return RowStatistics(gradient, before!);
    }

    /// <summary>
    /// The aggregated gradient's per-filter L2 norms over the kernel rows this shard holds, one array per measured layer,
    /// with the index of its first filter (a shard boundary can cut a row: its norm here is of the part held).
    /// </summary>
    private void TagGradientNorms(Activity span, float[] gradient)
    {
        foreach (var s in segments.Where(s => s.Kernel && s.Layer is not null))
        {
            var rowLength = s.ParameterLength / s.Rows;
            var first = (s.Start - s.ParameterStart) / rowLength;
            var last = (s.Start + s.Length - 1 - s.ParameterStart) / rowLength;
            var norms = new double[last - first + 1];
            for (var i = s.Start; i < s.Start + s.Length; i++)
            {
                norms[((i - s.ParameterStart) / rowLength) - first] += (double)gradient[i] * gradient[i];
            }

            for (var r = 0; r < norms.Length; r++)
            {
                norms[r] = Math.Sqrt(norms[r]);
            }

            span.SetTag(ClusterTelemetry.Attributes.GradientNorm(s.Layer!), norms)
                .SetTag(ClusterTelemetry.Attributes.FirstFilter(s.Layer!), first);
        }
    }

    /// <summary>Per-filter sums of squares over the kernel rows this slice holds (rows cut by the slice count partly).</summary>
    private RowSums[] RowStatistics(float[] gradient, ReadOnlySpan<float> before)
    {
        var result = new List<RowSums>();
        foreach (var s in segments.Where(s => s.Kernel))
        {
            var rowLength = s.ParameterLength / s.Rows;
            var g = new double[s.Rows];
            var w = new double[s.Rows];
            var b = new double[s.Rows];
            var d = new double[s.Rows];
            // Row by row (no division per element); a row cut by the slice is summed over the part held.
            var end = s.Start + s.Length;
            for (var i = s.Start; i < end;)
            {
                var row = (i - s.ParameterStart) / rowLength;
                var rowEnd = Math.Min(end, s.ParameterStart + ((row + 1) * rowLength));
                var count = rowEnd - i;
                g[row] += FilterKernels.SumOfSquares(gradient.AsSpan(i, count));
                w[row] += FilterKernels.SumOfSquares(weights.AsSpan(i, count));
                b[row] += FilterKernels.SumOfSquares(before.Slice(i, count));
                d[row] += FilterKernels.SumOfSquaredDifferences(weights.AsSpan(i, count), before.Slice(i, count));
                i = rowEnd;
            }

            result.Add(new RowSums(s.Parameter, g, w, b, d));
        }

        return result.ToArray();
    }

    /// <summary>The part of trainable parameter <c>Parameter</c> inside the slice: [Start, Start + Length) of the slice; the parameter starts at ParameterStart (may be negative).</summary>
    /// <param name="Layer">The measured layer whose kernel this is (per-filter statistics), or null.</param>
    /// <param name="Momentum">A moving statistic's momentum (Parameter is then −1), null for a trainable parameter.</param>
    private readonly record struct Segment(int Parameter, int Start, int Length, int ParameterStart, int ParameterLength, int Rows, bool Kernel, string? Layer, float? Momentum = null)
    {
        public bool Decay => Kernel;
    }

    private sealed class PendingNode(float[] values)
    {
        public float[] Values { get; } = values;

        public HashSet<int> Offsets { get; } = [];

        public int Received { get; set; }

        public int Samples { get; set; }
    }
}
