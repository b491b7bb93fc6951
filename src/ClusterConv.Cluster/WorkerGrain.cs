using System.Diagnostics;
using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Specs;
using ClusterConv.Engine.Statistics;
using Microsoft.Extensions.Logging;

namespace ClusterConv.Cluster;

/// <summary>
/// A worker of a job: owns the micro-batch slots [⌊w·M/W⌋, ⌊(w+1)·M/W⌋) and their data shards (sliced from the
/// silo's read-only copy of the training set), pulls weights from the parameter-server shards, computes each of its
/// micro-batches' gradients with the engine (scaled by 1/global batch so they add up to the global mean), pre-reduces
/// the tree nodes its slots cover and pushes them. The engine runs on the thread pool with the worker's own compute pool.
/// </summary>
[SpreadPlacement]
public sealed class WorkerGrain : Grain, IWorkerGrain, IDisposable
{
    private readonly TrainingDataCache dataCache;
    private JobSpec? spec;
    private JobPlan? plan;
    private Model? model;
    private Model? evalModel;
    private ComputePool? pool;
    private IReadOnlyList<MeasuredLayer> measured = [];
    private Dictionary<int, BatchAssembler> assemblers = [];
    private BatchAssembler? testAssembler;
    private Dictionary<int, int[]> shardOrders = [];
    private int ordersEpoch = -1;
    private float[] weights = [];
    private long weightsVersion = -1;
    private float[] evalWeights = [];
    private Dictionary<TreeNode, float[]> leaves = [];
    private Dictionary<(TreeNode, int), float[]> residuals = [];
    private Dictionary<TreeNode, float[]> sums = [];
    private Dictionary<(TreeNode, int, int), byte[]> wire = [];
    private Tensor? input;
    private int[] labels = [];
    private float[] dLogits = [];
    private IParameterServerGrain[] servers = [];
    private Task? runLoop;
    private Task<(long Version, long Bytes)>? prefetch;
    private long prefetchVersion = -1;
    private volatile bool stopRequested;
    private long roundsDone = -1;
    private string? runError;
    private long runBytes;
    private double runLossSum;
    private int runCorrect;
    private int runSamples;

    private readonly ILogger<WorkerGrain> logger;

    public WorkerGrain(TrainingDataCache dataCache, ILogger<WorkerGrain> logger)
    {
        this.dataCache = dataCache;
        this.logger = logger;
    }

    private int Index => (int)this.GetPrimaryKeyLong(out _);

    public async Task<StepReport> ComputeStepAsync(StepOrder order)
    {
        ArgumentNullException.ThrowIfNull(order);
        await EnsureAsync(order.Spec);

        // The weights of this step were usually requested right after the previous push (overlapping the job's
        // turn-around); otherwise fetch them now.
        (long Version, long Bytes) ahead = (-1, 0);
        if (prefetch is { } pending)
        {
            // Always let a prefetch finish (it writes into the weights buffer); a failed one is just not used.
            prefetch = null;
            try
            {
                ahead = await pending;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                logger.LogDebug(e, "worker {Worker}: prefetch failed", Index);
                ahead = (-1, 0);
            }
        }

        var (version, fetched) = prefetchVersion == order.Step && ahead.Version >= 0 ? ahead : await FetchWeightsAsync(weights, order.Step);
        prefetchVersion = -1;
        if (version != order.Step)
        {
            (version, var again) = await FetchWeightsAsync(weights, -1);
            fetched += again;
        }

        if (version != order.Step)
        {
            // The parameter servers are not at this step: a shard came back from a checkpoint, or a step is missing.
            return new StepReport(order.Step, 0, 0, 0, EmptyCounts(), fetched, 0, version);
        }

        weightsVersion = version;
        var clock = Stopwatch.StartNew();
        var batch = plan!.BatchOf(order.Step);
        var withStats = order.Spec.StatsEvery > 0 && order.Step % order.Spec.StatsEvery == 0;
        var globalSamples = plan.GlobalBatchSize(batch);
        var local = await Task.Run(() => Compute(order.Step, 1f / globalSamples));
        var seconds = clock.Elapsed.TotalSeconds;
        var (pushed, results) = await PushAsync(order.Step, local.Nodes, local.NodeSamples, withStats, globalSamples);
        if (order.Step + 1 < plan.TotalSteps)
        {
            prefetchVersion = order.Step + 1;
            prefetch = FetchWeightsAsync(weights, order.Step + 1);
        }

        return new StepReport(order.Step, local.LossSum, local.Correct, local.Samples, local.Counts, fetched + pushed, seconds, -1, results.Where(r => r.Applied is not null).ToArray());
    }

    public async Task<EvalReport> EvaluateAsync(EvalOrder order)
    {
        ArgumentNullException.ThrowIfNull(order);
        await EnsureAsync(order.Spec);
        var (version, fetched) = await FetchWeightsAsync(evalWeights, order.Version);
        if (order.Version >= 0 && version != order.Version)
        {
            throw new InvalidOperationException($"worker {Index}: evaluation expected weights version {order.Version}, the parameter servers hold {version}");
        }

        var result = await Task.Run(() => Evaluate(order.Start, order.Count));
        return result with { BytesMoved = fetched };
    }

    public async Task StartRunAsync(RunOrder order)
    {
        ArgumentNullException.ThrowIfNull(order);
        await EnsureAsync(order.Spec);
        if (runLoop is { IsCompleted: false })
        {
            return;
        }

        stopRequested = false;
        roundsDone = order.FirstRound;
        runError = null;
        runLoop = RunLoopAsync(order);
    }

    public Task<(long Rounds, string? Error, long BytesMoved, double LossSum, int Correct, int Samples)> GetRunProgressAsync()
    {
        var progress = (roundsDone, runError, runBytes, runLossSum, runCorrect, runSamples);
        runBytes = 0;
        runLossSum = 0;
        runCorrect = 0;
        runSamples = 0;
        return Task.FromResult(progress);
    }

    public Task<bool> RebalanceAsync(string[] silos)
    {
        ArgumentNullException.ThrowIfNull(silos);
        if (silos.Length == 0)
        {
            return Task.FromResult(false);
        }

        var target = silos[Index % silos.Length];
        var here = GrainContext.Address.SiloAddress?.ToString();
        if (here is null || here == target)
        {
            return Task.FromResult(false);
        }

        // Placement (SpreadPlacement) picks the target for the new activation; the model and data are rebuilt there.
        MigrateOnIdle();
        return Task.FromResult(true);
    }

    public Task StopAsync()
    {
        stopRequested = true;
        return Task.CompletedTask;
    }

    public void Dispose() => pool?.Dispose();

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        stopRequested = true;
        pool?.Dispose();
        pool = null;
        return Task.CompletedTask;
    }

    /// <summary>ssp and async: round r = this worker's micro-batches of global batch r, pushed as one update of their own.</summary>
    private async Task RunLoopAsync(RunOrder order)
    {
        // Leave the starting request first: the loop runs between this grain's turns.
        await Task.Yield();
        var peers = Enumerable.Range(0, order.Spec.Workers).Where(w => w != Index).Select(w => GrainFactory.GetGrain<IWorkerGrain>(w, order.Spec.JobId)).ToArray();
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
                            slowest = Math.Min(slowest, await peer.PeekRoundsAsync());
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

                var (_, fetched) = await FetchWeightsAsync(weights, -1);
                var samples = OwnSamples(round);
                var local = await Task.Run(() => Compute(round, samples == 0 ? 0f : 1f / samples));
                var (pushed, _) = await PushAsync(round, local.Nodes, local.NodeSamples, false, samples);
                runBytes += fetched + pushed;
                runLossSum += local.LossSum;
                runCorrect += local.Correct;
                runSamples += local.Samples;
                roundsDone = round + 1;
                DelayDeactivation(TimeSpan.FromMinutes(5));
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            runError = e.Message;
        }
    }

    /// <summary>Rounds done, for a peer's staleness check (answers between the loop's turns).</summary>
    public Task<long> PeekRoundsAsync() => Task.FromResult(roundsDone);

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
        plan = new JobPlan(jobSpec, data.Train.Count, data.Test.Count, model.TrainableParameterCount);
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
            leaves[new TreeNode(j, j + 1)] = new float[model.TrainableParameterCount];
        }

        testAssembler = new BatchAssembler(data.Test, Normalization.Scale);
        shardOrders = [];
        ordersEpoch = -1;
        weights = new float[model.TrainableParameterCount];
        evalWeights = new float[model.TrainableParameterCount];
        weightsVersion = -1;
        residuals = [];
        sums = [];
        wire = [];
        var largest = plan.MicroSizes.Max();
        input = new Tensor(largest, model.InputShape);
        labels = new int[largest];
        dLogits = new float[largest * model.Classes];
        servers = Enumerable.Range(0, jobSpec.PsShards).Select(p => GrainFactory.GetGrain<IParameterServerGrain>(p, jobSpec.JobId)).ToArray();
        spec = jobSpec;
    }

    /// <summary>Pulls every shard's current weights into <paramref name="destination"/>; returns their version and the bytes moved.</summary>
    private async Task<(long Version, long Bytes)> FetchWeightsAsync(float[] destination, long minVersion)
    {
        var jobSpec = spec!;
        var firsts = await Task.WhenAll(servers.Select(s => s.GetWeightsAsync(jobSpec, 0, minVersion))).WaitAsync(TimeSpan.FromSeconds(20));
        var version = firsts[0].Version;
        var mixed = false;
        long bytes = 0;
        for (var p = 0; p < servers.Length; p++)
        {
            var slice = plan!.ParameterSlices[p];
            var chunks = new List<WeightsChunk> { firsts[p] };
            for (var c = 1; c < firsts[p].Chunks; c++)
            {
                chunks.Add(await servers[p].GetWeightsAsync(jobSpec, c, minVersion));
            }

            foreach (var chunk in chunks)
            {
                if (chunk.Version != version)
                {
                    // Shards at different versions: not a consistent set of weights for any step.
                    version = Math.Min(version, chunk.Version);
                    mixed = true;
                }

                WireFormat.FromBytes(chunk.Bytes, destination.AsSpan(slice.Start + chunk.Offset, chunk.Bytes.Length / 4));
                bytes += chunk.Bytes.Length;
            }
        }

        // A mixed set is reported as its lowest version, which is below the step asked for: the caller reports it stale.
        return (mixed && minVersion >= 0 ? Math.Min(version, minVersion - 1) : version, bytes);
    }

    private sealed record LocalResult(Dictionary<TreeNode, float[]> Nodes, Dictionary<TreeNode, int> NodeSamples, double LossSum, int Correct, int Samples, ActivationCounts Counts);

    /// <summary>Forward and backward of each owned micro-batch of a step, then the tree nodes the slots cover.</summary>
    private LocalResult Compute(long step, float gradientScale)
    {
        var m = model!;
        m.LoadParameters(weights, trainableOnly: true);
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
            var logits = m.Forward(input!, context);
            var loss = SoftmaxCrossEntropy.Compute(logits.Span, labels.AsSpan(0, n), classes, dLogits.AsSpan(0, n * classes), gradientScale);
            m.Backward(dLogits.AsSpan(0, n * classes), context);
            m.CopyGradientsTo(leaf);
            leafSamples[j] = n;
            lossSum += loss.Sum;
            correct += loss.Correct;
            samples += n;
            for (var l = 0; l < measured.Count; l++)
            {
                var output = m.LayerOutput(measured[l].OutputIndex);
                var p = new long[positive[l].Length];
                FilterKernels.CountPositivePerChannel(output, p);
                var plane = (long)output.N * output.H * output.W;
                for (var k = 0; k < p.Length; k++)
                {
                    // Not positive = exactly zero after relu (the only activation this count is read for).
                    positive[l][k] += p[k];
                    zero[l][k] += plane - p[k];
                }

                totals[l] += (long)output.N * output.H * output.W;
            }
        }

        var nodes = new Dictionary<TreeNode, float[]>();
        var nodeSamples = new Dictionary<TreeNode, int>();
        foreach (var node in ReductionTree.Cover(plan.MicroBatches, slots.Start, slots.End))
        {
            var missing = 0;
            nodes[node] = ReductionTree.Reduce(node, leaves, m.TrainableParameterCount, allowMissing: false, ref missing, SumBuffer)!;
            nodeSamples[node] = leafSamples.AsSpan(node.Start, node.End - node.Start).ToArray().Sum();
        }

        return new LocalResult(nodes, nodeSamples, lossSum, correct, samples, new ActivationCounts(positive.SelectMany(p => p).ToArray(), zero.SelectMany(z => z).ToArray(), totals));
    }

    private float[] SumBuffer(TreeNode node)
    {
        if (!sums.TryGetValue(node, out var buffer))
        {
            sums[node] = buffer = new float[model!.TrainableParameterCount];
        }

        return buffer;
    }

    /// <summary>
    /// A reusable send buffer per (node, shard, chunk). Safe to refill next step: a push completes only after the
    /// shard has copied the chunk (inside one silo the array itself is passed), and a bsp step starts only after every
    /// shard applied the previous one, so an old message can no longer be taken.
    /// </summary>
    private byte[] WireBuffer(TreeNode node, int shard, int offset, int bytes)
    {
        if (!wire.TryGetValue((node, shard, offset), out var buffer) || buffer.Length != bytes)
        {
            wire[(node, shard, offset)] = buffer = new byte[bytes];
        }

        return buffer;
    }

    /// <summary>Sends every node's slice to its parameter-server shard, chunked; returns the bytes moved.</summary>
    private async Task<(long Bytes, PushResult[] Results)> PushAsync(long step, Dictionary<TreeNode, float[]> nodes, Dictionary<TreeNode, int> nodeSamples, bool withStats, int globalSamples)
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
                if (jobSpec.Compression == GradientCompression.None && jobSpec.Mode == ConsistencyMode.Bsp && jobSpec.BackupWorkers == 0)
                {
                    foreach (var (offset, count) in WireFormat.Chunks(slice.Count, 4))
                    {
                        var payload = WireBuffer(node, p, offset, count * 4);
                        System.Runtime.InteropServices.MemoryMarshal.AsBytes(run.Slice(offset, count)).CopyTo(payload);
                        bytes += payload.Length;
                        calls.Add(servers[p].PushAsync(jobSpec, new GradientChunk(step, node.Start, node.End, offset, count, GradientCompression.None, payload, nodeSamples[node], withStats, globalSamples)));
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
                    calls.Add(servers[p].PushAsync(jobSpec, new GradientChunk(step, node.Start, node.End, offset, count, jobSpec.Compression, payload, nodeSamples[node], withStats, globalSamples)));
                }
            }
        }

        var results = await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(20));
        return (bytes, results);
    }

    private EvalReport Evaluate(int start, int count)
    {
        var m = evalModel!;
        m.LoadParameters(evalWeights, trainableOnly: true);
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
