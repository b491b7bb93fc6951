using System.Diagnostics;
using ClusterConv.Cluster.Telemetry;
using ClusterConv.Engine;
using ClusterConv.Engine.Optimizers;
using ClusterConv.Engine.Specs;
using ClusterConv.Engine.Statistics;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace ClusterConv.Cluster;

/// <summary>What a job grain keeps in storage: enough to pick the job up on another silo from its last checkpoint.</summary>
[GenerateSerializer, Alias("clusterconv.JobState")]
public sealed class JobState
{
    [Id(0)] public JobSpec? Spec { get; set; }

    [Id(1)] public JobPhase Phase { get; set; }

    [Id(2)] public long LastCheckpointStep { get; set; }

    [Id(3)] public int Restarts { get; set; }

    [Id(4)] public long StepsRecomputed { get; set; }

    [Id(5)] public string? Error { get; set; }

    [Id(6)] public string? WeightsSha256 { get; set; }

    [Id(7)] public long Step { get; set; }

    [Id(8)] public long BytesMoved { get; set; }

    [Id(9)] public double TrainSeconds { get; set; }

    [Id(10)] public long TrainSamples { get; set; }

    [Id(11)] public double WallSeconds { get; set; }

    [Id(12)] public long TotalSteps { get; set; }

    [Id(13)] public long DroppedContributions { get; set; }

    [Id(14)] public int Rebalances { get; set; }

    /// <summary>Epoch results so far: a client that follows a job whose grain moved still gets every one.</summary>
    [Id(15)] public List<JobEvent> EpochEvents { get; set; } = [];

    [Id(16)] public int Silos { get; set; }

    /// <summary>The last activation stopped at a step boundary and checkpointed there (graceful hand-over).</summary>
    [Id(17)] public bool HandedOver { get; set; }

    /// <summary>The failure was the job's input (data set or model file), not the cluster.</summary>
    [Id(18)] public bool BadInput { get; set; }

    [Id(19)] public long NonFiniteRefusals { get; set; }

    [Id(20)] public long StepsSkipped { get; set; }

    [Id(21)] public long GradientOutliers { get; set; }

    [Id(22)] public long WeightsMismatches { get; set; }

    /// <summary>Workers named by a refusal or a divergence, ascending.</summary>
    [Id(23)] public List<int> DivergentWorkers { get; set; } = [];

    /// <summary>
    /// ssp and async: each shard's version at the checkpoint of round <see cref="LastCheckpointStep"/> (a version there
    /// counts every worker's updates); empty in bsp, where it is the step itself.
    /// </summary>
    [Id(24)] public long[] LastCheckpointVersions { get; set; } = [];
}

/// <summary>The job stopped on non-finite gradients past --max-nonfinite-refusals.</summary>
public sealed class TrainingDivergedException : InvalidOperationException
{
    public TrainingDivergedException()
    {
    }

    public TrainingDivergedException(string message)
        : base(message)
    {
    }

    public TrainingDivergedException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// Runs one job: builds the plan, initializes the parameter-server shards, then per step asks every worker for its
/// micro-batches' gradients (bsp), has every shard apply the step once, checkpoints every K steps and evaluates after
/// each epoch. The loop runs in the grain ("start, then report back"); clients poll status and events. A worker call
/// that fails (its silo died) is retried and lands on a new activation; a shard that came back from its checkpoint
/// makes the job roll every shard back to that checkpoint.
/// </summary>
public sealed class JobGrain : Grain, IJobGrain
{
    public const string StorageName = ParameterServerGrain.StorageName;
    private static readonly TimeSpan RetryWindow = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(45);

    private readonly IPersistentState<JobState> persisted;
    private readonly TrainingDataCache dataCache;
    private readonly ILogger<JobGrain> logger;
    private readonly List<JobEvent> events = [];
    private TaskCompletionSource eventsChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Weights at epoch ends (and mid-run) for clients to save; read while the job waits, so they are exact. The last few only.
    private readonly SortedDictionary<long, byte[]> snapshots = [];
    private const int SnapshotsKept = 4;
    private (long Step, Task Task)? capturing;
    private readonly Stopwatch wall = new();
    private readonly Stopwatch trainClock = new();
    private string incarnation = Guid.NewGuid().ToString("N");
    private Task? loop;
    private bool cancelRequested;
    private bool handoverRequested;

    // bsp: the membership version the job last rebalanced for; a newer one stops the run-ahead so that the workers
    // can move at the next step boundary (the check reads the silo's own membership view: no call, every step).
    private readonly IClusterMembershipService membership;
    private readonly ISiloStatusOracle siloStatus;
    private MembershipVersion? rebalancedFor;

    // bsp: the last step was handed out with RunAhead (the workers are computing the next one), the last step applied
    // and when (where a step run ahead began), and the span made for that next step.
    private bool ranAhead;
    private long aheadFromStep = -1;

    // bsp: every step's duration in this activation (as clusterconv.step.duration), and their median once training ends.
    private readonly List<double> stepSeconds = [];
    private double medianStepSeconds;
    private TimeSpan lastAppliedAt;
    private Activity? nextSpan;
    private long nextSpanStep = -1;

    // Set for any deactivation: a loop that then fails (its activation turned invalid) leaves the job to the next one.
    private DeactivationReason? deactivated;
    private string[]? knownSilos;
    private int silos;
    private int epochNow;
    private Activity? jobSpan;
    private Activity? epochSpan;

    // Each worker's recent gradient norms (bsp with fewer than 3 workers: its own history is the reference).
    private readonly Dictionary<int, List<double>> normHistory = [];
    private const int NormHistory = 20;
    private const int NormHistoryNeeded = 5;

    public JobGrain([PersistentState("job", StorageName)] IPersistentState<JobState> persisted, TrainingDataCache dataCache, IClusterMembershipService membership, ISiloStatusOracle siloStatus, ILogger<JobGrain> logger)
    {
        this.persisted = persisted;
        this.membership = membership;
        this.siloStatus = siloStatus;
        this.dataCache = dataCache;
        this.logger = logger;
    }

    private JobState State => persisted.State;

    /// <summary>
    /// A graceful deactivation (its silo shuts down) stops the loop at the next step boundary and checkpoints every
    /// shard there, so the next activation continues from that very step.
    /// </summary>
    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        // Only a silo shutting down waits for the step boundary; on other deactivations (e.g. a duplicate activation
        // after a silo died) the loop just stops and the job continues from its checkpoint where it is next called.
        deactivated = reason;
        if (loop is { IsCompleted: false } running && reason.ReasonCode == DeactivationReasonCode.ShuttingDown)
        {
            handoverRequested = true;
            await running.WaitAsync(TimeSpan.FromSeconds(20), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Current);
        }
    }

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (persisted.RecordExists && State.Phase == JobPhase.Running && State.Spec is not null)
        {
            // This job was running on a silo that stopped (hand-over) or died (restart from the last checkpoint).
            if (State.HandedOver)
            {
                State.Rebalances++;
                State.HandedOver = false;
            }
            else
            {
                State.Restarts++;
                ClusterTelemetry.JobRestarts.Add(1, new KeyValuePair<string, object?>(ClusterTelemetry.Tags.Job, State.Spec.JobId));
            }

            StartLoop(State.Spec, fresh: false);
        }

        return Task.CompletedTask;
    }

    public async Task<JobStatus> StartAsync(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Validate(spec);
        if (loop is { IsCompleted: false } && State.Phase != JobPhase.Running)
        {
            // The loop has ended (cancelled, failed, done) and is saving its state: let it finish first.
            await loop;
        }

        if (loop is { IsCompleted: false })
        {
            if (State.Spec is { } running && !spec.Resume && running == spec with { Resume = running.Resume })
            {
                // The same job submitted again (a client that reconnected): keep it running.
                return Status();
            }

            // A different job under this id (e.g. a new run into the same folder after a crash): replace it.
            cancelRequested = true;
            await loop;
        }

        var resume = spec.Resume && persisted.RecordExists && State.Spec is not null && State.LastCheckpointStep > 0;
        var previous = State;
        persisted.State = new JobState
        {
            Spec = spec,
            Phase = JobPhase.Running,
            LastCheckpointStep = resume ? previous.LastCheckpointStep : 0,
            LastCheckpointVersions = resume ? previous.LastCheckpointVersions : [],
            Restarts = resume ? previous.Restarts : 0,
            NonFiniteRefusals = resume ? previous.NonFiniteRefusals : 0,
            StepsSkipped = resume ? previous.StepsSkipped : 0,
            GradientOutliers = resume ? previous.GradientOutliers : 0,
            WeightsMismatches = resume ? previous.WeightsMismatches : 0,
            DivergentWorkers = resume ? previous.DivergentWorkers : [],
        };
        await persisted.WriteStateAsync();
        await GrainFactory.GetGrain<IJobRegistryGrain>(0).AddAsync(spec.JobId);
        StartLoop(spec, fresh: !resume);
        return Status();
    }

    public Task<JobStatus> GetStatusAsync() => Task.FromResult(Status());

    public Task<JobSpec?> GetSpecAsync() => Task.FromResult(State.Spec);

    public async Task<byte[]?> GetSnapshotAsync(long step)
    {
        // The step's event (and so State.Step) goes out before its weights are read: a client woken by that event
        // asks while they are on their way.
        if (capturing is { } pending && pending.Step == step && !pending.Task.IsCompleted)
        {
            try
            {
                await pending.Task;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return null;
            }
        }

        return snapshots.GetValueOrDefault(step);
    }

    private Task KeepSnapshotAsync(JobSpec spec, IParameterServerGrain[] servers, int length, long step)
    {
        var task = CaptureSnapshotAsync(spec, servers, length, step);
        capturing = (step, task);
        return task;
    }

    private async Task CaptureSnapshotAsync(JobSpec spec, IParameterServerGrain[] servers, int length, long step)
    {
        var weights = await ReadWeightsAsync(spec, servers, length);
        snapshots[step] = WireFormat.ToBytes(weights);
        while (snapshots.Count > SnapshotsKept)
        {
            snapshots.Remove(snapshots.Keys.First());
        }
    }

    public Task<JobEvents> GetEventsAsync(string incarnation, long after)
    {
        var from = incarnation == this.incarnation ? after + 1 : 0;
        var slice = from >= events.Count ? [] : events.Skip((int)from).Take(2000).ToArray();
        return Task.FromResult(new JobEvents(this.incarnation, slice, Status()));
    }

    /// <summary>Long poll: returns when there are events after <paramref name="after"/>, the job is not running, the incarnation changed, or the timeout passed.</summary>
    public async Task<JobEvents> WaitForEventsAsync(string incarnation, long after, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (incarnation == this.incarnation && after + 1 >= events.Count && (State.Phase is JobPhase.Running or JobPhase.Pending) && clock.Elapsed < timeout)
        {
            var changed = eventsChanged.Task;
            await Task.WhenAny(changed, Task.Delay(timeout - clock.Elapsed));
        }

        return await GetEventsAsync(incarnation, after);
    }

    /// <summary>Adds a progress event and wakes the clients waiting for one.</summary>
    private void Publish(JobEvent e)
    {
        events.Add(e);
        SignalEvents();
    }

    private void SignalEvents()
    {
        var changed = eventsChanged;
        eventsChanged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    public Task<JobStatus> CancelAsync()
    {
        cancelRequested = true;
        return Task.FromResult(Status());
    }

    /// <summary>Settings that cannot work, named as on the command line.</summary>
    public static void Validate(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Check(spec.Workers >= 1, $"--workers must be at least 1 in cluster mode, got {spec.Workers}");
        Check(spec.MicroBatches >= 1, $"--micro-batches must be at least 1, got {spec.MicroBatches}");
        Check(spec.Workers <= spec.MicroBatches, $"--workers ({spec.Workers}) cannot exceed --micro-batches ({spec.MicroBatches}): each worker owns at least one micro-batch slot");
        Check(spec.BatchSize >= spec.MicroBatches, $"--batch-size ({spec.BatchSize}) must be at least --micro-batches ({spec.MicroBatches})");
        Check(spec.PsShards >= 1, $"--ps-shards must be at least 1, got {spec.PsShards}");
        Check(spec.BackupWorkers >= 0 && spec.BackupWorkers < spec.Workers, $"--backup-workers must be in [0, workers), got {spec.BackupWorkers}");
        Check(spec.BackupWorkers == 0 || spec.Mode == ConsistencyMode.Bsp, "--backup-workers applies to --mode bsp only");
        Check(spec.Staleness >= 0, $"--mode ssp:K needs K >= 0, got {spec.Staleness}");
        Check(spec.CheckpointEvery >= 0, $"--checkpoint-every must be 0 or more, got {spec.CheckpointEvery}");
        Check(spec.MaxFilterSeries >= 0, $"MaxFilterSeries must be 0 or more, got {spec.MaxFilterSeries}");
        Check(spec.MaxNonFiniteRefusals >= 0, $"--max-nonfinite-refusals must be 0 or more, got {spec.MaxNonFiniteRefusals}");
        Check(spec.DivergenceFactor == 0 || (spec.DivergenceFactor > 1 && double.IsFinite(spec.DivergenceFactor)), $"--divergence-factor must be 0 (off) or a number above 1, got {spec.DivergenceFactor}");
        var model = new Model(KerasModelReader.Read(spec.ModelJson, $"job {spec.JobId}"));
        // Throws for a non-trainable parameter other than BatchNormalization's moving statistics.
        var vector = new ClusterVector(model);
        Check(spec.PsShards <= vector.Trainable, $"--ps-shards ({spec.PsShards}) exceeds the model's {model.TrainableParameterCount} parameters");
    }

    private static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }

    private JobStatus Status() => new()
    {
        Silos = Math.Max(silos, State.Silos),
        JobId = this.GetPrimaryKeyString(),
        Phase = State.Phase,
        Step = State.Step,
        TotalSteps = State.TotalSteps,
        Epoch = epochNow,
        Error = State.Error,
        BadInput = State.BadInput,
        BytesMoved = State.BytesMoved,
        Restarts = State.Restarts,
        Rebalances = State.Rebalances,
        StepsRecomputed = State.StepsRecomputed,
        DroppedContributions = State.DroppedContributions,
        WallSeconds = wall.IsRunning ? wall.Elapsed.TotalSeconds : State.WallSeconds,
        TrainSeconds = trainClock.Elapsed.TotalSeconds > 0 ? trainClock.Elapsed.TotalSeconds : State.TrainSeconds,
        MedianStepSeconds = medianStepSeconds,
        TrainSamples = State.TrainSamples,
        WeightsSha256 = State.WeightsSha256,
        EventCount = events.Count,
        Incarnation = incarnation,
        LastCheckpointStep = State.LastCheckpointStep,
        Workers = State.Spec?.Workers ?? 0,
        PsShards = State.Spec?.PsShards ?? 0,
        Mode = State.Spec is null ? "bsp" : ModeName(State.Spec),
        NonFiniteRefusals = State.NonFiniteRefusals,
        StepsSkipped = State.StepsSkipped,
        GradientOutliers = State.GradientOutliers,
        WeightsMismatches = State.WeightsMismatches,
        DivergentWorkers = State.DivergentWorkers.ToArray(),
    };

    public static string ModeName(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec.Mode switch
        {
            ConsistencyMode.Ssp => $"ssp:{spec.Staleness}",
            ConsistencyMode.Async => "async",
            _ => "bsp",
        };
    }

    private void StartLoop(JobSpec spec, bool fresh)
    {
        incarnation = Guid.NewGuid().ToString("N");
        events.Clear();
        events.AddRange(State.EpochEvents.Select((e, i) => e with { Sequence = i }));
        cancelRequested = false;
        SignalEvents();
        loop = RunAsync(spec, fresh);
    }

    private async Task RunAsync(JobSpec requested, bool fresh)
    {
        wall.Restart();
        trainClock.Reset();

        // The job's span is a root of its own: not a child of whichever client call happened to start the loop.
        Activity.Current = null;
        using var span = ClusterTelemetry.Source.StartActivity(ClusterTelemetry.Spans.Job);
        jobSpan = span?.SetTag(ClusterTelemetry.Attributes.Job, requested.JobId)
            .SetTag(ClusterTelemetry.Attributes.Mode, ModeName(requested))
            .SetTag(ClusterTelemetry.Attributes.Workers, requested.Workers)
            .SetTag(ClusterTelemetry.Attributes.PsShards, requested.PsShards);
        try
        {
            await TrainAsync(requested, fresh);
        }
        catch (Exception e) when (e is Orleans.Storage.InconsistentStateException)
        {
            // Another activation of this job wrote its state (a duplicate after a silo died): leave the job to it.
            logger.LogWarning("job {Job}: another activation owns the job ({Error}); this one stops", requested.JobId, e.Message);
            EndEpochSpan();
            DeactivateOnIdle();
            return;
        }
        catch (Exception e) when (e is not OutOfMemoryException && deactivated is { } reason && reason.ReasonCode != DeactivationReasonCode.ShuttingDown)
        {
            // Orleans deactivated this activation mid-step (seen when another silo died and took the job's directory
            // entry with it): the failure is this activation's, not the job's. Marking the job failed here could
            // persist that; the next call continues the job from its checkpoint instead.
            logger.LogWarning("job {Job}: this activation was deactivated ({Reason}) and stops: {Error}", requested.JobId, reason, e.Message);
            EndEpochSpan();
            return;
        }
        catch (Exception e) when (e is not OutOfMemoryException && e is not TrainingDivergedException && siloStatus.CurrentStatus != SiloStatus.Active)
        {
            // This silo is stopping or was killed (inside one process, as in Orleans' test host, a killed silo's grain code
            // can still run): the failure is the silo's, not the job's. Persisting Failed here could end the job that
            // its next activation, on a surviving silo, goes on with.
            logger.LogWarning("job {Job}: its silo is {Status}; this activation stops: {Error}", requested.JobId, siloStatus.CurrentStatus, e.Message);
            EndEpochSpan();
            return;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            if (e is TrainingDivergedException)
            {
                // Expected under a too high learning rate, and reported to the client: one line, no stack trace.
                logger.LogWarning("job {Job} failed: {Error}", requested.JobId, e.Message);
            }
            else
            {
                logger.LogError(e, "job {Job} failed", requested.JobId);
            }

            State.Phase = JobPhase.Failed;
            var cause = e is AggregateException { InnerException: { } inner } ? inner : e;
            State.Error = cause.Message;
            State.BadInput = cause is Data.DataException or Engine.Layers.ModelException;
            span?.SetStatus(ActivityStatusCode.Error, State.Error);
        }

        EndEpochSpan();
        span?.SetTag(ClusterTelemetry.Attributes.Phase, State.Phase.ToString());

        wall.Stop();
        State.WallSeconds = wall.Elapsed.TotalSeconds;
        State.TrainSeconds = trainClock.Elapsed.TotalSeconds;
        try
        {
            await WriteStateWithRetryAsync();
        }
        catch (Orleans.Storage.InconsistentStateException e)
        {
            logger.LogWarning("job {Job}: another activation owns the job ({Error}); this one stops", requested.JobId, e.Message);
            DeactivateOnIdle();
        }
        finally
        {
            // The job ended (its state saved): clients waiting for events hear it now.
            SignalEvents();
        }
    }

    private async Task TrainAsync(JobSpec requested, bool fresh)
    {
        normHistory.Clear();
        ranAhead = false;
        aheadFromStep = -1;
        stepSeconds.Clear();
        medianStepSeconds = 0;
        nextSpan?.Dispose();
        nextSpan = null;
        var data = await dataCache.GetAsync(requested);
        var layout = new Model(KerasModelReader.Read(requested.ModelJson, $"job {requested.JobId}"));
        if (new SampleShape(1, data.Train.Height, data.Train.Width) != layout.InputShape || layout.Classes < data.Train.ClassCount)
        {
            throw new ArgumentException($"model '{layout.Spec.Name}' takes {layout.InputShape} with {layout.Classes} classes; data '{requested.Data}' has 1x{data.Train.Height}x{data.Train.Width} images of {data.Train.ClassCount} classes");
        }

        var vector = new ClusterVector(layout);
        var plan = new JobPlan(requested, data.Train.Count, data.Test.Count, vector.Length);
        var spec = requested with { ScheduleSteps = plan.TotalSteps };
        State.TotalSteps = plan.TotalSteps;
        var servers = Enumerable.Range(0, spec.PsShards).Select(p => GrainFactory.GetGrain<IParameterServerGrain>(p, spec.JobId)).ToArray();
        var workers = Enumerable.Range(0, spec.Workers).Select(w => GrainFactory.GetGrain<IWorkerGrain>(w, spec.JobId)).ToArray();
        var schedule = LearningRateSchedules.Create(spec.Schedule, spec.LearningRate, Math.Max(1, plan.TotalSteps));
        var measured = FilterStatisticsCollector.MeasuredLayers(layout);
        var parameterIndex = measured.Select(l => IndexOf(layout.TrainableParameters, l.Kernel)).ToArray();
        var dead = measured.Select(l => new DeadFilterTracker(l.Kernel.Rows, spec.DeadWindow)).ToArray();
        silos = await CountSilosAsync();
        State.Silos = Math.Max(State.Silos, silos);

        long step;
        if (fresh)
        {
            await Task.WhenAll(servers.Select(s => Retry(() => s.InitializeAsync(spec, fresh: true))));
            step = 0;
        }
        else
        {
            step = State.LastCheckpointStep;
            // The steps the shards applied, or the surviving workers computed, past the checkpoint are computed again.
            // A shard that died with this job's previous activation came back at its checkpoint; its workers still
            // know how far they got (unless they died too).
            var reached = await Task.WhenAll(servers.Select(s => Retry(() => s.GetVersionAsync(spec))));
            var computed = await Task.WhenAll(workers.Select(w => Retry(() => w.PeekRoundsAsync())));
            // (In ssp and async a shard's version counts every worker's updates, not steps: the workers' rounds say it.)
            var shardSteps = spec.Mode == ConsistencyMode.Bsp ? reached.Max() : 0;
            State.StepsRecomputed += Math.Max(0, Math.Max(Math.Max(State.Step, shardSteps), computed.Max()) - step);
            await Task.WhenAll(servers.Select((s, p) => Retry(() => s.RollbackAsync(spec, CheckpointVersion(spec, p)))));
            jobSpan?.AddEvent(new ActivityEvent(ClusterTelemetry.Events.CheckpointRestored, tags: new ActivityTagsCollection { [ClusterTelemetry.Attributes.Checkpoint] = step }));
        }

        var budget = new FilterSeriesBudget(spec.MaxFilterSeries, measured.Select(l => l.Kernel.Rows).ToArray(), spec.Workers);
        if (spec.StatsEvery > 0 && budget.Dropped > 0)
        {
            ClusterTelemetry.FilterSeriesDropped.Add(budget.Dropped, new KeyValuePair<string, object?>(ClusterTelemetry.Tags.Job, spec.JobId));
            logger.LogWarning("job {Job}: {Dropped} per-filter metric series are past MaxFilterSeries ({Cap}) and are not recorded as metrics (metrics.jsonl keeps them)", spec.JobId, budget.Dropped, spec.MaxFilterSeries);
        }

        var jobTag = new KeyValuePair<string, object?>(ClusterTelemetry.Tags.Job, spec.JobId);
        var newlyDead = new List<int>();

        if (spec.Mode != ConsistencyMode.Bsp)
        {
            if (!await RunFreeAsync(spec, plan, workers, servers, step, new FreeStatistics(measured, parameterIndex, budget, spec)))
            {
                // Cancelled, or handed over to the next activation.
                return;
            }

            step = plan.TotalSteps;
        }

        if (spec.Mode == ConsistencyMode.Bsp && step < plan.TotalSteps)
        {
            // Set-up outside the train clock, as engine-only training builds its model and batches before its clock.
            await Task.WhenAll(workers.Select((w, i) => Retry(() => w.PrepareAsync(new StepOrder(spec, i, step)))));
        }

        var epoch = plan.EpochOf(step);
        double lossSum = 0;
        long correct = 0, seen = 0;
        while (spec.Mode == ConsistencyMode.Bsp && step < plan.TotalSteps)
        {
            if (cancelRequested)
            {
                nextSpan?.Dispose();
                nextSpan = null;
                State.Phase = JobPhase.Cancelled;
                return;
            }

            if (nextSpan is not null && nextSpanStep != step)
            {
                // Made for a step run ahead that a rollback called off.
                nextSpan.Dispose();
                nextSpan = null;
            }

            // A step the workers run ahead is collected first (it is being computed): the hand-over follows it.
            if (handoverRequested && !ranAhead)
            {
                await CheckpointAsync(spec, servers, step);
                State.HandedOver = State.LastCheckpointStep == step;
                return;
            }

            DelayDeactivation(TimeSpan.FromMinutes(10));
            if (MembershipChanged() && !ranAhead)
            {
                await RebalanceAsync(workers);
            }

            var batch = plan.BatchOf(step);
            epoch = plan.EpochOf(step);
            epochNow = epoch;
            BeginEpochSpan(spec, epoch);
            ClusterTelemetry.Epoch.Record(epoch + 1, jobTag);
            var withStats = spec.StatsEvery > 0 && step % spec.StatsEvery == 0;

            // Each step is a trace of its own (linked to its epoch), so a trace stays the size of one step.
            Activity.Current = null;
            using var stepSpan = nextSpan ?? StartStepSpan();
            nextSpan = null;
            Activity.Current = stepSpan;
            var runAhead = CanRunAhead(spec, plan, step);
            string? nextTrace = null;
            if (runAhead)
            {
                // The next step's span exists before its workers start on it (they run it ahead of its order).
                nextSpan = StartStepSpan();
                nextSpanStep = step + 1;
                nextTrace = nextSpan?.Id;
                Activity.Current = stepSpan;
            }

            stepSpan?.SetTag(ClusterTelemetry.Attributes.Job, spec.JobId)
                .SetTag(ClusterTelemetry.Attributes.Step, step)
                .SetTag(ClusterTelemetry.Attributes.Epoch, epoch + 1)
                .SetTag(ClusterTelemetry.Attributes.Statistics, withStats);
            var dispatched = wall.Elapsed.TotalSeconds;

            // A step run ahead began on the workers when the step before was applied, before its order went out.
            var stepStarted = ranAhead && aheadFromStep == step - 1 ? lastAppliedAt : wall.Elapsed;
            trainClock.Start();
            var reports = await RunWorkersAsync(spec, workers, step, runAhead, nextTrace);
            ranAhead = runAhead;
            var stale = reports.Where(r => r.StaleVersion >= 0).ToArray();
            if (stale.Length == 0 && reports.Any(r => r.Refused))
            {
                // A gradient of this step was refused (no shard took it): the whole step is dropped on every shard.
                trainClock.Stop();
                RefuseStep(spec, plan, epoch, step, reports, stepSpan);
                var skips = await Task.WhenAll(servers.Select(s => Retry(() => s.SkipAsync(spec, step))));
                if (skips.Any(a => a.Applied || a.Version != step + 1))
                {
                    // A shard applied the step after all (or is behind): back to the last checkpoint, as for any disagreement.
                    step = await RollbackAsync(spec, servers, step);
                    lossSum = 0;
                    correct = seen = 0;
                    continue;
                }

                CountShardRestores(spec, skips, step);
                State.StepsSkipped++;
                stepSpan?.Dispose();
                step++;
                State.Step = step;
                if (plan.BatchOf(step - 1) == plan.StepsPerEpoch - 1 || step == plan.TotalSteps)
                {
                    await KeepSnapshotAsync(spec, servers, layout.TrainableParameterCount, step);
                    await EvaluateEpochAsync(spec, plan, workers, epoch, step, lossSum / Math.Max(seen, 1), (double)correct / Math.Max(seen, 1));
                    EndEpochSpan();
                    lossSum = 0;
                    correct = seen = 0;
                }

                continue;
            }

            if (stale.Length == 0)
            {
                CheckDivergence(spec, plan, epoch, step, reports, stepSpan);
            }

            ApplyReport[] applies = [];
            if (stale.Length == 0)
            {
                // In bsp the push that completes a shard's tree applies the step and comes back with the report;
                // shards without one (backup workers, a retried push) are asked to apply (once) here.
                var order = new ApplyOrder(spec, step, withStats, spec.BackupWorkers > 0, plan.GlobalBatchSize(batch));
                var byShard = reports.SelectMany(r => r.Applied ?? []).GroupBy(a => a.Shard).ToDictionary(g => g.Key, g => g.First().Applied!);
                applies = await Task.WhenAll(servers.Select((s, p) => byShard.TryGetValue(p, out var done) ? Task.FromResult(done) : Retry(() => s.ApplyAsync(order))));
            }

            var appliedAt = wall.Elapsed;
            if (!runAhead)
            {
                // With the next step already running on the workers, the job's bookkeeping below is train time too.
                trainClock.Stop();
            }

            var behind = stale.Length > 0 || applies.Any(a => a.Version < step || a.Version > step + 1);
            if (!behind && applies.Any(a => a.Version == step && a.DroppedNodes < 0))
            {
                // A shard lost some of this step's contributions (handed over mid-step): compute the step again.
                logger.LogWarning("job {Job}: a parameter-server shard misses contributions of step {Step}; recomputing it", spec.JobId, step);
                CountShardRestores(spec, applies, step);
                State.StepsRecomputed++;
                trainClock.Stop();
                continue;
            }

            if (behind || applies.Any(a => a.Version != step + 1))
            {
                trainClock.Stop();
                step = await RollbackAsync(spec, servers, step);
                lossSum = 0;
                correct = seen = 0;
                continue;
            }

            CountShardRestores(spec, applies, step);
            State.DroppedContributions += applies[0].DroppedNodes;
            var stepLoss = reports.Sum(r => r.LossSum);
            var stepCorrect = reports.Sum(r => r.Correct);
            var stepSamples = reports.Sum(r => r.Samples);
            State.BytesMoved += reports.Sum(r => r.BytesMoved);
            State.TrainSamples += stepSamples;
            if (!double.IsFinite(stepLoss))
            {
                throw new TrainingDivergedException($"training diverged: the loss of step {step} (epoch {epoch + 1}) is {stepLoss}; lower --lr");
            }

            lastAppliedAt = appliedAt;
            aheadFromStep = step;
            stepSeconds.Add((appliedAt - stepStarted).TotalSeconds);
            ClusterTelemetry.StepDuration.Record(stepSeconds[^1], jobTag);
            var counts = Sum(reports.Select(r => r.Counts).ToArray(), measured);
            for (var l = 0; l < measured.Count; l++)
            {
                newlyDead.Clear();
                dead[l].Observe(step, counts.Positive[l], newlyDead);
                foreach (var k in newlyDead)
                {
                    stepSpan?.AddEvent(new ActivityEvent(ClusterTelemetry.Events.FilterDead, tags: new ActivityTagsCollection
                    {
                        [ClusterTelemetry.Attributes.Layer] = measured[l].Layer.Name,
                        [ClusterTelemetry.Attributes.Filter] = k,
                        [ClusterTelemetry.Attributes.Step] = step,
                        [ClusterTelemetry.Attributes.DeadSince] = dead[l].SilentSince(k),
                    }));
                }
            }

            lossSum += stepLoss;
            correct += stepCorrect;
            seen += stepSamples;
            var stepMeanLoss = stepLoss / Math.Max(stepSamples, 1);
            var stepAccuracy = (double)stepCorrect / Math.Max(stepSamples, 1);
            stepSpan?.SetTag(ClusterTelemetry.Attributes.Samples, stepSamples).SetTag(ClusterTelemetry.Attributes.Loss, stepMeanLoss);
            if (withStats || (spec.LogEvery > 0 && step % spec.LogEvery == 0))
            {
                var filters = withStats ? Statistics(measured, parameterIndex, applies, counts, dead) : null;
                ClusterTelemetry.TrainLoss.Record(stepMeanLoss, jobTag);
                ClusterTelemetry.TrainAccuracy.Record(stepAccuracy, jobTag);
                if (filters is not null)
                {
                    RecordFilters(spec.JobId, filters, budget, stepSpan);
                }

                Publish(new JobEvent
                {
                    Sequence = events.Count,
                    Epoch = epoch,
                    Step = step,
                    WallSeconds = wall.Elapsed.TotalSeconds,
                    Loss = stepMeanLoss,
                    Accuracy = stepAccuracy,
                    LearningRate = schedule.At(step),
                    Filters = filters,
                    StepsInEpoch = plan.StepsPerEpoch,
                    SamplesPerSecond = State.TrainSamples / Math.Max(trainClock.Elapsed.TotalSeconds, 1e-9),
                    Workers = reports.Where(r => r.Worker is not null).Select(r => r.Worker! with { StartSeconds = dispatched }).ToArray(),
                });
            }

            stepSpan?.Dispose();

            step++;
            State.Step = step;
            if (spec.CheckpointEvery > 0 && step % spec.CheckpointEvery == 0 && step < plan.TotalSteps)
            {
                await CheckpointAsync(spec, servers, step);
            }

            var epochEnds = plan.BatchOf(step - 1) == plan.StepsPerEpoch - 1 || step == plan.TotalSteps;
            if (epochEnds || (plan.TotalSteps <= plan.StepsPerEpoch && step == plan.TotalSteps / 2))
            {
                // Nothing is pushed until the next step is handed out: the shards hold exactly version `step`.
                await KeepSnapshotAsync(spec, servers, vector.Length, step);
            }

            if (epochEnds)
            {
                await EvaluateEpochAsync(spec, plan, workers, epoch, step, lossSum / Math.Max(seen, 1), (double)correct / Math.Max(seen, 1));
                EndEpochSpan();
                lossSum = 0;
                correct = seen = 0;
            }
        }

        State.Step = step;
        if (step > State.LastCheckpointStep && (spec.Mode == ConsistencyMode.Bsp || step == plan.TotalSteps))
        {
            // The final weights stay readable (and resumable) even if a shard is reactivated later.
            if (spec.Mode == ConsistencyMode.Bsp)
            {
                var final = await Retry(() => servers[0].GetVersionAsync(spec));
                await CheckpointAsync(spec, servers, final);
            }
            else
            {
                await CheckpointFreeAsync(spec, servers, step);
            }
        }

        medianStepSeconds = Median.Of(stepSeconds);
        State.WeightsSha256 = await WeightsShaAsync(spec, servers, layout);
        State.Phase = JobPhase.Completed;
    }

    /// <summary>
    /// ssp and async: every worker runs its rounds on its own; the job waits, evaluating as epochs complete and saving
    /// the shards at checkpoint rounds. False when the job was cancelled or handed over to its next activation.
    /// </summary>
    private async Task<bool> RunFreeAsync(JobSpec spec, JobPlan plan, IWorkerGrain[] workers, IParameterServerGrain[] servers, long first, FreeStatistics statistics)
    {
        // The workers run from one checkpoint round to the next (every --checkpoint-every rounds); the job saves the
        // shards there, when none is running, so a shard that loses its state takes every shard back to the same point.
        long SegmentEnd(long from) => spec.CheckpointEvery > 0 ? Math.Min(plan.TotalSteps, ((from / spec.CheckpointEvery) + 1) * spec.CheckpointEvery) : plan.TotalSteps;
        var segmentEnd = SegmentEnd(first);
        if (MembershipChanged())
        {
            // The silos as they are now: a later change moves workers at a checkpoint round.
            await RebalanceAsync(workers);
        }

        trainClock.Start();
        await Task.WhenAll(workers.Select((w, i) => Retry(() => w.StartRunAsync(new RunOrder(spec, i, first, segmentEnd)))));
        var evaluatedEpochs = plan.EpochOf(first);
        var lastLogged = -1L;
        double windowLoss = 0;
        long windowCorrect = 0, windowSamples = 0;
        double lossSum = 0;
        long correct = 0, seen = 0;
        var known = workers.Select(_ => first).ToArray();
        var roundNorms = new SortedDictionary<long, List<(int Worker, double GradientNorm)>>();
        while (true)
        {
            if (handoverRequested)
            {
                // This silo stops: the workers stop, every shard is saved at the round all of them reached, and the
                // next activation goes on from there (rounds a faster worker did past it are done again).
                await Task.WhenAll(workers.Select(w => Retry(() => w.StopAsync())));
                var reached = await Task.WhenAll(workers.Select(w => Retry(() => w.PeekRoundsAsync())));
                var round = Math.Max(State.LastCheckpointStep, known.Select((k, i) => Math.Max(k, reached[i])).Min());
                trainClock.Stop();
                await CheckpointFreeAsync(spec, servers, round);
                State.HandedOver = State.LastCheckpointStep == round;
                return false;
            }

            DelayDeactivation(TimeSpan.FromMinutes(10));

            // Each worker answers once it has done another round (or after a second): no polling interval.
            var progress = await Task.WhenAll(workers.Select((w, i) => Retry(() => w.WaitRunProgressAsync(known[i], TimeSpan.FromSeconds(1)))));
            for (var i = 0; i < progress.Length; i++)
            {
                known[i] = Math.Max(known[i], progress[i].Rounds);
            }

            if (progress.Sum(p => p.ShardRestores) > 0)
            {
                // A shard lost its state (its silo died) and came back from its checkpoint or the start, behind the
                // others: every shard and every worker go back to the last checkpoint round, so the weights stay one model.
                var from = await RestartFreeAsync(spec, workers, servers, known);
                segmentEnd = SegmentEnd(from);
                await Task.WhenAll(workers.Select((w, i) => Retry(() => w.StartRunAsync(new RunOrder(spec, i, from, segmentEnd)))));
                roundNorms.Clear();
                windowLoss = 0;
                windowCorrect = windowSamples = 0;
                lossSum = 0;
                correct = seen = 0;
                continue;
            }

            for (var i = 0; i < progress.Length; i++)
            {
                if (!progress[i].Running && progress[i].Error is null && known[i] < segmentEnd && !cancelRequested)
                {
                    // A worker whose silo died has no run in its new activation: it goes on from its last reported round
                    // (a round it pushed before is not applied twice: the shards remember the rounds they took).
                    logger.LogWarning("job {Job}: worker {Worker} lost its run at round {Round}; restarting it", spec.JobId, i, known[i]);
                    State.StepsRecomputed++;
                    jobSpan?.AddEvent(new ActivityEvent(ClusterTelemetry.Events.WorkerLost, tags: new ActivityTagsCollection
                    {
                        [ClusterTelemetry.Attributes.Worker] = i,
                        [ClusterTelemetry.Attributes.Step] = known[i],
                    }));
                    var index = i;
                    await Retry(() => workers[index].StartRunAsync(new RunOrder(spec, index, Math.Max(known[index], State.LastCheckpointStep), segmentEnd)));
                }
            }

            // Gradient norms by round, compared across workers once every worker has done the round.
            for (var w = 0; w < progress.Length; w++)
            {
                foreach (var n in progress[w].Norms)
                {
                    (roundNorms.TryGetValue(n.Round, out var list) ? list : roundNorms[n.Round] = []).Add((w, n.Norm));
                }
            }

            foreach (var (round, list) in roundNorms.Where(r => r.Value.Count >= workers.Length || r.Key < progress.Min(p => p.Rounds) - spec.Staleness - 1).ToArray())
            {
                roundNorms.Remove(round);
                CheckNorms(spec, plan, round, list.OrderBy(n => n.Worker).ToArray(), jobSpan);
            }

            for (var w = 0; w < progress.Length; w++)
            {
                foreach (var round in progress[w].Refused)
                {
                    try
                    {
                        CountRefusal(spec, plan, jobSpan, w, round);
                    }
                    catch (TrainingDivergedException)
                    {
                        await Task.WhenAll(workers.Select(x => x.StopAsync()));
                        throw;
                    }
                }
            }

            if (progress.FirstOrDefault(p => p.Error is not null) is { Error: { } error })
            {
                throw new InvalidOperationException($"a worker failed: {error}");
            }

            State.BytesMoved += progress.Sum(p => p.BytesMoved);
            State.TrainSamples += progress.Sum(p => p.Samples);
            lossSum += progress.Sum(p => p.LossSum);
            correct += progress.Sum(p => p.Correct);
            seen += progress.Sum(p => p.Samples);
            var slowest = progress.Min(p => p.Rounds);
            var leading = progress.Max(p => p.Rounds);
            for (var w = 0; w < progress.Length; w++)
            {
                ClusterTelemetry.WorkerLag.Record(leading - progress[w].Rounds, new TagList
                {
                    { ClusterTelemetry.Tags.Job, spec.JobId },
                    { ClusterTelemetry.Tags.Worker, ClusterTelemetry.FilterLabel(w) },
                });
            }

            logger.LogDebug("job {Job}: rounds {Rounds}", spec.JobId, string.Join(",", progress.Select(p => p.Rounds)));
            if (spec.StatsEvery > 0)
            {
                var taken = await Task.WhenAll(workers.Select(w => Retry(() => w.TakeRoundStatisticsAsync())));
                var now = wall.Elapsed.TotalSeconds;
                foreach (var round in statistics.Add(taken.SelectMany(t => t), workers.Length))
                {
                    var line = statistics.Event(round, plan, now);
                    RecordFilters(spec.JobId, line.Filters!, statistics.Budget, null);
                    Publish(line with
                    {
                        Sequence = events.Count,
                        SamplesPerSecond = State.TrainSamples / Math.Max(trainClock.Elapsed.TotalSeconds, 1e-9),
                    });
                }
            }

            windowLoss += progress.Sum(p => p.LossSum);
            windowCorrect += progress.Sum(p => p.Correct);
            windowSamples += progress.Sum(p => p.Samples);
            if (spec.LogEvery > 0 && slowest > 0 && (slowest - 1) / spec.LogEvery > lastLogged && windowSamples > 0 && slowest - 1 != statistics.LastStep)
            {
                // A step line per LogEvery rounds of the slowest worker: loss and accuracy of the updates since the last line.
                lastLogged = (slowest - 1) / spec.LogEvery;
                Publish(new JobEvent
                {
                    Sequence = events.Count,
                    Epoch = plan.EpochOf(Math.Min(slowest - 1, plan.TotalSteps - 1)),
                    Step = slowest - 1,
                    WallSeconds = wall.Elapsed.TotalSeconds,
                    Loss = windowLoss / windowSamples,
                    Accuracy = (double)windowCorrect / windowSamples,
                    LearningRate = LearningRateSchedules.Create(spec.Schedule, spec.LearningRate, Math.Max(1, plan.TotalSteps)).At(slowest - 1),
                    StepsInEpoch = plan.StepsPerEpoch,
                    SamplesPerSecond = State.TrainSamples / Math.Max(trainClock.Elapsed.TotalSeconds, 1e-9),
                });
                windowLoss = 0;
                windowCorrect = 0;
                windowSamples = 0;
            }

            State.Step = Math.Max(0, slowest);
            epochNow = plan.EpochOf(Math.Min(State.Step, plan.TotalSteps - 1));
            if (cancelRequested)
            {
                await Task.WhenAll(workers.Select(w => w.StopAsync()));
                trainClock.Stop();
                State.Phase = JobPhase.Cancelled;
                return false;
            }

            var done = slowest >= plan.TotalSteps;
            var epochsDone = done ? plan.EpochOf(plan.TotalSteps - 1) + 1 : (int)(slowest / plan.StepsPerEpoch);
            if (epochsDone > evaluatedEpochs)
            {
                trainClock.Stop();
                // The weights the epoch ends with, for the client's checkpoints/step-N.ckpt: the shards as they are when
                // the slowest worker has done the epoch's rounds (the others may be some rounds ahead).
                await KeepSnapshotAsync(spec, servers, plan.VectorLength, State.Step);
                await EvaluateEpochAsync(spec, plan, workers, epochsDone - 1, State.Step, lossSum / Math.Max(seen, 1), (double)correct / Math.Max(seen, 1), versionCheck: false);
                trainClock.Start();
                evaluatedEpochs = epochsDone;
                lossSum = 0;
                correct = seen = 0;
            }

            if (done)
            {
                break;
            }

            if (slowest >= segmentEnd)
            {
                // Every worker's rounds up to here are applied (a round counts once its pushes are answered): save.
                trainClock.Stop();
                await CheckpointFreeAsync(spec, servers, segmentEnd);
                if (MembershipChanged())
                {
                    // No worker runs here: one whose silo placement changed (a silo joined or left) moves now.
                    await RebalanceAsync(workers);
                }

                trainClock.Start();
                var from = segmentEnd;
                segmentEnd = SegmentEnd(from);
                await Task.WhenAll(workers.Select((w, i) => Retry(() => w.StartRunAsync(new RunOrder(spec, i, from, segmentEnd)))));
            }
        }

        trainClock.Stop();
        return true;
    }

    /// <summary>The version shard <paramref name="shard"/> holds at the job's last checkpoint.</summary>
    private long CheckpointVersion(JobSpec spec, int shard) =>
        spec.Mode != ConsistencyMode.Bsp && State.LastCheckpointVersions.Length == spec.PsShards ? State.LastCheckpointVersions[shard] : State.LastCheckpointStep;

    /// <summary>ssp and async: every shard saved at its version (no worker running), recorded as the checkpoint of <paramref name="round"/>.</summary>
    private async Task CheckpointFreeAsync(JobSpec spec, IParameterServerGrain[] servers, long round)
    {
        var clock = Stopwatch.StartNew();
        using var span = StartJobChild(ClusterTelemetry.Spans.Checkpoint);
        span?.SetTag(ClusterTelemetry.Attributes.Job, spec.JobId).SetTag(ClusterTelemetry.Attributes.Step, round);
        var versions = await Task.WhenAll(servers.Select(s => Retry(() => s.GetVersionAsync(spec))));
        var saved = await Task.WhenAll(servers.Select((s, p) => Retry(() => s.CheckpointAsync(spec, versions[p]))));
        if (saved.All(s => s))
        {
            State.LastCheckpointStep = round;
            State.LastCheckpointVersions = versions;
            await WriteStateWithRetryAsync();
        }

        span?.SetTag(ClusterTelemetry.Attributes.Saved, saved.All(s => s));
        ClusterTelemetry.CheckpointDuration.Record(clock.Elapsed.TotalSeconds, new KeyValuePair<string, object?>(ClusterTelemetry.Tags.Job, spec.JobId));
    }

    /// <summary>
    /// ssp and async: a shard came back behind the others. The workers stop, every shard goes back to the job's last
    /// checkpoint (the start when there is none) and the round to go on from is returned. Counted as a restart; the
    /// rounds done since are computed again.
    /// </summary>
    private async Task<long> RestartFreeAsync(JobSpec spec, IWorkerGrain[] workers, IParameterServerGrain[] servers, long[] known)
    {
        var target = State.LastCheckpointStep;
        logger.LogWarning("job {Job}: a parameter-server shard lost its state; every shard and worker goes back to the checkpoint of round {Round}", spec.JobId, target);
        await Task.WhenAll(workers.Select(w => Retry(() => w.StopAsync())));
        await Task.WhenAll(servers.Select((s, p) => Retry(() => s.RollbackAsync(spec, CheckpointVersion(spec, p)))));
        State.Restarts++;
        State.StepsRecomputed += Math.Max(0, known.Min() - target);
        ClusterTelemetry.JobRestarts.Add(1, new KeyValuePair<string, object?>(ClusterTelemetry.Tags.Job, spec.JobId));
        jobSpan?.AddEvent(new ActivityEvent(ClusterTelemetry.Events.CheckpointRestored, tags: new ActivityTagsCollection
        {
            [ClusterTelemetry.Attributes.Checkpoint] = target,
            [ClusterTelemetry.Attributes.Step] = known.Min(),
        }));
        Array.Fill(known, target);
        return target;
    }

    /// <summary>Counts and reports each refused worker of a bsp step; past --max-nonfinite-refusals the job stops as diverged.</summary>
    private void RefuseStep(JobSpec spec, JobPlan plan, int epoch, long step, StepReport[] reports, Activity? stepSpan)
    {
        foreach (var report in reports.Where(r => r.Refused))
        {
            CountRefusal(spec, plan, stepSpan, report.Worker?.Worker ?? -1, step);
        }

        stepSpan?.SetStatus(ActivityStatusCode.Error, "a non-finite gradient was refused; the step is skipped")
            .AddEvent(new ActivityEvent(ClusterTelemetry.Events.StepSkipped, tags: new ActivityTagsCollection
            {
                [ClusterTelemetry.Attributes.Step] = step,
                [ClusterTelemetry.Attributes.Epoch] = epoch + 1,
                [ClusterTelemetry.Attributes.Refusals] = State.NonFiniteRefusals,
            }));
    }

    private void CountRefusal(JobSpec spec, JobPlan plan, Activity? span, int worker, long step)
    {
        State.NonFiniteRefusals++;
        var stop = State.NonFiniteRefusals > spec.MaxNonFiniteRefusals;
        var message = $"worker {worker} pushed a non-finite gradient for step {step}; the parameter servers refused it and the step is not applied (refusal {State.NonFiniteRefusals}, at most {spec.MaxNonFiniteRefusals} allowed)";
        Alert(spec, plan, span, new JobAlert(JobAlert.NonFinite, worker, step, message), ClusterTelemetry.Events.NonFiniteGradient);
        if (stop)
        {
            throw new TrainingDivergedException($"training diverged: {State.NonFiniteRefusals} non-finite gradients refused, more than --max-nonfinite-refusals {spec.MaxNonFiniteRefusals} (the last from worker {worker} at step {step}); lower --lr");
        }
    }

    /// <summary>
    /// bsp: names each worker whose weights differed from the parameter servers' version, or whose gradient norm is
    /// more than DivergenceFactor times the median of the other workers' (3 or more) or of its own recent norms.
    /// </summary>
    private void CheckDivergence(JobSpec spec, JobPlan plan, int epoch, long step, StepReport[] reports, Activity? stepSpan)
    {
        foreach (var report in reports.Where(r => r.WeightsMismatch))
        {
            var worker = report.Worker?.Worker ?? -1;
            State.WeightsMismatches++;
            Alert(spec, plan, stepSpan, new JobAlert(JobAlert.WeightsMismatch, worker, step, $"worker {worker} computed step {step} (epoch {epoch + 1}) on weights that differ from the parameter servers' version {step}"), ClusterTelemetry.Events.WeightsMismatch);
        }

        CheckNorms(spec, plan, step, reports.Where(r => r.Worker is not null && double.IsFinite(r.GradientNorm) && r.Worker.Samples > 0).Select(r => (r.Worker!.Worker, r.GradientNorm)).ToArray(), stepSpan);
    }

    /// <summary>
    /// Names each worker whose gradient norm at <paramref name="step"/> (a bsp step, or an ssp/async round) is more than
    /// DivergenceFactor times the median of the other workers' (3 or more) or of its own recent norms.
    /// </summary>
    private void CheckNorms(JobSpec spec, JobPlan plan, long step, (int Worker, double GradientNorm)[] norms, Activity? span)
    {
        if (spec.DivergenceFactor <= 0)
        {
            return;
        }

        foreach (var (worker, norm) in norms)
        {
            var history = normHistory.TryGetValue(worker, out var h) ? h : normHistory[worker] = [];
            double? reference = norms.Length >= 3 ? Median.Of(norms.Where(n => n.Worker != worker).Select(n => n.GradientNorm))
                : history.Count >= NormHistoryNeeded ? Median.Of(history) : null;
            if (reference is { } median && median > 0 && norm > spec.DivergenceFactor * median)
            {
                State.GradientOutliers++;
                var basis = norms.Length >= 3 ? "the other workers'" : $"its last {history.Count} steps'";
                Alert(spec, plan, span, new JobAlert(JobAlert.GradientOutlier, worker, step, $"worker {worker} diverges: its gradient norm at step {step} is {norm:G4}, {norm / median:F0} times the median of {basis} ({median:G4}; --divergence-factor {spec.DivergenceFactor})", norm, median), ClusterTelemetry.Events.GradientOutlier);
                continue;
            }

            // Outliers stay out of the history, so one does not raise the reference for the next.
            history.Add(norm);
            if (history.Count > NormHistory)
            {
                history.RemoveAt(0);
            }
        }
    }

    /// <summary>A named worker: an event for the client (metrics.jsonl, a warning line), a span event, a log line and a count.</summary>
    private void Alert(JobSpec spec, JobPlan plan, Activity? span, JobAlert alert, string eventName)
    {
        if (alert.Worker >= 0 && !State.DivergentWorkers.Contains(alert.Worker))
        {
            State.DivergentWorkers.Add(alert.Worker);
            State.DivergentWorkers.Sort();
        }

        logger.LogWarning("job {Job}: {Alert}", spec.JobId, alert.Message);
        var tags = new ActivityTagsCollection
        {
            [ClusterTelemetry.Attributes.Worker] = alert.Worker,
            [ClusterTelemetry.Attributes.Step] = alert.Step,
            [ClusterTelemetry.Attributes.Error] = alert.Message,
        };
        if (double.IsFinite(alert.Value))
        {
            tags[ClusterTelemetry.Attributes.GradientNormValue] = alert.Value;
            tags[ClusterTelemetry.Attributes.Median] = alert.Reference;
        }

        span?.AddEvent(new ActivityEvent(eventName, tags: tags));
        ClusterTelemetry.WorkerAlerts.Add(1, new TagList
        {
            { ClusterTelemetry.Tags.Job, spec.JobId },
            { ClusterTelemetry.Tags.Worker, ClusterTelemetry.FilterLabel(Math.Max(0, alert.Worker)) },
            { ClusterTelemetry.Tags.Kind, alert.Kind },
        });
        Publish(new JobEvent
        {
            Sequence = events.Count,
            Epoch = plan.EpochOf(Math.Min(alert.Step, plan.TotalSteps - 1)),
            Step = alert.Step,
            WallSeconds = wall.Elapsed.TotalSeconds,
            StepsInEpoch = plan.StepsPerEpoch,
            Alert = alert,
        });
    }

    /// <summary>
    /// ssp and async per-filter statistics: a statistics round's step line once every worker has done that round. Each
    /// worker's update is an optimizer step of its own, so the norms are root-mean-square over the workers' updates
    /// (exact for one worker), sparsity is over all their samples, and a filter is dead after DeadWindow rounds
    /// (counted in statistics intervals) without a positive output on any worker.
    /// </summary>
    private sealed class FreeStatistics(IReadOnlyList<MeasuredLayer> measured, int[] parameterIndex, FilterSeriesBudget budget, JobSpec spec)
    {
        private readonly SortedDictionary<long, List<RoundStatistics>> rounds = [];
        private readonly DeadFilterTracker[] dead = measured.Select(l => new DeadFilterTracker(l.Kernel.Rows, Math.Max(1, (spec.DeadWindow + spec.StatsEvery - 1) / Math.Max(1, spec.StatsEvery)))).ToArray();
        private readonly ILearningRateSchedule schedule = LearningRateSchedules.Create(spec.Schedule, spec.LearningRate, Math.Max(1, spec.ScheduleSteps));

        public FilterSeriesBudget Budget => budget;

        /// <summary>The step of the last statistics line (−1: none yet).</summary>
        public long LastStep { get; private set; } = -1;

        /// <summary>Adds what the workers handed over; returns the rounds now complete, in order.</summary>
        public List<List<RoundStatistics>> Add(IEnumerable<RoundStatistics> taken, int workers)
        {
            foreach (var r in taken)
            {
                if (!rounds.TryGetValue(r.Round, out var list))
                {
                    rounds[r.Round] = list = [];
                }

                // A worker that restarted can report a round again: keep one per worker.
                list.RemoveAll(x => x.Worker.Worker == r.Worker.Worker);
                list.Add(r);
            }

            var complete = new List<List<RoundStatistics>>();
            foreach (var (round, list) in rounds.ToArray())
            {
                if (list.Count >= workers)
                {
                    rounds.Remove(round);
                    complete.Add(list.OrderBy(x => x.Worker.Worker).ToList());
                }
            }

            return complete;
        }

        public JobEvent Event(List<RoundStatistics> reports, JobPlan plan, double now)
        {
            var round = reports[0].Round;
            var share = 1.0 / reports.Count;
            var applies = reports.SelectMany(r => r.Applies)
                .Select(a => a with { Rows = a.Rows.Select(x => new RowSums(x.Parameter, Scale(x.GradientSquares, share), Scale(x.WeightSquares, share), Scale(x.BeforeSquares, share), Scale(x.DistanceSquares, share))).ToArray() })
                .ToArray();
            var counts = Sum(reports.Select(r => r.Counts).ToArray(), measured);
            var fired = Sum(reports.Select(r => new ActivationCounts(r.FiredSince, r.FiredSince, new long[measured.Count])).ToArray(), measured);
            for (var l = 0; l < measured.Count; l++)
            {
                dead[l].Observe(round, fired.Positive[l]);
            }

            var samples = Math.Max(1, reports.Sum(r => r.Samples));
            LastStep = round;
            return new JobEvent
            {
                Epoch = plan.EpochOf(round),
                Step = round,
                WallSeconds = now,
                Loss = reports.Sum(r => r.LossSum) / samples,
                Accuracy = (double)reports.Sum(r => r.Correct) / samples,
                LearningRate = schedule.At(round),
                Filters = Statistics(measured, parameterIndex, applies, counts, dead),
                StepsInEpoch = plan.StepsPerEpoch,
                Workers = reports.Select(r => r.Worker with { StartSeconds = Math.Max(0, now + r.Worker.StartSeconds) }).ToArray(),
            };
        }

        private static double[] Scale(double[] values, double factor) => values.Select(v => v * factor).ToArray();
    }

    /// <summary>
    /// Whether the workers may go on to the step after <paramref name="step"/> without waiting for its order: not when
    /// the job does something between the two that needs the shards at exactly that version (a checkpoint, an epoch's
    /// end, the half-way snapshot, silos joined or left since the last rebalance), with backup workers, or when the job is stopping.
    /// </summary>
    private bool CanRunAhead(JobSpec spec, JobPlan plan, long step)
    {
        var next = step + 1;
        return spec.BackupWorkers == 0
            && next < plan.TotalSteps
            && !MembershipChanged()
            && (spec.CheckpointEvery <= 0 || next % spec.CheckpointEvery != 0)
            && plan.BatchOf(step) != plan.StepsPerEpoch - 1
            && !(plan.TotalSteps <= plan.StepsPerEpoch && next == plan.TotalSteps / 2)
            && !cancelRequested
            && !handoverRequested;
    }

    private async Task<StepReport[]> RunWorkersAsync(JobSpec spec, IWorkerGrain[] workers, long step, bool runAhead, string? nextTrace)
    {
        var calls = workers.Select((w, i) => ComputeWithRetryAsync(w, new StepOrder(spec, i, step, runAhead, nextTrace))).ToList();
        if (spec.BackupWorkers == 0)
        {
            return await Task.WhenAll(calls);
        }

        // Backup workers: the first N − b to finish make the step; the rest are dropped (their late pushes are ignored).
        var needed = workers.Length - spec.BackupWorkers;
        var done = new List<(int Index, StepReport Report)>();
        var pending = calls.Select((t, i) => (Task: t, Index: i)).ToList();
        while (done.Count < needed)
        {
            var finished = await Task.WhenAny(pending.Select(p => p.Task));
            var entry = pending.First(p => p.Task == finished);
            pending.Remove(entry);
            done.Add((entry.Index, await finished));
        }

        foreach (var (task, _) in pending)
        {
            _ = task.ContinueWith(t => t.Exception, TaskScheduler.Current);
        }

        return done.OrderBy(d => d.Index).Select(d => d.Report).ToArray();
    }

    private async Task<StepReport> ComputeWithRetryAsync(IWorkerGrain worker, StepOrder order)
    {
        var clock = Stopwatch.StartNew();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                // A bound of our own: a call stuck on a silo that died must become a retry, not a hang.
                var report = await worker.ComputeStepAsync(order).WaitAsync(CallTimeout);
                if (attempt > 0)
                {
                    Activity.Current?.AddEvent(WorkerEvent(ClusterTelemetry.Events.WorkerReactivated, order, report.Worker?.Silo));
                }

                return report;
            }
            catch (Exception e) when (IsTransient(e) && clock.Elapsed < RetryWindow && !cancelRequested)
            {
                // The worker's silo failed mid-step: the step is computed again by a new activation; the parameter
                // servers ignore any chunk they already hold, so nothing is applied twice.
                State.StepsRecomputed++;
                Activity.Current?.AddEvent(WorkerEvent(ClusterTelemetry.Events.WorkerLost, order, null, e.Message));
                logger.LogWarning("job {Job}: worker {Worker} failed step {Step} ({Error}); recomputing", order.Spec.JobId, order.WorkerIndex, order.Step, e.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 100 * (attempt + 1))));
            }
        }
    }

    private static ActivityEvent WorkerEvent(string name, StepOrder order, string? silo, string? error = null)
    {
        var tags = new ActivityTagsCollection
        {
            [ClusterTelemetry.Attributes.Worker] = order.WorkerIndex,
            [ClusterTelemetry.Attributes.Step] = order.Step,
        };
        if (silo is not null)
        {
            tags[ClusterTelemetry.Attributes.Silo] = silo;
        }

        if (error is not null)
        {
            tags[ClusterTelemetry.Attributes.Error] = error;
        }

        return new ActivityEvent(name, tags: tags);
    }

    /// <summary>A step's span: a trace of its own, linked to its epoch's span.</summary>
    private Activity? StartStepSpan()
    {
        Activity.Current = null;
        return ClusterTelemetry.Source.StartActivity(ClusterTelemetry.Spans.Step, ActivityKind.Internal, default(ActivityContext), links: epochSpan is null ? null : [new ActivityLink(epochSpan.Context)]);
    }

    private void BeginEpochSpan(JobSpec spec, int epoch)
    {
        if (epochSpan is not null && epochSpan.GetTagItem(ClusterTelemetry.Attributes.Epoch) is int open && open == epoch + 1)
        {
            return;
        }

        EndEpochSpan();
        if (jobSpan is not null)
        {
            epochSpan = ClusterTelemetry.Source.StartActivity(ClusterTelemetry.Spans.Epoch, ActivityKind.Internal, jobSpan.Context)
                ?.SetTag(ClusterTelemetry.Attributes.Job, spec.JobId)
                .SetTag(ClusterTelemetry.Attributes.Epoch, epoch + 1);
        }
    }

    private void EndEpochSpan()
    {
        epochSpan?.Dispose();
        epochSpan = null;
    }

    /// <summary>A child of the epoch's span (or the job's), made current so the grain calls under it join its trace.</summary>
    private Activity? StartJobChild(string name)
    {
        var parent = epochSpan ?? jobSpan;
        return parent is null ? null : ClusterTelemetry.Source.StartActivity(name, ActivityKind.Internal, parent.Context);
    }

    /// <summary>Statistics steps: the aggregated per-filter gauges (within the series budget), dead filters per layer, and the full arrays on the step's span.</summary>
    private static void RecordFilters(string jobId, LayerStatistics[] filters, FilterSeriesBudget budget, Activity? stepSpan)
    {
        for (var l = 0; l < filters.Length; l++)
        {
            var layer = filters[l];
            ClusterTelemetry.LayerDeadFilters.Record(layer.DeadFilters.Length, new TagList
            {
                { ClusterTelemetry.Tags.Job, jobId },
                { ClusterTelemetry.Tags.Layer, layer.Layer },
            });
            var allowed = budget.Aggregated(l);
            for (var k = 0; k < allowed; k++)
            {
                var tags = new TagList
                {
                    { ClusterTelemetry.Tags.Job, jobId },
                    { ClusterTelemetry.Tags.Layer, layer.Layer },
                    { ClusterTelemetry.Tags.Filter, ClusterTelemetry.FilterLabel(k) },
                };
                ClusterTelemetry.FilterGradientNorm.Record(layer.GradientNorm[k], tags);
                ClusterTelemetry.FilterWeightNorm.Record(layer.WeightNorm[k], tags);
                ClusterTelemetry.FilterUpdateToWeight.Record(layer.UpdateRatio[k], tags);
                ClusterTelemetry.FilterSparsity.Record(layer.Sparsity[k], tags);
            }

            if (stepSpan is not null)
            {
                stepSpan.SetTag(ClusterTelemetry.Attributes.GradientNorm(layer.Layer), Array.ConvertAll(layer.GradientNorm, v => (double)v));
                stepSpan.SetTag(ClusterTelemetry.Attributes.Sparsity(layer.Layer), Array.ConvertAll(layer.Sparsity, v => (double)v));
                stepSpan.SetTag(ClusterTelemetry.Attributes.DeadFilters(layer.Layer), layer.DeadFilters);
            }
        }
    }

    private async Task<T> Retry<T>(Func<Task<T>> call)
    {
        var clock = Stopwatch.StartNew();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await call().WaitAsync(CallTimeout);
            }
            catch (Exception e) when (IsTransient(e) && clock.Elapsed < RetryWindow && !cancelRequested)
            {
                logger.LogWarning("job call failed ({Error}); retrying", e.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 100 * (attempt + 1))));
            }
        }
    }

    private async Task Retry(Func<Task> call) => await Retry(async () =>
    {
        await call();
        return true;
    });

    private static bool IsTransient(Exception e) => e is not (ArgumentException or Engine.Layers.ModelException or CheckpointMissingException or OutOfMemoryException);

    /// <summary>
    /// A shard whose silo died came back from a checkpoint that was this very step (the job's checkpoint round had
    /// finished on it): nothing to roll back, but the job continued from a checkpoint, a restart. (A shard that came
    /// back behind the job is counted by the rollback instead.)
    /// </summary>
    private void CountShardRestores(JobSpec spec, ApplyReport[] reports, long step)
    {
        // A shard that continued from a graceful hand-over (its silo stopped) moved without losing anything: a rebalance.
        State.Rebalances += reports.Count(r => r.HandedOver);
        if (!reports.Any(r => r.Restored))
        {
            return;
        }

        logger.LogWarning("job {Job}: a parameter-server shard came back from its checkpoint of step {Step}", spec.JobId, step);
        State.Restarts++;
        ClusterTelemetry.JobRestarts.Add(1, new KeyValuePair<string, object?>(ClusterTelemetry.Tags.Job, spec.JobId));
        var restored = new ActivityEvent(ClusterTelemetry.Events.CheckpointRestored, tags: new ActivityTagsCollection
        {
            [ClusterTelemetry.Attributes.Checkpoint] = step,
            [ClusterTelemetry.Attributes.Step] = step,
        });
        jobSpan?.AddEvent(restored);
    }

    private async Task<long> RollbackAsync(JobSpec spec, IParameterServerGrain[] servers, long step)
    {
        var target = State.LastCheckpointStep;
        logger.LogWarning("job {Job}: parameter servers disagree at step {Step}; rolling back to checkpoint {Checkpoint}", spec.JobId, step, target);
        State.Restarts++;
        ClusterTelemetry.JobRestarts.Add(1, new KeyValuePair<string, object?>(ClusterTelemetry.Tags.Job, spec.JobId));
        State.StepsRecomputed += step - target;
        await Task.WhenAll(servers.Select(s => Retry(() => s.RollbackAsync(spec, target))));
        var restored = new ActivityEvent(ClusterTelemetry.Events.CheckpointRestored, tags: new ActivityTagsCollection
        {
            [ClusterTelemetry.Attributes.Checkpoint] = target,
            [ClusterTelemetry.Attributes.Step] = step,
        });
        Activity.Current?.AddEvent(restored);
        if (!ReferenceEquals(Activity.Current, jobSpan))
        {
            jobSpan?.AddEvent(restored);
        }

        State.Step = target;
        return target;
    }

    private async Task CheckpointAsync(JobSpec spec, IParameterServerGrain[] servers, long step)
    {
        var clock = Stopwatch.StartNew();
        using var span = StartJobChild(ClusterTelemetry.Spans.Checkpoint);
        span?.SetTag(ClusterTelemetry.Attributes.Job, spec.JobId).SetTag(ClusterTelemetry.Attributes.Step, step);
        var saved = await Task.WhenAll(servers.Select(s => Retry(() => s.CheckpointAsync(spec, step))));
        if (saved.All(s => s))
        {
            State.LastCheckpointStep = step;
            await WriteStateWithRetryAsync();
        }

        span?.SetTag(ClusterTelemetry.Attributes.Saved, saved.All(s => s));
        ClusterTelemetry.CheckpointDuration.Record(clock.Elapsed.TotalSeconds, new KeyValuePair<string, object?>(ClusterTelemetry.Tags.Job, spec.JobId));
    }

    /// <summary>
    /// The job's state written through a Redis outage: retried for the retry window, as the shards' checkpoint calls
    /// are. Another activation's write (a stale ETag) is not retried: that activation owns the job.
    /// </summary>
    private async Task WriteStateWithRetryAsync()
    {
        var clock = Stopwatch.StartNew();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await persisted.WriteStateAsync();
                return;
            }
            catch (Exception e) when (e is not Orleans.Storage.InconsistentStateException && IsTransient(e) && clock.Elapsed < RetryWindow && !cancelRequested)
            {
                logger.LogWarning("job {Job}: writing its state failed ({Error}); retrying", this.GetPrimaryKeyString(), e.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 250 * (attempt + 1))));
            }
        }
    }

    private async Task EvaluateEpochAsync(JobSpec spec, JobPlan plan, IWorkerGrain[] workers, int epoch, long step, double trainLoss, double trainAccuracy, bool versionCheck = true)
    {
        using var span = StartJobChild(ClusterTelemetry.Spans.Evaluate);
        span?.SetTag(ClusterTelemetry.Attributes.Job, spec.JobId).SetTag(ClusterTelemetry.Attributes.Epoch, epoch + 1).SetTag(ClusterTelemetry.Attributes.Step, step);
        var parts = Data.Sharding.Ranges(plan.TestCount, workers.Length);
        var results = await Task.WhenAll(workers.Select((w, i) => Retry(() => w.EvaluateAsync(new EvalOrder(spec, i, versionCheck ? step : -1, parts[i].Start, parts[i].Count)))));
        var count = Math.Max(1, results.Sum(r => r.Count));
        State.BytesMoved += results.Sum(r => r.BytesMoved);
        var result = new JobEvent
        {
            Sequence = events.Count,
            IsEpoch = true,
            Epoch = epoch + 1,
            Step = step,
            WallSeconds = wall.Elapsed.TotalSeconds,
            Loss = trainLoss,
            Accuracy = trainAccuracy,
            TestLoss = results.Sum(r => r.LossSum) / count,
            TestAccuracy = (double)results.Sum(r => r.Correct) / count,
            StepsInEpoch = plan.StepsPerEpoch,
            SamplesPerSecond = State.TrainSamples / Math.Max(trainClock.Elapsed.TotalSeconds, 1e-9),
        };
        var jobTag = new KeyValuePair<string, object?>(ClusterTelemetry.Tags.Job, spec.JobId);
        ClusterTelemetry.TestLoss.Record(result.TestLoss, jobTag);
        ClusterTelemetry.TestAccuracy.Record(result.TestAccuracy, jobTag);
        span?.SetTag(ClusterTelemetry.Attributes.Loss, result.TestLoss).SetTag(ClusterTelemetry.Attributes.Accuracy, result.TestAccuracy);
        Publish(result);
        State.EpochEvents.RemoveAll(e => e.Epoch >= result.Epoch);
        State.EpochEvents.Add(result);
    }

    private async Task<string> WeightsShaAsync(JobSpec spec, IParameterServerGrain[] servers, Model layout)
    {
        var vector = new ClusterVector(layout);
        var all = await ReadWeightsAsync(spec, servers, vector.Length);
        vector.Load(layout, all);
        return layout.WeightsSha256();
    }

    /// <summary>The whole vector (trainable weights, then moving statistics: <see cref="ClusterVector"/>), read chunk by chunk from every shard.</summary>
    public static async Task<float[]> ReadWeightsAsync(JobSpec spec, IReadOnlyList<IParameterServerGrain> servers, int length)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(servers);
        var all = new float[length];
        var slices = Data.Sharding.Ranges(length, servers.Count);
        for (var p = 0; p < servers.Count; p++)
        {
            var first = await servers[p].GetWeightsAsync(spec, 0, -1);
            for (var c = 0; c < first.Chunks; c++)
            {
                var chunk = c == 0 ? first : await servers[p].GetWeightsAsync(spec, c, -1);
                chunk.CopyTo(all.AsSpan(slices[p].Start + chunk.Offset, chunk.Count));
            }
        }

        return all;
    }

    private bool MembershipChanged() => membership.CurrentSnapshot.Version != rebalancedFor;

    /// <summary>
    /// At a step boundary, when the set of active silos changed (one joined or left), moves every worker whose spread
    /// placement now names another silo; each move counts as a rebalance.
    /// </summary>
    private async Task RebalanceAsync(IWorkerGrain[] workers)
    {
        var snapshot = membership.CurrentSnapshot;
        rebalancedFor = snapshot.Version;
        var active = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress.ToString()).OrderBy(s => s, StringComparer.Ordinal).ToArray();
        if (active.Length == 0)
        {
            return;
        }

        silos = active.Length;
        State.Silos = Math.Max(State.Silos, silos);
        if (knownSilos is null)
        {
            knownSilos = active;
            return;
        }

        if (knownSilos.SequenceEqual(active))
        {
            return;
        }

        knownSilos = active;
        var moved = await Task.WhenAll(workers.Select(w => Retry(() => w.RebalanceAsync(active))));
        State.Rebalances += moved.Count(m => m);
        jobSpan?.AddEvent(new ActivityEvent(ClusterTelemetry.Events.Rebalance, tags: new ActivityTagsCollection
        {
            [ClusterTelemetry.Attributes.Silos] = active.Length,
            [ClusterTelemetry.Attributes.Moved] = moved.Count(m => m),
        }));
        logger.LogInformation("job {Job}: silos changed to {Silos}; {Moved} workers move", this.GetPrimaryKeyString(), active.Length, moved.Count(m => m));
    }

    private async Task<int> CountSilosAsync()
    {
        try
        {
            var hosts = await GrainFactory.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
            return hosts.Count;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            logger.LogDebug(e, "could not count silos");
            return 1;
        }
    }

    private static int IndexOf(IReadOnlyList<Parameter> parameters, Parameter p)
    {
        for (var i = 0; i < parameters.Count; i++)
        {
            if (ReferenceEquals(parameters[i], p))
            {
                return i;
            }
        }

        return -1;
    }

    private sealed record SummedCounts(long[][] Positive, long[][] Zero, long[] Total);

    private static SummedCounts Sum(ActivationCounts[] counts, IReadOnlyList<MeasuredLayer> measured)
    {
        var positive = measured.Select(l => new long[l.Kernel.Rows]).ToArray();
        var zero = measured.Select(l => new long[l.Kernel.Rows]).ToArray();
        var total = new long[measured.Count];
        foreach (var c in counts)
        {
            var offset = 0;
            for (var l = 0; l < measured.Count; l++)
            {
                for (var k = 0; k < positive[l].Length; k++)
                {
                    positive[l][k] += c.Positive[offset + k];
                    zero[l][k] += c.Zero[offset + k];
                }

                offset += positive[l].Length;
                total[l] += c.Total[l];
            }
        }

        return new SummedCounts(positive, zero, total);
    }

    private static LayerStatistics[] Statistics(IReadOnlyList<MeasuredLayer> measured, int[] parameterIndex, ApplyReport[] applies, SummedCounts counts, DeadFilterTracker[] dead)
    {
        var result = new LayerStatistics[measured.Count];
        for (var l = 0; l < measured.Count; l++)
        {
            var rows = measured[l].Kernel.Rows;
            var g = new double[rows];
            var w = new double[rows];
            var b = new double[rows];
            var d = new double[rows];
            foreach (var apply in applies)
            {
                foreach (var sums in apply.Rows.Where(r => r.Parameter == parameterIndex[l]))
                {
                    for (var r = 0; r < rows; r++)
                    {
                        g[r] += sums.GradientSquares[r];
                        w[r] += sums.WeightSquares[r];
                        b[r] += sums.BeforeSquares[r];
                        d[r] += sums.DistanceSquares[r];
                    }
                }
            }

            var relu = measured[l].Activation.Kind == Engine.Layers.ActivationKind.Relu;
            var total = counts.Total[l];
            var sparsity = new float[rows];
            for (var r = 0; r < rows; r++)
            {
                var nonPositive = relu ? counts.Zero[l][r] : total - counts.Positive[l][r];
                sparsity[r] = total > 0 ? (float)((double)nonPositive / total) : 0f;
            }

            result[l] = new LayerStatistics(
                measured[l].Layer.Name,
                measured[l].Layer.TypeName,
                g.Select(v => (float)Math.Sqrt(v)).ToArray(),
                w.Select(v => (float)Math.Sqrt(v)).ToArray(),
                b.Select((v, r) => v > 0 ? (float)(Math.Sqrt(d[r]) / Math.Sqrt(v)) : 0f).ToArray(),
                sparsity,
                measured[l].SparsityMetric,
                measured[l].Activation.KerasName,
                dead[l].DeadFilters());
        }

        return result;
    }
}
