using Orleans.Concurrency;

namespace ClusterConv.Cluster;

/// <summary>A training job, keyed by job id: drives workers and parameter-server shards, tracks progress, answers status queries.</summary>
[Alias("clusterconv.IJobGrain")]
public interface IJobGrain : IGrainWithStringKey
{
    /// <summary>Starts the job (or continues it when it is already running with the same spec); returns at once.</summary>
    Task<JobStatus> StartAsync(JobSpec spec);

    Task<JobStatus> GetStatusAsync();

    /// <summary>Progress events after sequence number <paramref name="after"/> (−1: from the first) of the current incarnation.</summary>
    Task<JobEvents> GetEventsAsync(string incarnation, long after);

    /// <summary>
    /// As <see cref="GetEventsAsync"/>, but waits (up to <paramref name="timeout"/>) until there is something new: an
    /// event after <paramref name="after"/>, another incarnation, or the job's end. Clients follow a job with it instead
    /// of polling; it interleaves, so status and cancel calls are answered meanwhile.
    /// </summary>
    [AlwaysInterleave]
    Task<JobEvents> WaitForEventsAsync(string incarnation, long after, TimeSpan timeout);

    Task<JobStatus> CancelAsync();

    /// <summary>The spec the job runs with (null before it started), for a client that attaches later.</summary>
    Task<JobSpec?> GetSpecAsync();

    /// <summary>
    /// bsp: the weights and moving statistics (<see cref="ClusterVector"/>, little-endian float32) after <paramref name="step"/> steps, if this activation kept
    /// them: at each epoch's end and, when no epoch ends inside the run, at half the steps. Null otherwise.
    /// </summary>
    Task<byte[]?> GetSnapshotAsync(long step);
}

/// <summary>A worker of a job, keyed by (worker index, job id): owns micro-batch slots and their data shards.</summary>
[Alias("clusterconv.IWorkerGrain")]
public interface IWorkerGrain : IGrainWithIntegerCompoundKey
{
    /// <summary>bsp: pulls weights version Step, computes the gradients of its micro-batches of step Step, pushes them.</summary>
    Task<StepReport> ComputeStepAsync(StepOrder order);

    /// <summary>bsp, before the job's train clock runs: builds the worker's model and data shards and requests the weights of step Step.</summary>
    Task PrepareAsync(StepOrder order);

    Task<EvalReport> EvaluateAsync(EvalOrder order);

    /// <summary>ssp and async: runs its own steps from FirstRound until Rounds are done, pushing each as it goes; returns at once.</summary>
    Task StartRunAsync(RunOrder order);

    /// <summary>ssp and async: rounds done so far (−1 when not running), the last error, if any, and the rounds refused as non-finite since the last call.</summary>
    Task<RunProgress> GetRunProgressAsync();

    /// <summary>
    /// As <see cref="GetRunProgressAsync"/>, but first waits (up to <paramref name="timeout"/>) until the worker has
    /// done more than <paramref name="afterRounds"/> rounds, failed or stopped: the job follows its workers without polling.
    /// </summary>
    [AlwaysInterleave]
    Task<RunProgress> WaitRunProgressAsync(long afterRounds, TimeSpan timeout);

    /// <summary>ssp and async: the statistics rounds done since the last call (each handed out once).</summary>
    Task<RoundStatistics[]> TakeRoundStatisticsAsync();

    /// <summary>
    /// Between steps: when the silo this worker belongs on (its index mod the silo count, over the silos sorted by
    /// address) is not the one it runs on, it moves there once idle. True when it will move.
    /// </summary>
    Task<bool> RebalanceAsync(string[] silos);

    /// <summary>ssp: rounds done, for a peer's staleness check (answered between turns: peers ask each other while busy).</summary>
    [AlwaysInterleave]
    Task<long> PeekRoundsAsync();

    Task StopAsync();
}

/// <summary>A parameter-server shard, keyed by (shard index, job id): a contiguous slice of the trainable parameters with its optimizer state.</summary>
[Alias("clusterconv.IParameterServerGrain")]
public interface IParameterServerGrain : IGrainWithIntegerCompoundKey
{
    /// <summary>Fresh: initial weights from the seed; otherwise the last checkpoint when there is one. Returns the version (steps applied).</summary>
    Task<long> InitializeAsync(JobSpec spec, bool fresh);

    /// <summary>
    /// Chunk <paramref name="chunk"/> of the weights, waiting (up to a few seconds) until the version reaches
    /// <paramref name="minVersion"/>, so a worker can ask for the next step's weights as soon as it has pushed (the
    /// caller checks the version it gets). Interleaves with pushes while it waits.
    /// </summary>
    [AlwaysInterleave]
    Task<WeightsChunk> GetWeightsAsync(JobSpec spec, int chunk, long minVersion);

    /// <summary>The version of this shard's weights (steps, or in ssp and async updates, applied); a reactivated shard reports its checkpoint's.</summary>
    Task<long> GetVersionAsync(JobSpec spec);

    /// <summary>
    /// One chunk of one tree node's gradient for a step; a chunk seen before, or for a step already applied, is ignored.
    /// In bsp without backup workers, the chunk that completes the step's tree applies the step, and its result says so.
    /// </summary>
    Task<PushResult> PushAsync(JobSpec spec, GradientChunk chunk);

    /// <summary>Reduces the step's contributions over the fixed tree and applies the optimizer, once: a repeated call changes nothing.</summary>
    Task<ApplyReport> ApplyAsync(ApplyOrder order);

    /// <summary>
    /// Drops step <paramref name="step"/> (a gradient of it was refused): the version moves past it with the weights
    /// and optimizer state unchanged. Once: a repeated call reports the same; Applied true means the shard had applied it.
    /// </summary>
    Task<ApplyReport> SkipAsync(JobSpec spec, long step);

    /// <summary>Saves weights, optimizer state and version to grain storage when the version is <paramref name="step"/>.</summary>
    Task<bool> CheckpointAsync(JobSpec spec, long step);

    /// <summary>Restores the checkpoint of <paramref name="step"/> (or the initial weights for step 0); returns the version.</summary>
    Task<long> RollbackAsync(JobSpec spec, long step);
}
