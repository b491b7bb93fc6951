namespace ClusterConv.Cluster;

/// <summary>Everything a job needs, sent once by the client and carried by every order (so a reactivated grain needs nothing else).</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.JobSpec")]
public sealed record JobSpec
{
    [Id(0)] public string JobId { get; init; } = string.Empty;

    /// <summary>The model as Keras JSON (KerasModelWriter), so any silo can build it.</summary>
    [Id(1)] public string ModelJson { get; init; } = string.Empty;

    /// <summary>"fashion-mnist", "synthetic", or a folder of IDX files readable on every silo.</summary>
    [Id(2)] public string Data { get; init; } = "fashion-mnist";

    [Id(3)] public int SyntheticTrain { get; init; } = 20_000;

    [Id(4)] public int SyntheticTest { get; init; } = 4_000;

    [Id(5)] public int? TrainLimit { get; init; }

    [Id(6)] public int? TestLimit { get; init; }

    [Id(7)] public int Epochs { get; init; } = 3;

    [Id(8)] public int BatchSize { get; init; } = 64;

    /// <summary>Fixed micro-batches (and data shards) per global batch, independent of the worker count.</summary>
    [Id(9)] public int MicroBatches { get; init; } = 4;

    [Id(10)] public int Workers { get; init; } = 2;

    [Id(11)] public int PsShards { get; init; } = 1;

    [Id(12)] public ConsistencyMode Mode { get; init; } = ConsistencyMode.Bsp;

    /// <summary>ssp only: no worker more than this many steps ahead of the slowest.</summary>
    [Id(13)] public int Staleness { get; init; }

    [Id(14)] public int BackupWorkers { get; init; }

    [Id(15)] public string Optimizer { get; init; } = "adam";

    [Id(16)] public float LearningRate { get; init; } = 0.002f;

    [Id(17)] public string Schedule { get; init; } = "cosine";

    [Id(18)] public ulong Seed { get; init; } = 1;

    [Id(19)] public long? MaxSteps { get; init; }

    [Id(20)] public int StatsEvery { get; init; } = 10;

    [Id(21)] public int LogEvery { get; init; } = 10;

    [Id(22)] public int DeadWindow { get; init; } = 100;

    [Id(23)] public bool Augment { get; init; }

    /// <summary>Parameter-server checkpoint every this many steps (0: never).</summary>
    [Id(24)] public int CheckpointEvery { get; init; } = 50;

    /// <summary>Continue from the last checkpoint of a job with this id instead of starting over.</summary>
    [Id(25)] public bool Resume { get; init; }

    /// <summary>Compute threads of each worker's pool.</summary>
    [Id(26)] public int ThreadsPerWorker { get; init; } = 1;

    /// <summary>Gradient compression on the wire: none, fp16 or bf16 (with error feedback).</summary>
    [Id(27)] public GradientCompression Compression { get; init; } = GradientCompression.None;

    /// <summary>Steps the learning-rate schedule spans: the plan's total, filled in by the job grain.</summary>
    [Id(28)] public long ScheduleSteps { get; init; }

    /// <summary>
    /// Per-filter metric series recorded per job at most: aggregated (layer, filter) series first, then each worker's
    /// (worker, layer, filter), in model and worker order. The rest are counted in clusterconv.filter.series_dropped
    /// and left out of the metrics (metrics.jsonl and spans still carry them). 0: no per-filter metrics.
    /// </summary>
    [Id(29)] public int MaxFilterSeries { get; init; } = 2048;

    /// <summary>Non-finite gradients refused (each skips its step) before the job stops as diverged; 0: stop at the first.</summary>
    [Id(30)] public int MaxNonFiniteRefusals { get; init; } = 3;

    /// <summary>
    /// bsp: a worker whose gradient norm exceeds this many times the median of the other workers' (3 or more workers)
    /// or of its own recent steps (fewer) is reported as divergent. 0: no check.
    /// </summary>
    [Id(31)] public double DivergenceFactor { get; init; } = 10;
}

public enum ConsistencyMode
{
    Bsp = 0,
    Ssp = 1,
    Async = 2,
}

public enum GradientCompression
{
    None = 0,
    Fp16 = 1,
    Bf16 = 2,
}

/// <summary>
/// Job → worker: compute the worker's micro-batches of global step <see cref="Step"/> on weights version <see cref="Step"/>.
/// With <see cref="RunAhead"/>, the worker goes on to step Step + 1 as soon as its weights are there, without waiting for
/// that step's order (which then takes the result): the job's turn-around leaves the step's critical path.
/// <see cref="NextTrace"/> is the W3C id of step Step + 1's span, so the step run ahead still reads as one trace.
/// </summary>
[GenerateSerializer, Immutable, Alias("clusterconv.StepOrder")]
public sealed record StepOrder(
    [property: Id(0)] JobSpec Spec,
    [property: Id(1)] int WorkerIndex,
    [property: Id(2)] long Step,
    [property: Id(3)] bool RunAhead = false,
    [property: Id(4)] string? NextTrace = null);

/// <summary>Per-layer activation sign counts of a worker's micro-batches, summed, for sparsity and dead filters (off statistics steps Positive only says whether a filter fired: micro-batches with a positive value).</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.ActivationCounts")]
public sealed record ActivationCounts([property: Id(0)] long[] Positive, [property: Id(1)] long[] Zero, [property: Id(2)] long[] Total);

/// <summary>Worker → job: what one step cost and measured.</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.StepReport")]
public sealed record StepReport(
    [property: Id(0)] long Step,
    [property: Id(1)] double LossSum,
    [property: Id(2)] int Correct,
    [property: Id(3)] int Samples,
    [property: Id(4)] ActivationCounts Counts,
    [property: Id(5)] long BytesMoved,
    [property: Id(6)] double ComputeSeconds,
    [property: Id(7)] long StaleVersion = -1,
    [property: Id(8)] PushResult[]? Applied = null,
    [property: Id(9)] WorkerStep? Worker = null,
    [property: Id(10)] bool Refused = false,
    [property: Id(11)] bool WeightsMismatch = false,
    [property: Id(12)] double GradientNorm = double.NaN);

/// <summary>
/// A run of one reduction-tree node's gradient, for one parameter-server shard: floats [Offset, Offset + n) of the shard's
/// slice as little-endian bytes (or fp16/bf16 halves). Inside a silo the bytes are the worker's own buffer (see <see cref="FloatBytes"/>).
/// </summary>
[GenerateSerializer, Immutable, Alias("clusterconv.GradientChunk")]
public sealed record GradientChunk(
    [property: Id(0)] long Step,
    [property: Id(1)] int NodeStart,
    [property: Id(2)] int NodeEnd,
    [property: Id(3)] int Offset,
    [property: Id(4)] int Count,
    [property: Id(5)] GradientCompression Encoding,
    [property: Id(6)] ReadOnlyMemory<byte> Bytes,
    [property: Id(7)] int Samples,
    [property: Id(8)] bool WithStats = false,
    [property: Id(9)] int GlobalSamples = 0,
    [property: Id(10)] int Worker = -1,
    [property: Id(11)] bool NonFinite = false,
    [property: Id(12)] ulong WeightsChecksum = 0);

/// <summary>Parameter server → worker: whether the chunk was new, and the step's apply report when this chunk completed the reduction tree (bsp).</summary>
/// <param name="Refused">The chunk was refused as non-finite (its values, or the worker's flag for the node).</param>
/// <param name="WeightsMismatch">bsp: the worker's checksum of the weights it computed on differs from the shard's version.</param>
[GenerateSerializer, Immutable, Alias("clusterconv.PushResult")]
public sealed record PushResult([property: Id(0)] bool Taken, [property: Id(1)] int Shard, [property: Id(2)] ApplyReport? Applied, [property: Id(3)] bool Refused = false, [property: Id(4)] bool WeightsMismatch = false);

/// <summary>
/// A run of a shard's weights at a version: floats [Offset, Offset + n) of the slice as little-endian bytes, in segments
/// of <see cref="WireFormat.SegmentFloats"/> floats (below the large-object heap's threshold: a shard's copy per version
/// is then an ordinary young object, not a large one whose allocations start full collections).
/// </summary>
[GenerateSerializer, Immutable, Alias("clusterconv.WeightsChunk")]
public sealed record WeightsChunk([property: Id(0)] long Version, [property: Id(1)] int Offset, [property: Id(2)] int SliceLength, [property: Id(3)] int Chunks, [property: Id(4)] byte[][] Segments)
{
    /// <summary>Floats in this chunk.</summary>
    public int Count => ByteCount / sizeof(float);

    public int ByteCount
    {
        get
        {
            var bytes = 0;
            foreach (var segment in Segments)
            {
                bytes += segment.Length;
            }

            return bytes;
        }
    }

    /// <summary>The chunk's floats into <paramref name="destination"/> (exactly <see cref="Count"/> long).</summary>
    public void CopyTo(Span<float> destination)
    {
        if (destination.Length != Count)
        {
            throw new ArgumentException($"weights chunk of {Count} floats does not fit {destination.Length}", nameof(destination));
        }

        var at = 0;
        foreach (var segment in Segments)
        {
            WireFormat.FromBytes(segment, destination.Slice(at, segment.Length / sizeof(float)));
            at += segment.Length / sizeof(float);
        }
    }
}

/// <summary>Job → parameter server: aggregate the contributions of step <see cref="Step"/> and apply them.</summary>
/// <param name="AllowPartial">bsp with backup workers: missing tree nodes count as zero; the mean is over the samples present.</param>
[GenerateSerializer, Immutable, Alias("clusterconv.ApplyOrder")]
public sealed record ApplyOrder([property: Id(0)] JobSpec Spec, [property: Id(1)] long Step, [property: Id(2)] bool WithStats, [property: Id(3)] bool AllowPartial, [property: Id(4)] int GlobalSamples);

/// <summary>Per-row partial sums of squares of one kernel parameter over the rows a shard holds (for per-filter norms).</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.RowSums")]
public sealed record RowSums(
    [property: Id(0)] int Parameter,
    [property: Id(1)] double[] GradientSquares,
    [property: Id(2)] double[] WeightSquares,
    [property: Id(3)] double[] BeforeSquares,
    [property: Id(4)] double[] DistanceSquares);

/// <summary>
/// Parameter server → job: the version after the call, whether this call applied, statistics sums when asked, and
/// whether the shard restored itself from its checkpoint (its silo died) since its last report.
/// </summary>
[GenerateSerializer, Immutable, Alias("clusterconv.ApplyReport")]
public sealed record ApplyReport(
    [property: Id(0)] long Version,
    [property: Id(1)] bool Applied,
    [property: Id(2)] int DroppedNodes,
    [property: Id(3)] RowSums[] Rows,
    [property: Id(4)] bool Restored = false,
    [property: Id(5)] bool HandedOver = false);

/// <summary>Job → worker: evaluate test samples [Start, Start + Count) on weights version <see cref="Version"/>.</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.EvalOrder")]
public sealed record EvalOrder([property: Id(0)] JobSpec Spec, [property: Id(1)] int WorkerIndex, [property: Id(2)] long Version, [property: Id(3)] int Start, [property: Id(4)] int Count);

[GenerateSerializer, Immutable, Alias("clusterconv.EvalReport")]
public sealed record EvalReport([property: Id(0)] double LossSum, [property: Id(1)] int Correct, [property: Id(2)] int Count, [property: Id(3)] long BytesMoved);

/// <summary>
/// ssp and async: one worker's statistics round (round % StatsEvery == 0): the row sums its update produced on each
/// shard, its activation counts of that round, per filter the micro-batches with a positive output since its previous
/// statistics round (dead filters), and its own per-filter numbers.
/// </summary>
[GenerateSerializer, Immutable, Alias("clusterconv.RoundStatistics")]
public sealed record RoundStatistics(
    [property: Id(0)] long Round,
    [property: Id(1)] ApplyReport[] Applies,
    [property: Id(2)] ActivationCounts Counts,
    [property: Id(3)] long[] FiredSince,
    [property: Id(4)] double LossSum,
    [property: Id(5)] int Correct,
    [property: Id(6)] int Samples,
    [property: Id(7)] WorkerStep Worker);

/// <summary>Job → worker in ssp and async modes: run steps on your own until the job's end.</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.RunOrder")]
public sealed record RunOrder([property: Id(0)] JobSpec Spec, [property: Id(1)] int WorkerIndex, [property: Id(2)] long FirstRound, [property: Id(3)] long Rounds);

public enum JobPhase
{
    Pending = 0,
    Running = 1,
    Completed = 2,
    Failed = 3,
    Cancelled = 4,
}

/// <summary>Per-filter statistics of one layer at one step (plain values; the client turns them into metrics.jsonl).</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.LayerStatistics")]
public sealed record LayerStatistics(
    [property: Id(0)] string Layer,
    [property: Id(1)] string LayerType,
    [property: Id(2)] float[] GradientNorm,
    [property: Id(3)] float[] WeightNorm,
    [property: Id(4)] float[] UpdateRatio,
    [property: Id(5)] float[] Sparsity,
    [property: Id(6)] string SparsityMetric,
    [property: Id(7)] string Activation,
    [property: Id(8)] int[] DeadFilters);

/// <summary>One line of progress: a logged step (Epoch result fields null) or an epoch result.</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.JobEvent")]
public sealed record JobEvent
{
    [Id(0)] public long Sequence { get; init; }

    [Id(1)] public bool IsEpoch { get; init; }

    [Id(2)] public int Epoch { get; init; }

    [Id(3)] public long Step { get; init; }

    [Id(4)] public double WallSeconds { get; init; }

    [Id(5)] public double Loss { get; init; }

    [Id(6)] public double Accuracy { get; init; }

    [Id(7)] public double LearningRate { get; init; }

    [Id(8)] public double TestLoss { get; init; }

    [Id(9)] public double TestAccuracy { get; init; }

    [Id(10)] public LayerStatistics[]? Filters { get; init; }

    [Id(11)] public long StepsInEpoch { get; init; }

    [Id(12)] public double SamplesPerSecond { get; init; }

    /// <summary>Each worker's share of this step (bsp; null when not recorded).</summary>
    [Id(13)] public WorkerStep[]? Workers { get; init; }

    /// <summary>Not a step line: a worker refused or reported as divergent at <see cref="Step"/>.</summary>
    [Id(14)] public JobAlert? Alert { get; init; }
}

/// <summary>A worker named for a non-finite gradient (refused, its step skipped) or as divergent (gradient norm or weights).</summary>
/// <param name="Kind">One of <see cref="NonFinite"/>, <see cref="GradientOutlier"/>, <see cref="WeightsMismatch"/>.</param>
/// <param name="Value">gradient_outlier: the worker's gradient norm; otherwise NaN.</param>
/// <param name="Reference">gradient_outlier: the median it was compared with; otherwise NaN.</param>
[GenerateSerializer, Immutable, Alias("clusterconv.JobAlert")]
public sealed record JobAlert(
    [property: Id(0)] string Kind,
    [property: Id(1)] int Worker,
    [property: Id(2)] long Step,
    [property: Id(3)] string Message,
    [property: Id(4)] double Value = double.NaN,
    [property: Id(5)] double Reference = double.NaN)
{
    public const string NonFinite = "nonfinite_gradient";
    public const string GradientOutlier = "gradient_outlier";
    public const string WeightsMismatch = "weights_mismatch";
}

/// <summary>One worker's share of one step: where and how long it ran, and, on statistics steps, its per-filter numbers before aggregation.</summary>
/// <param name="StartSeconds">Job wall clock (seconds since the job started) when the step was handed to the worker.</param>
/// <param name="DurationSeconds">From the order reaching the worker to its last gradient push returning (compute and push).</param>
/// <param name="Loss">Mean loss over the worker's samples of this step.</param>
[GenerateSerializer, Immutable, Alias("clusterconv.WorkerStep")]
public sealed record WorkerStep(
    [property: Id(0)] int Worker,
    [property: Id(1)] string Silo,
    [property: Id(2)] double StartSeconds,
    [property: Id(3)] double DurationSeconds,
    [property: Id(4)] int Samples,
    [property: Id(5)] double Loss,
    [property: Id(6)] WorkerLayerStatistics[]? Filters);

/// <summary>One worker's per-filter numbers for one measured layer, before aggregation: the L2 norm of each filter's row of its mean local gradient, of its copy of the weights, and the activation sparsity over its samples.</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.WorkerLayerStatistics")]
public sealed record WorkerLayerStatistics(
    [property: Id(0)] string Layer,
    [property: Id(1)] float[] GradientNorm,
    [property: Id(2)] float[] WeightNorm,
    [property: Id(3)] float[] Sparsity);

/// <summary>Where a job is and what it has cost so far.</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.JobStatus")]
public sealed record JobStatus
{
    [Id(0)] public string JobId { get; init; } = string.Empty;

    [Id(1)] public JobPhase Phase { get; init; }

    [Id(2)] public long Step { get; init; }

    [Id(3)] public long TotalSteps { get; init; }

    [Id(4)] public int Epoch { get; init; }

    [Id(5)] public string? Error { get; init; }

    [Id(6)] public long BytesMoved { get; init; }

    [Id(7)] public int Restarts { get; init; }

    [Id(8)] public int Rebalances { get; init; }

    [Id(9)] public long StepsRecomputed { get; init; }

    [Id(10)] public long DroppedContributions { get; init; }

    [Id(11)] public double WallSeconds { get; init; }

    [Id(12)] public double TrainSeconds { get; init; }

    [Id(13)] public long TrainSamples { get; init; }

    [Id(14)] public string? WeightsSha256 { get; init; }

    [Id(15)] public int Silos { get; init; }

    [Id(16)] public long EventCount { get; init; }

    [Id(17)] public string Incarnation { get; init; } = string.Empty;

    [Id(18)] public long LastCheckpointStep { get; init; }

    [Id(19)] public int Workers { get; init; }

    [Id(20)] public int PsShards { get; init; }

    [Id(21)] public string Mode { get; init; } = "bsp";

    /// <summary>Failed on its input (data set or model file) rather than in the cluster.</summary>
    [Id(22)] public bool BadInput { get; init; }

    /// <summary>Non-finite gradients refused by the parameter servers (one per worker and step).</summary>
    [Id(23)] public long NonFiniteRefusals { get; init; }

    /// <summary>bsp steps dropped whole because a gradient of theirs was refused.</summary>
    [Id(24)] public long StepsSkipped { get; init; }

    /// <summary>Worker steps whose gradient norm was far above the others' (or its own recent ones).</summary>
    [Id(25)] public long GradientOutliers { get; init; }

    /// <summary>Worker steps computed on weights that differ from the parameter servers' version.</summary>
    [Id(26)] public long WeightsMismatches { get; init; }

    /// <summary>Workers named by any of the above, ascending.</summary>
    [Id(27)] public int[] DivergentWorkers { get; init; } = [];

    /// <summary>bsp: the median step duration of the job's last activation once training has ended (0 before, and in ssp and async).</summary>
    [Id(28)] public double MedianStepSeconds { get; init; }
}

/// <summary>Events after a sequence number, with the job's incarnation (a restarted job grain starts a new one).</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.JobEvents")]
public sealed record JobEvents([property: Id(0)] string Incarnation, [property: Id(1)] JobEvent[] Events, [property: Id(2)] JobStatus Status);

/// <summary>The L2 norm of one ssp/async round's mean local gradient of a worker (the job compares workers with it).</summary>
[GenerateSerializer, Immutable, Alias("clusterconv.RoundNorm")]
public sealed record RoundNorm([property: Id(0)] long Round, [property: Id(1)] double Norm);

/// <summary>
/// What an ssp/async worker did since the job last asked: rounds done, an error, bytes, loss and accuracy sums, the
/// rounds the parameter servers refused, and the gradient norm of each round they took; whether its run is going
/// (a worker reactivated after its silo died has none), and how many shards said they lost their state since.
/// </summary>
[GenerateSerializer, Immutable, Alias("clusterconv.RunProgress")]
public sealed record RunProgress(
    [property: Id(0)] long Rounds,
    [property: Id(1)] string? Error,
    [property: Id(2)] long BytesMoved,
    [property: Id(3)] double LossSum,
    [property: Id(4)] int Correct,
    [property: Id(5)] int Samples,
    [property: Id(6)] long[] Refused,
    [property: Id(7)] RoundNorm[] Norms,
    [property: Id(8)] bool Running = false,
    [property: Id(9)] int ShardRestores = 0);
