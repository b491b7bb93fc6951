using System.Diagnostics;
using System.IO.Hashing;
using ClusterConv.Cluster.Telemetry;
using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Specs;
using ClusterConv.Engine.Statistics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace ClusterConv.Cluster;

/// <summary>
/// A worker of a job: owns the micro-batch slots [⌊w·M/W⌋, ⌊(w+1)·M/W⌋) and their data shards (sliced from the
/// silo's read-only copy of the training set), pulls weights from the parameter-server shards, computes each of its
/// micro-batches' gradients with the engine (scaled by 1/global batch so they add up to the global mean), pre-reduces
/// the tree nodes its slots cover and pushes them. The engine runs on the threads of the worker's own compute pool.
/// </summary>
[SpreadPlacement]
public sealed class WorkerGrain : Grain, IWorkerGrain, IDisposable
{
    private readonly TrainingDataCache dataCache;
    private JobSpec? spec;
    private JobPlan? plan;
    private Model? model;
    private Model? evalModel;
    private ClusterVector? vector;
    private ComputePool? pool;
    private IReadOnlyList<MeasuredLayer> measured = [];
    private Dictionary<int, BatchAssembler> assemblers = [];
    private BatchAssembler? testAssembler;
    private Dictionary<int, int[]> shardOrders = [];
    private int ordersEpoch = -1;
    private float[] weights = [];
    private long weightsVersion = -1;

    // bsp: a step's compute this short or shorter (the last one's time) runs in the grain turn rather than on the pool's thread.
    private const double InTurnComputeSeconds = 0.02;
    private double lastComputeSeconds = double.PositiveInfinity;
    private float[] evalWeights = [];
    private Dictionary<TreeNode, float[]> leaves = [];
    private Dictionary<(TreeNode, int), float[]> residuals = [];
    private Dictionary<TreeNode, float[]> sums = [];
    private Dictionary<float[], FloatBytes> wire = new(ReferenceEqualityComparer.Instance);
    private Tensor? input;
    private int[] labels = [];
    private float[] dLogits = [];
    private IParameterServerGrain[] servers = [];
    private Task? runLoop;
    private Task<PulledWeights>? prefetch;
    private long prefetchVersion = -1;

    // bsp: the step computed ahead of its order (see StepOrder.RunAhead), and how to call it off.
    private Task<StepReport>? ahead;
    private long aheadStep = -1;
    private CancellationTokenSource? aheadStop;
    private volatile bool stopRequested;
    private long roundsDone = -1;

    // bsp: one past the highest step this activation computed (−1: none), which a restarted job counts as redone.
    private long stepsComputed = -1;
    private TaskCompletionSource roundDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string? runError;
    private long runBytes;
    private double runLossSum;
    private int runCorrect;
    private int runSamples;
    private int[] kernelOffsets = [];

    // ssp and async: statistics rounds not yet taken by the job (with when each started), and per filter the
    // micro-batches that fired since the last statistics round.
    private readonly List<(RoundStatistics Statistics, long Started)> roundStatistics = [];
    private long[] firedSince = [];
    private FilterSeriesBudget? seriesBudget;
    private string? countedJob;
    private IWorkerFaults? faults;
    private float[] normBuffer = [];
    private readonly List<long> refusedRounds = [];
    private readonly List<RoundNorm> roundNorms = [];
    private int shardRestores;
    private RunOrder? runOrder;

    private readonly ILogger<WorkerGrain> logger;
    private readonly string siloName;

    public WorkerGrain(TrainingDataCache dataCache, ILocalSiloDetails silo, ILogger<WorkerGrain> logger)
    {
        ArgumentNullException.ThrowIfNull(silo);
        this.dataCache = dataCache;
        this.logger = logger;
        siloName = silo.Name;
    }

    private int Index => (int)this.GetPrimaryKeyLong(out _);

    public async Task<StepReport> ComputeStepAsync(StepOrder order)
    {
        ArgumentNullException.ThrowIfNull(order);
        var report = await TakeAheadAsync(order.Step) ?? await ComputeCoreAsync(order, parentTrace: null, CancellationToken.None);
        if (order.RunAhead && report.StaleVersion < 0 && !report.Refused && !report.WeightsMismatch && order.Step + 1 < plan!.TotalSteps)
        {
            // The next step's weights were requested with this step's push: compute it as soon as they are there. A
            // step refused elsewhere still gets there (the job skips it, which moves the version on); after a
            // rollback the order that comes is for another step, and this one is dropped before it computes.
            aheadStep = order.Step + 1;
            aheadStop = new CancellationTokenSource();
            ahead = ComputeCoreAsync(order with { Step = order.Step + 1, RunAhead = false, NextTrace = null }, order.NextTrace, aheadStop.Token);
        }

        return report;
    }

    /// <summary>
    /// The result of the step run ahead when it is <paramref name="step"/> (null otherwise, or when it failed or found
    /// the parameter servers elsewhere: the step is then computed anew). A step run ahead for another step is stopped
    /// while it still waits for its weights and awaited either way: it shares this worker's buffers.
    /// </summary>
    private async Task<StepReport?> TakeAheadAsync(long step)
    {
        if (ahead is not { } running)
        {
            return null;
        }

        var forStep = aheadStep;
        var stop = aheadStop;
        ahead = null;
        aheadStep = -1;
        aheadStop = null;
        if (forStep != step)
        {
            stop?.Cancel();
        }

        try
        {
            var report = await running;
            return forStep == step && report.StaleVersion < 0 ? report : null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            logger.LogDebug(e, "worker {Worker}: step {Step} run ahead did not complete", Index, forStep);
            return null;
        }
        finally
        {
            stop?.Dispose();
        }
    }

    /// <summary>A span under the current one, or under <paramref name="parentTrace"/> (a step run ahead: its step's span, made by the job beforehand).</summary>
    private static Activity? StartSpan(string name, string? parentTrace) => parentTrace is null
        ? ClusterTelemetry.Source.StartActivity(name)
        : ClusterTelemetry.Source.StartActivity(name, ActivityKind.Internal, parentTrace);

    /// <summary>Calls off a step run ahead (unless it is computing already) and waits until it is done with the buffers.</summary>
    private Task SettleAheadAsync() => ahead is null ? Task.CompletedTask : TakeAheadAsync(-1);

    private async Task<StepReport> ComputeCoreAsync(StepOrder order, string? parentTrace, CancellationToken stop)
    {
        var received = Stopwatch.StartNew();
        await EnsureAsync(order.Spec);
        var compute = StartSpan(ClusterTelemetry.Spans.WorkerCompute, parentTrace);
        compute?.SetTag(ClusterTelemetry.Attributes.Job, order.Spec.JobId)
            .SetTag(ClusterTelemetry.Attributes.Step, order.Step)
            .SetTag(ClusterTelemetry.Attributes.Worker, Index)
            .SetTag(ClusterTelemetry.Attributes.Silo, siloName);
        try
        {
            // The weights of this step were usually requested with the previous push (overlapping the job's
            // turn-around) or by PrepareAsync; otherwise fetch them now.
            var pulled = await TakePrefetchAsync(order.Step, stop) ?? await PullAsync(order.Step, stop);
            var fetched = pulled.Bytes;
            if (pulled.Version != order.Step)
            {
                pulled = await PullAsync(-1, stop);
                fetched += pulled.Bytes;
            }

            var version = pulled.Version;
            RecordNetwork(sent: 0, received: fetched);
            if (version != order.Step)
            {
                // The parameter servers are not at this step: a shard came back from a checkpoint, or a step is missing.
                compute?.SetTag(ClusterTelemetry.Attributes.Version, version).Dispose();
                return new StepReport(order.Step, 0, 0, 0, EmptyCounts(), fetched, 0, version);
            }

            weightsVersion = version;
            var clock = Stopwatch.StartNew();
            var batch = plan!.BatchOf(order.Step);
            var withStats = order.Spec.StatsEvery > 0 && order.Step % order.Spec.StatsEvery == 0;
            var globalSamples = plan.GlobalBatchSize(batch);
            // bsp without backup workers: the shards' segments go straight into the model on the compute thread, with no
            // copy of the whole vector first. They stay unchanged while this step computes: a shard writes a version's
            // segments over those of two versions back (ParameterServerGrain.KeepPrior), which needs this worker's next push.
            var direct = faults is null && order.Spec.Mode == ConsistencyMode.Bsp && order.Spec.BackupWorkers == 0;
            if (!direct)
            {
                pulled.CopyTo(weights, plan.ParameterSlices);
                faults?.OnWeights(order.Spec.JobId, Index, order.Step, weights);
            }

            var work = () =>
            {
                // The checksums of the weights this step computes on, one per shard's slice, for the shards to compare.
                var sums = direct ? LoadPulled(pulled) : LoadWeights();
                var result = Compute(order.Step, 1f / globalSamples, countAll: withStats);
                faults?.OnGradient(order.Spec.JobId, Index, order.Step, result.Nodes.Values.ToArray());
                return (result, withStats ? LayerStatistics(result, globalSamples) : null, sums, CheckGradient(result, globalSamples));
            };

            // A short compute runs in this turn: the hand-offs to the compute thread and back cost about 0.1 ms a step.
            // A long one runs on the compute thread, so it never holds a scheduler thread (one per core) for long.
            var inTurn = lastComputeSeconds <= (faults?.InTurnComputeSeconds(order.Spec.JobId, InTurnComputeSeconds) ?? InTurnComputeSeconds);
            var (local, filters, checks, check) = inTurn ? work() : await pool!.RunAsync(work);
            var seconds = clock.Elapsed.TotalSeconds;
            lastComputeSeconds = seconds;
            var workerTags = WorkerTags();
            ClusterTelemetry.TrainSamples.Add(local.Samples, workerTags);
            if (compute is not null)
            {
                compute.SetTag(ClusterTelemetry.Attributes.Samples, local.Samples)
                    .SetTag(ClusterTelemetry.Attributes.Loss, local.LossSum / Math.Max(local.Samples, 1))
                    .SetTag(ClusterTelemetry.Attributes.Statistics, withStats);
                if (filters is not null)
                {
                    TagSpan(compute, filters, local.Counts);
                }

                compute.Dispose();
            }

            if (filters is not null)
            {
                RecordFilters(filters);
            }

            long pushed;
            PushResult[] results;
            using (var push = StartSpan(ClusterTelemetry.Spans.GradientPush, parentTrace))
            {
                push?.SetTag(ClusterTelemetry.Attributes.Job, order.Spec.JobId)
                    .SetTag(ClusterTelemetry.Attributes.Step, order.Step)
                    .SetTag(ClusterTelemetry.Attributes.Worker, Index)
                    .SetTag(ClusterTelemetry.Attributes.Silo, siloName);
                (pushed, var sent) = Push(order.Step, local.Nodes, local.NodeSamples, withStats, globalSamples, !check.Finite, checks);

                // Ask for the next step's weights now: the shards answer as soon as they have applied this step, while
                // this worker's report travels to the job and the job's next order comes back.
                if (order.Step + 1 < plan.TotalSteps)
                {
                    StartPrefetch(order.Step + 1);
                }

                results = await sent;
                push?.SetTag(ClusterTelemetry.Attributes.Bytes, pushed);
            }

            RecordNetwork(sent: pushed, received: 0);

            stepsComputed = Math.Max(stepsComputed, order.Step + 1);
            var share = new WorkerStep(Index, siloName, 0, received.Elapsed.TotalSeconds, local.Samples, local.LossSum / Math.Max(local.Samples, 1), filters);
            return new StepReport(order.Step, local.LossSum, local.Correct, local.Samples, local.Counts, fetched + pushed, seconds, -1, results.Where(r => r.Applied is not null).ToArray(), share)
            {
                Refused = results.Any(r => r.Refused),
                WeightsMismatch = results.Any(r => r.WeightsMismatch),
                GradientNorm = check.Norm,
            };
        }
        finally
        {
            // Stopped already on the normal path; this ends it when the step throws.
            compute?.Dispose();
        }
    }

    /// <summary>
    /// Whether every value of the worker's gradient is finite, and the L2 norm of its mean local gradient (its nodes
    /// summed, rescaled from 1/global batch to 1/its samples), which the job compares across workers.
    /// </summary>
    private (bool Finite, double Norm) CheckGradient(LocalResult local, int globalSamples)
    {
        ReadOnlySpan<float> sum;
        if (local.Nodes.Count == 1)
        {
            sum = local.Nodes.Values.First();
        }
        else
        {
            var first = local.Nodes.Values.First();
            if (normBuffer.Length != first.Length)
            {
                normBuffer = new float[first.Length];
            }

            Array.Clear(normBuffer);
            foreach (var node in local.Nodes.Values)
            {
                System.Numerics.Tensors.TensorPrimitives.Add(normBuffer, node, normBuffer);
            }

            sum = normBuffer;
        }

        // One pass in the usual case: a NaN or an infinity anywhere makes the norm non-finite, so a finite norm means
        // every value is finite; a non-finite one may also be finite values too large to square, so then look.
        var norm = System.Numerics.Tensors.TensorPrimitives.Norm(sum);
        var finite = float.IsFinite(norm) || local.Nodes.Values.All(n => System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(n));
        if (!finite || local.Samples == 0)
        {
            return (finite, double.NaN);
        }

        return (true, norm * ((double)globalSamples / local.Samples));
    }

    private TagList WorkerTags() => new()
    {
        { ClusterTelemetry.Tags.Job, spec!.JobId },
        { ClusterTelemetry.Tags.Worker, ClusterTelemetry.FilterLabel(Index) },
        { ClusterTelemetry.Tags.Silo, siloName },
    };

    private void RecordNetwork(long sent, long received)
    {
        var tags = new TagList
        {
            { ClusterTelemetry.Tags.Job, spec!.JobId },
            { ClusterTelemetry.Tags.Silo, siloName },
            { ClusterTelemetry.Tags.Role, ClusterTelemetry.Tags.RoleWorker },
        };
        if (sent > 0)
        {
            ClusterTelemetry.NetworkSent.Add(sent, tags);
        }

        if (received > 0)
        {
            ClusterTelemetry.NetworkReceived.Add(received, tags);
        }
    }

    /// <summary>
    /// Statistics steps only: per measured layer, the norm of each filter's row of this worker's mean local gradient
    /// (its tree nodes summed, rescaled from 1/global batch to 1/its samples: the aggregated norm it would give alone),
    /// of the weights it computed with, and the sparsity over its samples.
    /// </summary>
    private WorkerLayerStatistics[] LayerStatistics(LocalResult local, int globalSamples)
    {
        var scale = local.Samples > 0 ? (double)globalSamples / local.Samples : 0;
        var result = new WorkerLayerStatistics[measured.Count];
        var countOffset = 0;
        for (var l = 0; l < measured.Count; l++)
        {
            var kernel = measured[l].Kernel;
            var rows = kernel.Rows;
            var range = (kernelOffsets[l], kernel.Length);
            ReadOnlySpan<float> gradient;
            if (local.Nodes.Count == 1)
            {
                gradient = local.Nodes.Values.First().AsSpan(range.Item1, range.Length);
            }
            else
            {
                var sum = new float[kernel.Length];
                foreach (var node in local.Nodes.Values)
                {
                    System.Numerics.Tensors.TensorPrimitives.Add(sum, node.AsSpan(range.Item1, range.Length), sum);
                }

                gradient = sum;
            }

            var gradientNorm = new float[rows];
            var weightNorm = new float[rows];
            FilterKernels.ScaledRowNorms(gradient, rows, scale, gradientNorm);
            FilterKernels.RowNorms(kernel.Value, rows, weightNorm);
            var total = local.Counts.Total[l];
            var sparsity = new float[rows];
            for (var k = 0; k < rows; k++)
            {
                // relu outputs are never negative: its exact zeros are everything not positive, as for the other activations.
                sparsity[k] = total > 0 ? (float)((double)(total - local.Counts.Positive[countOffset + k]) / total) : 0f;
            }

            countOffset += rows;
            result[l] = new WorkerLayerStatistics(measured[l].Layer.Name, gradientNorm, weightNorm, sparsity);
        }

        return result;
    }

    private void TagSpan(Activity span, WorkerLayerStatistics[] filters, ActivationCounts counts)
    {
        var countOffset = 0;
        for (var l = 0; l < filters.Length; l++)
        {
            var layer = filters[l];
            var rows = layer.GradientNorm.Length;
            var silent = new List<int>();
            for (var k = 0; k < rows; k++)
            {
                if (counts.Positive[countOffset + k] == 0)
                {
                    silent.Add(k);
                }
            }

            countOffset += rows;
            span.SetTag(ClusterTelemetry.Attributes.GradientNorm(layer.Layer), Array.ConvertAll(layer.GradientNorm, v => (double)v));
            span.SetTag(ClusterTelemetry.Attributes.Sparsity(layer.Layer), Array.ConvertAll(layer.Sparsity, v => (double)v));
            span.SetTag(ClusterTelemetry.Attributes.DeadFilters(layer.Layer), silent.ToArray());
        }
    }

    private void RecordFilters(WorkerLayerStatistics[] filters)
    {
        if (!ClusterTelemetry.WorkerFilterGradientNorm.Enabled && !ClusterTelemetry.WorkerFilterWeightNorm.Enabled && !ClusterTelemetry.WorkerFilterSparsity.Enabled)
        {
            // No listener: skip building a tag list per filter.
            return;
        }

        var worker = ClusterTelemetry.FilterLabel(Index);
        for (var l = 0; l < filters.Length; l++)
        {
            var layer = filters[l];
            var allowed = seriesBudget!.Worker(Index, l);
            for (var k = 0; k < allowed; k++)
            {
                var tags = new TagList
                {
                    { ClusterTelemetry.Tags.Job, spec!.JobId },
                    { ClusterTelemetry.Tags.Worker, worker },
                    { ClusterTelemetry.Tags.Silo, siloName },
                    { ClusterTelemetry.Tags.Layer, layer.Layer },
                    { ClusterTelemetry.Tags.Filter, ClusterTelemetry.FilterLabel(k) },
                };
                ClusterTelemetry.WorkerFilterGradientNorm.Record(layer.GradientNorm[k], tags);
                ClusterTelemetry.WorkerFilterWeightNorm.Record(layer.WeightNorm[k], tags);
                ClusterTelemetry.WorkerFilterSparsity.Record(layer.Sparsity[k], tags);
            }
        }
    }

    public async Task PrepareAsync(StepOrder order)
    {
        ArgumentNullException.ThrowIfNull(order);
        await SettleAheadAsync();
        await EnsureAsync(order.Spec);
        if (order.Step < plan!.TotalSteps && (prefetch is null || prefetchVersion != order.Step))
        {
            StartPrefetch(order.Step);
        }
    }

    /// <summary>Requests the weights of <paramref name="step"/>; a prefetch still running for another step is abandoned.</summary>
    private void StartPrefetch(long step)
    {
        Abandon();
        prefetchVersion = step;
        prefetch = PullAsync(step);
    }

    /// <summary>
    /// The prefetched weights of <paramref name="step"/>; null when there are none (no prefetch, one for another step,
    /// or one that failed).
    /// </summary>
    private async Task<PulledWeights?> TakePrefetchAsync(long step, CancellationToken stop)
    {
        if (prefetch is not { } pending || prefetchVersion != step)
        {
            Abandon();
            return null;
        }

        if (!pending.IsCompleted && stop.CanBeCanceled)
        {
            // A step run ahead: it may be called off while it waits (the prefetch then finishes on its own).
            try
            {
                await pending.WaitAsync(stop);
            }
            catch (OperationCanceledException)
            {
                Abandon();
                throw;
            }
        }

        prefetch = null;
        prefetchVersion = -1;
        try
        {
            return await pending;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            logger.LogDebug(e, "worker {Worker}: prefetch failed", Index);
            return null;
        }
    }

    /// <summary>Leaves a running prefetch to finish on its own (its answer is dropped).</summary>
    private void Abandon()
    {
        if (prefetch is not { } pending)
        {
            return;
        }

        prefetch = null;
        prefetchVersion = -1;
        _ = pending.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public async Task<EvalReport> EvaluateAsync(EvalOrder order)
    {
        ArgumentNullException.ThrowIfNull(order);
        await SettleAheadAsync();
        await EnsureAsync(order.Spec);
        var (version, fetched) = await FetchWeightsAsync(evalWeights, order.Version);
        if (order.Version >= 0 && version != order.Version)
        {
            throw new InvalidOperationException($"worker {Index}: evaluation expected weights version {order.Version}, the parameter servers hold {version}");
        }

        RecordNetwork(sent: 0, received: fetched);
        var result = await pool!.RunAsync(() => Evaluate(order.Start, order.Count));
        return result with { BytesMoved = fetched };
    }

    public async Task StartRunAsync(RunOrder order)
    {
        ArgumentNullException.ThrowIfNull(order);
        await SettleAheadAsync();
        await EnsureAsync(order.Spec);
        if (runLoop is { IsCompleted: false } running)
        {
            if (runOrder is { } current && current.Spec.JobId == order.Spec.JobId && current.FirstRound == order.FirstRound && current.Rounds == order.Rounds)
            {
                // The same order again (a retried call): the run it started goes on.
                return;
            }

            // The next stretch of rounds (the run before ends at a checkpoint round) or a restart: the old run ends first.
            stopRequested = true;
            await running;
        }

        // What a run before did and the job did not take is not this run's (a cancelled job's last rounds, say). The job
        // starts the next stretch only after every worker reported the last round of the one before, so nothing of it is lost.
        TakeProgress();
        stopRequested = false;
        roundsDone = order.FirstRound;
        runError = null;
        runOrder = order;
        runLoop = RunLoopAsync(order);
    }

    public Task<RunProgress> GetRunProgressAsync() => Task.FromResult(TakeProgress());

    /// <summary>The run's progress since the last call, the counts then cleared.</summary>
    private RunProgress TakeProgress()
    {
        var progress = new RunProgress(roundsDone, runError, runBytes, runLossSum, runCorrect, runSamples, refusedRounds.ToArray(), roundNorms.ToArray(), runLoop is { IsCompleted: false }, shardRestores);
        shardRestores = 0;
        refusedRounds.Clear();
        roundNorms.Clear();
        runBytes = 0;
        runLossSum = 0;
        runCorrect = 0;
        runSamples = 0;
        return progress;
    }

    public async Task<RunProgress> WaitRunProgressAsync(long afterRounds, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (roundsDone <= afterRounds && runError is null && runLoop is { IsCompleted: false } && clock.Elapsed < timeout)
        {
            var done = roundDone.Task;
            await Task.WhenAny(done, Task.Delay(timeout - clock.Elapsed));
        }

        return TakeProgress();
    }

    public Task<RoundStatistics[]> TakeRoundStatisticsAsync()
    {
        // StartSeconds leaves as minus the seconds since the round started: the job turns it into its own wall clock.
        var taken = roundStatistics
            .Select(r => r.Statistics with { Worker = r.Statistics.Worker with { StartSeconds = -Stopwatch.GetElapsedTime(r.Started).TotalSeconds } })
            .ToArray();
        roundStatistics.Clear();
        return Task.FromResult(taken);
    }

    public async Task<bool> RebalanceAsync(string[] silos)
    {
        ArgumentNullException.ThrowIfNull(silos);
        if (silos.Length == 0)
        {
            return false;
        }

        var target = silos[Index % silos.Length];
        var here = GrainContext.Address.SiloAddress?.ToString();
        if (here is null || here == target)
        {
            return false;
        }

        // Placement (SpreadPlacement) picks the target for the new activation; the model and data are rebuilt there.
        await SettleAheadAsync();
        if (runLoop is { } loop)
        {
            // ssp and async move at a checkpoint round, where the run has done its last round and is ending.
            await loop;
        }

        MigrateOnIdle();
        return true;
    }

    public async Task StopAsync()
    {
        stopRequested = true;
        await SettleAheadAsync();
        if (runLoop is { } loop)
        {
            // A run restarted after this call must not find the old one still going (it would be ignored).
            await loop;
        }
    }

    public void Dispose() => pool?.Dispose();

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        stopRequested = true;
        await SettleAheadAsync();
        if (countedJob is not null)
        {
            ClusterTelemetry.CountWorker(countedJob, siloName, -1);
            countedJob = null;
        }

        pool?.Dispose();
        pool = null;
    }

    /// <summary>ssp and async: round r = this worker's micro-batches of global batch r, pushed as one update of their own.</summary>
    private async Task RunLoopAsync(RunOrder order)
    {
        // Leave the starting request first: the loop runs between this grain's turns.
        await Task.Yield();
        var peers = Enumerable.Range(0, order.Spec.Workers).Where(w => w != Index).Select(w => GrainFactory.GetGrain<IWorkerGrain>(w, order.Spec.JobId)).ToArray();
        var lastVersion = -1L;
        try
        {
            for (var round = order.FirstRound; round < order.Rounds && !stopRequested; round++)
            {
                if (order.Spec.Mode == ConsistencyMode.Ssp)
                {
                    // No worker more than K rounds ahead of the slowest: wait while the gap is larger.
                    var waited = Stopwatch.StartNew();
                    while (!stopRequested)
                    {
                        var slowest = long.MaxValue;
                        foreach (var peer in peers)
                        {
                            slowest = Math.Min(slowest, await PeekAsync(peer));
                        }

                        if (peers.Length == 0 || round - slowest <= order.Spec.Staleness)
                        {
                            break;
                        }

                        if (waited.Elapsed > TimeSpan.FromSeconds(2))
                        {
                            logger.LogWarning("worker {Worker}: round {Round} waits for the slowest at {Slowest}", Index, round, slowest);
                            waited.Restart();
                        }

                        await Task.Delay(1);
                    }
                }

                var (version, fetched) = await TransientRetryAsync(() => FetchWeightsAsync(weights, -1), round);
                if (lastVersion >= 0)
                {
                    // Updates the other workers applied since this worker's previous pull (its own update excluded).
                    ClusterTelemetry.Staleness.Record(Math.Max(0, version - lastVersion - 1), StalenessTags(order.Spec));
                }

                lastVersion = version;
                var samples = OwnSamples(round);
                var withStats = order.Spec.StatsEvery > 0 && round % order.Spec.StatsEvery == 0;
                var started = Stopwatch.GetTimestamp();
                faults?.OnWeights(order.Spec.JobId, Index, round, weights);
                var (local, filters, (finite, norm)) = await pool!.RunAsync(() =>
                {
                    vector!.Load(model!, weights);
                    var result = Compute(round, samples == 0 ? 0f : 1f / samples, countAll: withStats);
                    faults?.OnGradient(order.Spec.JobId, Index, round, result.Nodes.Values.ToArray());
                    // Scaled by 1/own samples here, so the norm is already that of the mean local gradient.
                    var check = CheckGradient(result, samples);
                    return (result, withStats && check.Finite ? LayerStatistics(result, samples) : null, check);
                });
                for (var k = 0; k < firedSince.Length; k++)
                {
                    firedSince[k] += local.Counts.Positive[k];
                }

                var pushed = 0L;
                var results = await TransientRetryAsync(() =>
                {
                    // Pushed again after a shard's silo died: its new activation takes it; the shards that took it already ignore it.
                    var (bytes, sent) = Push(round, local.Nodes, local.NodeSamples, withStats && finite, samples, !finite, null);
                    pushed += bytes;
                    return sent;
                }, round);
                shardRestores += results.Count(r => r.Applied?.Restored == true);
                var refused = results.Any(r => r.Refused);
                if (refused)
                {
                    // Not applied by any shard; the job counts it and stops the run past its limit.
                    refusedRounds.Add(round);
                }
                else if (filters is not null)
                {
                    RecordFilters(filters);
                    var share = new WorkerStep(Index, siloName, 0, Stopwatch.GetElapsedTime(started).TotalSeconds, local.Samples, local.LossSum / Math.Max(local.Samples, 1), filters);
                    var applies = results.Where(r => r.Applied is not null).Select(r => r.Applied!).ToArray();
                    roundStatistics.Add((new RoundStatistics(round, applies, local.Counts, firedSince, local.LossSum, local.Correct, local.Samples, share), started));
                    firedSince = new long[firedSince.Length];
                }

                if (!refused && double.IsFinite(norm))
                {
                    roundNorms.Add(new RoundNorm(round, norm));
                }

                RecordNetwork(sent: pushed, received: fetched);
                ClusterTelemetry.TrainSamples.Add(local.Samples, WorkerTags());
                runBytes += fetched + pushed;
                runLossSum += local.LossSum;
                runCorrect += local.Correct;
                runSamples += local.Samples;
                roundsDone = round + 1;
                SignalRound();
                DelayDeactivation(TimeSpan.FromMinutes(5));
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            runError = e.Message;
            SignalRound();
        }
    }

    /// <summary>
    /// ssp and async: a call to the shards retried while their silo dies and they come back elsewhere (Orleans then
    /// reactivates them); other failures, and the same failure past a minute, end the run with an error.
    /// </summary>
    private async Task<T> TransientRetryAsync<T>(Func<Task<T>> call, long round)
    {
        var clock = Stopwatch.StartNew();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (Exception e) when (SiloWentAway(e) && clock.Elapsed < TimeSpan.FromMinutes(1) && !stopRequested)
            {
                logger.LogWarning("worker {Worker}: round {Round}: {Error}; retrying", Index, round, e.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 100 * (attempt + 1))));
            }
        }
    }

    /// <summary>How far a peer got; a peer whose silo just died counts as not holding anyone back (the job restarts it).</summary>
    private async Task<long> PeekAsync(IWorkerGrain peer)
    {
        try
        {
            return await peer.PeekRoundsAsync();
        }
        catch (Exception e) when (SiloWentAway(e))
        {
            logger.LogDebug(e, "worker {Worker}: a peer did not answer", Index);
            return long.MaxValue;
        }
    }

    /// <summary>A call that failed because the callee's silo died or stopped (Orleans reactivates the grain elsewhere).</summary>
    private static bool SiloWentAway(Exception e) => e is SiloUnavailableException or TimeoutException or OrleansMessageRejectionException;

    private void SignalRound()
    {
        var done = roundDone;
        roundDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        done.TrySetResult();
    }

    private TagList StalenessTags(JobSpec jobSpec) => new()
    {
        { ClusterTelemetry.Tags.Job, jobSpec.JobId },
        { ClusterTelemetry.Tags.Worker, ClusterTelemetry.FilterLabel(Index) },
    };

    /// <summary>Rounds done, for a peer's staleness check (answers between the loop's turns).</summary>
    public Task<long> PeekRoundsAsync() => Task.FromResult(Math.Max(roundsDone, stepsComputed));

    private int OwnSamples(long step)
    {
        var batch = plan!.BatchOf(step);
        var slots = plan.Slots(Index);
        var total = 0;
        for (var j = slots.Start; j < slots.End; j++)
        {
            var start = (long)batch * plan.MicroSizes[j];
            total += (int)Math.Clamp(plan.DataShards[j].Count - start, 0, plan.MicroSizes[j]);
        }

        return total;
    }

    private async Task EnsureAsync(JobSpec jobSpec)
    {
        ArgumentNullException.ThrowIfNull(jobSpec);
        if (spec is not null && ReferenceEquals(spec, jobSpec))
        {
            return;
        }

        if (spec is not null && spec == jobSpec)
        {
            spec = jobSpec;
            return;
        }

        var data = await dataCache.GetAsync(jobSpec);
        var modelSpec = KerasModelReader.Read(jobSpec.ModelJson, $"job {jobSpec.JobId}");
        model = new Model(modelSpec);
        evalModel = new Model(modelSpec);
        vector = new ClusterVector(model);
        plan = new JobPlan(jobSpec, data.Train.Count, data.Test.Count, vector.Length);
        pool?.Dispose();
        pool = new ComputePool(Math.Max(1, jobSpec.ThreadsPerWorker));
        measured = FilterStatisticsCollector.MeasuredLayers(model);
        var augmentation = jobSpec.Augment
            ? new Augmentation(MaxShift: 2, HorizontalFlip: data.Train.Name.Contains("Fashion", StringComparison.OrdinalIgnoreCase))
            : Augmentation.None;
        var slots = plan.Slots(Index);
        assemblers = [];
        leaves = [];
        for (var j = slots.Start; j < slots.End; j++)
        {
            // This worker's data: only its own shards, keeping global sample indices.
            assemblers[j] = new BatchAssembler(data.Train.Slice(plan.DataShards[j]), Normalization.Scale, augmentation, jobSpec.Seed);
            leaves[new TreeNode(j, j + 1)] = new float[vector.Length];
        }

        testAssembler = new BatchAssembler(data.Test, Normalization.Scale);
        shardOrders = [];
        ordersEpoch = -1;
        Abandon();
        weights = new float[vector.Length];
        lastComputeSeconds = double.PositiveInfinity;
        evalWeights = new float[vector.Length];
        weightsVersion = -1;
        residuals = [];
        sums = [];
        wire = new(ReferenceEqualityComparer.Instance);
        var largest = plan.MicroSizes.Max();
        input = new Tensor(largest, model.InputShape);
        labels = new int[largest];
        dLogits = new float[largest * model.Classes];
        servers = Enumerable.Range(0, jobSpec.PsShards).Select(p => GrainFactory.GetGrain<IParameterServerGrain>(p, jobSpec.JobId)).ToArray();
        kernelOffsets = measured.Select(l => KernelOffset(model, l.Kernel)).ToArray();
        roundStatistics.Clear();
        firedSince = new long[measured.Sum(l => l.Kernel.Rows)];
        seriesBudget = new FilterSeriesBudget(jobSpec.MaxFilterSeries, measured.Select(l => l.Kernel.Rows).ToArray(), jobSpec.Workers);
        if (countedJob != jobSpec.JobId)
        {
            if (countedJob is not null)
            {
                ClusterTelemetry.CountWorker(countedJob, siloName, -1);
            }

            ClusterTelemetry.CountWorker(jobSpec.JobId, siloName, +1);
            countedJob = jobSpec.JobId;
        }

        faults = ServiceProvider.GetService<IWorkerFaults>();
        spec = jobSpec;
    }

    /// <summary>Where a kernel starts in the trainable-parameter vector.</summary>
    private static int KernelOffset(Model model, Parameter kernel)
    {
        var offset = 0;
        foreach (var p in model.TrainableParameters)
        {
            if (ReferenceEquals(p, kernel))
            {
                return offset;
            }

            offset += p.Length;
        }

        throw new InvalidOperationException($"kernel {kernel.Name} is not a trainable parameter");
    }

    /// <summary>Pulls every shard's current weights into <paramref name="destination"/>; returns their version and the bytes moved.</summary>
    private async Task<(long Version, long Bytes)> FetchWeightsAsync(float[] destination, long minVersion, CancellationToken stop = default)
    {
        var pulled = await PullAsync(minVersion, stop);
        pulled.CopyTo(destination, plan!.ParameterSlices);
        return (pulled.Version, pulled.Bytes);
    }

    /// <summary>Every shard's current weights as the shards answered them, not copied anywhere yet.</summary>
    private async Task<PulledWeights> PullAsync(long minVersion, CancellationToken stop = default)
    {
        var jobSpec = spec!;
        var firsts = await Task.WhenAll(servers.Select(s => s.GetWeightsAsync(jobSpec, 0, minVersion))).WaitAsync(TimeSpan.FromSeconds(20), stop);
        var version = firsts[0].Version;
        var mixed = false;
        long bytes = 0;
        var shards = new WeightsChunk[servers.Length][];
        for (var p = 0; p < servers.Length; p++)
        {
            var chunks = new WeightsChunk[firsts[p].Chunks];
            chunks[0] = firsts[p];
            for (var c = 1; c < chunks.Length; c++)
            {
                chunks[c] = await servers[p].GetWeightsAsync(jobSpec, c, minVersion);
            }

            foreach (var chunk in chunks)
            {
                if (chunk.Version != version)
                {
                    // Shards at different versions: not a consistent set of weights for any step.
                    version = Math.Min(version, chunk.Version);
                    mixed = true;
                }

                bytes += chunk.ByteCount;
            }

            shards[p] = chunks;
        }

        // A mixed set is reported as its lowest version, which is below the step asked for: the caller reports it stale.
        return new PulledWeights(mixed && minVersion >= 0 ? Math.Min(version, minVersion - 1) : version, bytes, shards);
    }

    /// <summary>The weights buffer into the model; returns the checksum of each shard's slice of it.</summary>
    private ulong[] LoadWeights()
    {
        vector!.Load(model!, weights);
        return plan!.ParameterSlices.Select(slice => WeightsChecksum.Of(weights.AsSpan(slice.Start, slice.Count))).ToArray();
    }

    /// <summary>
    /// The pulled weights straight into the model, segment by segment, each hashed while it is in cache; returns the
    /// checksum of each shard's slice (what <see cref="LoadWeights"/> gives for the same values).
    /// </summary>
    private ulong[] LoadPulled(PulledWeights pulled)
    {
        var writer = vector!.Writer(model!);
        var hash = new XxHash3();
        var sums = new ulong[pulled.Shards.Length];
        for (var p = 0; p < pulled.Shards.Length; p++)
        {
            hash.Reset();
            foreach (var chunk in pulled.Shards[p])
            {
                var slice = plan!.ParameterSlices[p];
                if (slice.Start + chunk.Offset != writer.Position || chunk.SliceLength != slice.Count)
                {
                    throw new InvalidOperationException($"worker {Index}: shard {p}'s weights chunk at {chunk.Offset} of {chunk.SliceLength} values does not continue the vector at {writer.Position} (its slice: {slice.Start}, {slice.Count} values)");
                }

                foreach (var segment in chunk.Segments)
                {
                    writer.Write(WireFormat.AsFloats(segment));
                    hash.Append(segment);
                }
            }

            sums[p] = WeightsChecksum.Of(hash);
        }

        if (writer.Position != vector.Length)
        {
            throw new InvalidOperationException($"worker {Index}: the shards' weights cover {writer.Position} of {vector.Length} values");
        }

        return sums;
    }

    /// <summary>One set of weights as the shards answered it: per shard, its chunks in order.</summary>
    private sealed record PulledWeights(long Version, long Bytes, WeightsChunk[][] Shards)
    {
        /// <summary>Every shard's chunks into their places in <paramref name="destination"/>.</summary>
        public void CopyTo(float[] destination, IReadOnlyList<ShardRange> slices)
        {
            for (var p = 0; p < Shards.Length; p++)
            {
                foreach (var chunk in Shards[p])
                {
                    chunk.CopyTo(destination.AsSpan(slices[p].Start + chunk.Offset, chunk.Count));
                }
            }
        }
    }

    private sealed record LocalResult(Dictionary<TreeNode, float[]> Nodes, Dictionary<TreeNode, int> NodeSamples, double LossSum, int Correct, int Samples, ActivationCounts Counts);

    /// <summary>
    /// Forward and backward of each owned micro-batch of a step, then the tree nodes the slots cover. Activation signs
    /// are counted in full only when <paramref name="countAll"/> (statistics steps); otherwise Positive is how many
    /// micro-batches each filter fired in and Zero stays 0: all the dead-filter check needs, as in engine-only training.
    /// </summary>
    private LocalResult Compute(long step, float gradientScale, bool countAll)
    {
        var m = model!;
        var layout = vector!;
        var epoch = plan!.EpochOf(step);
        var batch = plan.BatchOf(step);
        var slots = plan.Slots(Index);
        if (epoch != ordersEpoch)
        {
            for (var j = slots.Start; j < slots.End; j++)
            {
                shardOrders[j] = plan.ShardOrder(j, epoch);
            }

            ordersEpoch = epoch;
        }

        var positive = measured.Select(l => new long[l.Kernel.Rows]).ToArray();
        var zero = measured.Select(l => new long[l.Kernel.Rows]).ToArray();
        var totals = new long[measured.Count];
        var leafSamples = new int[plan.MicroBatches];
        double lossSum = 0;
        var correct = 0;
        var samples = 0;
        var classes = m.Classes;
        for (var j = slots.Start; j < slots.End; j++)
        {
            var leaf = leaves[new TreeNode(j, j + 1)];
            var indices = plan.MicroBatch(shardOrders[j], j, batch).ToArray();
            var n = indices.Length;
            if (n == 0)
            {
                Array.Clear(leaf);
                continue;
            }

            assemblers[j].Fill(input!, labels.AsSpan(0, n), indices, epoch);
            var context = new StepContext(true, pool!, spec!.Seed, epoch, indices);
            if (layout.Moving > 0)
            {
                // The forward then leaves this micro-batch's statistics alone in them (see ClusterVector).
                ClusterVector.ClearMoving(m);
            }

            var logits = m.Forward(input!, context);
            var loss = SoftmaxCrossEntropy.Compute(logits.Span, labels.AsSpan(0, n), classes, dLogits.AsSpan(0, n * classes), gradientScale);
            // Backward writes the micro-batch's gradient straight into its leaf (trainable parameters first, model order).
            m.BindGradients(leaf);
            m.Backward(dLogits.AsSpan(0, n * classes), context);
            if (layout.Moving > 0)
            {
                layout.CopyMovingContribution(m, leaf, n * gradientScale);
            }
            leafSamples[j] = n;
            lossSum += loss.Sum;
            correct += loss.Correct;
            samples += n;
            for (var l = 0; l < measured.Count; l++)
            {
                var output = m.LayerOutput(measured[l].OutputIndex);
                var p = new long[positive[l].Length];
                var plane = (long)output.N * output.H * output.W;
                if (!countAll)
                {
                    // Stops at each filter's first positive value.
                    FilterKernels.AnyPositivePerChannel(output, p);
                    for (var k = 0; k < p.Length; k++)
                    {
                        positive[l][k] += p[k];
                    }
                }
                else
                {
                    FilterKernels.CountPositivePerChannel(output, p);
                    for (var k = 0; k < p.Length; k++)
                    {
                        // Not positive = exactly zero after relu (the only activation this count is read for).
                        positive[l][k] += p[k];
                        zero[l][k] += plane - p[k];
                    }
                }

                totals[l] += (long)output.N * output.H * output.W;
            }
        }

        var nodes = new Dictionary<TreeNode, float[]>();
        var nodeSamples = new Dictionary<TreeNode, int>();
        foreach (var node in ReductionTree.Cover(plan.MicroBatches, slots.Start, slots.End))
        {
            var missing = 0;
            nodes[node] = ReductionTree.Reduce(node, leaves, layout.Length, allowMissing: false, ref missing, SumBuffer)!;
            nodeSamples[node] = leafSamples.AsSpan(node.Start, node.End - node.Start).ToArray().Sum();
        }

        return new LocalResult(nodes, nodeSamples, lossSum, correct, samples, new ActivationCounts(positive.SelectMany(p => p).ToArray(), zero.SelectMany(z => z).ToArray(), totals));
    }

    private float[] SumBuffer(TreeNode node)
    {
        if (!sums.TryGetValue(node, out var buffer))
        {
            sums[node] = buffer = new float[vector!.Length];
        }

        return buffer;
    }

    /// <summary>
    /// The bytes of a node's sum buffer, pushed without a copy. Safe to overwrite next step: a push completes only after
    /// the shard has copied the chunk (or its message left the silo), and a bsp step starts only after every shard applied
    /// the previous one, so an old message can no longer be taken.
    /// </summary>
    private FloatBytes WireView(float[] node)
    {
        if (!wire.TryGetValue(node, out var view))
        {
            wire[node] = view = new FloatBytes(node);
        }

        return view;
    }

    /// <summary>Sends every node's slice to its parameter-server shard, chunked; returns the bytes moved and the calls' results to come.</summary>
    /// <param name="nonFinite">Some value of the worker's gradient is not finite: every chunk says so, and every shard refuses it.</param>
    /// <param name="checksums">bsp: per shard, the checksum of the weights the gradient was computed on; null elsewhere.</param>
    private (long Bytes, Task<PushResult[]> Results) Push(long step, Dictionary<TreeNode, float[]> nodes, Dictionary<TreeNode, int> nodeSamples, bool withStats, int globalSamples, bool nonFinite, ulong[]? checksums)
    {
        var jobSpec = spec!;
        var calls = new List<Task<PushResult>>();
        long bytes = 0;
        foreach (var (node, values) in nodes)
        {
            for (var p = 0; p < servers.Length; p++)
            {
                var slice = plan!.ParameterSlices[p];
                var run = values.AsSpan(slice.Start, slice.Count);
                byte[] encoded;
                // A non-finite gradient goes uncompressed: it is refused anyway, and must not enter the error-feedback residual.
                if (nonFinite || (jobSpec.Compression == GradientCompression.None && jobSpec.Mode == ConsistencyMode.Bsp && jobSpec.BackupWorkers == 0))
                {
                    foreach (var (offset, count) in WireFormat.Chunks(slice.Count, 4))
                    {
                        var payload = WireView(values).Slice(slice.Start + offset, count);
                        bytes += payload.Length;
                        calls.Add(servers[p].PushAsync(jobSpec, new GradientChunk(step, node.Start, node.End, offset, count, GradientCompression.None, payload, nodeSamples[node], withStats, globalSamples, Index, nonFinite, checksums?[p] ?? 0)));
                    }

                    continue;
                }

                if (jobSpec.Compression == GradientCompression.None)
                {
                    encoded = WireFormat.ToBytes(run);
                }
                else
                {
                    if (!residuals.TryGetValue((node, p), out var residual))
                    {
                        residuals[(node, p)] = residual = new float[slice.Count];
                    }

                    encoded = WireFormat.Compress(run, residual, jobSpec.Compression);
                }

                var width = WireFormat.BytesPerValue(jobSpec.Compression);
                foreach (var (offset, count) in WireFormat.Chunks(slice.Count, width))
                {
                    var payload = count == slice.Count ? encoded : encoded.AsSpan(offset * width, count * width).ToArray();
                    bytes += payload.Length;
                    calls.Add(servers[p].PushAsync(jobSpec, new GradientChunk(step, node.Start, node.End, offset, count, jobSpec.Compression, payload, nodeSamples[node], withStats, globalSamples, Index, nonFinite, checksums?[p] ?? 0)));
                }
            }
        }

        return (bytes, Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(20)));
    }

    private EvalReport Evaluate(int start, int count)
    {
        var m = evalModel!;
        vector!.Load(m, evalWeights);
        const int EvalBatch = 250;
        var evalInput = new Tensor(EvalBatch, m.InputShape);
        var evalLabels = new int[EvalBatch];
        var context = new StepContext(false, pool!, spec!.Seed);
        double lossSum = 0;
        var correct = 0;
        for (var offset = 0; offset < count; offset += EvalBatch)
        {
            var n = Math.Min(EvalBatch, count - offset);
            var indices = Enumerable.Range(start + offset, n).ToArray();
            testAssembler!.Fill(evalInput, evalLabels.AsSpan(0, n), indices);
            var logits = m.Forward(evalInput, context);
            var loss = SoftmaxCrossEntropy.Compute(logits.Span, evalLabels.AsSpan(0, n), m.Classes, [], 1f);
            lossSum += loss.Sum;
            correct += loss.Correct;
        }

        return new EvalReport(lossSum, correct, count, 0);
    }

    private ActivationCounts EmptyCounts() => new(
        new long[measured.Sum(l => l.Kernel.Rows)],
        new long[measured.Sum(l => l.Kernel.Rows)],
        new long[measured.Count]);
}
