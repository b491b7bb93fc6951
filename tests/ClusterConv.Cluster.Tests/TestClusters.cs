using System.Diagnostics;
using ClusterConv.Engine.Specs;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.TestingHost;

namespace ClusterConv.Cluster.Tests;

/// <summary>In-process Orleans clusters with ClusterConv's grains and checkpoint files in a temporary folder.</summary>
public static class TestClusters
{
    public static async Task<(InProcessTestCluster Cluster, string Directory)> StartAsync(int silos, bool fastFailureDetection = false, StepGate? gate = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), $"clusterconv-test-{Guid.NewGuid():N}");
        var builder = new InProcessTestClusterBuilder((short)silos);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddClusterConv(new ClusterConvSiloOptions { CheckpointDirectory = directory });
            if (gate is not null)
            {
                silo.AddIncomingGrainCallFilter(gate.InvokeAsync);
                silo.AddOutgoingGrainCallFilter(gate.SendAsync);
            }

            if (fastFailureDetection)
            {
                // A killed silo is declared dead in about 2 s instead of about 15 s.
                silo.Configure<ClusterMembershipOptions>(o =>
                {
                    o.ProbeTimeout = TimeSpan.FromMilliseconds(500);
                    o.NumMissedProbesLimit = 2;
                    o.NumVotesForDeathDeclaration = 1;
                    o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
                    o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(1);
                });

                // A call stuck on the killed silo gives up after 10 s rather than 30 s.
                silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(10));
            }
        });
        if (fastFailureDetection)
        {
            builder.ConfigureClient(client => client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(10)));
        }

        var cluster = builder.Build();
        await cluster.DeployAsync();
        return (cluster, directory);
    }

    public static JobSpec Spec(string jobId, int workers, int steps = 12, int batchSize = 32) => new()
    {
        JobId = jobId,
        ModelJson = KerasModelWriter.Write(BuiltInModels.KerasCnn),
        Data = "synthetic",
        SyntheticTrain = 1_600,
        SyntheticTest = 400,
        Epochs = 1,
        BatchSize = batchSize,
        MicroBatches = 4,
        Workers = workers,
        PsShards = 2,
        MaxSteps = steps,
        StatsEvery = 5,
        LogEvery = 5,
        CheckpointEvery = 5,
        Seed = 7,
        ThreadsPerWorker = 1,
    };

    /// <summary>Waits for the job to end, doing <paramref name="fault"/> once when it has reached <paramref name="atStep"/>; also says whether it did.</summary>
    public static async Task<(JobStatus Status, bool FaultDone)> WaitWithFaultAsync(IJobGrain job, TimeSpan timeout, long atStep, Func<Task> fault)
    {
        var done = false;
        var status = await WaitAsync(job, timeout, async s =>
        {
            if (!done && s.Step >= atStep)
            {
                done = true;
                await fault();
            }
        });
        return (status, done);
    }

    /// <summary>Polls the job until it leaves the running phase.</summary>
    public static async Task<JobStatus> WaitAsync(IJobGrain job, TimeSpan timeout, Func<JobStatus, Task>? onProgress = null)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var status = await job.GetStatusAsync();
            if (status.Phase is not (JobPhase.Running or JobPhase.Pending))
            {
                return status;
            }

            if (onProgress is not null)
            {
                await onProgress(status);
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"job {status.JobId} still running at step {status.Step}/{status.TotalSteps} after {timeout}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>
    /// Waits until every running silo's own membership view (the one a job grain reads) lists exactly
    /// <paramref name="count"/> active silos: a killed one declared dead, a new one joined.
    /// </summary>
    public static async Task WaitForActiveSilosAsync(InProcessTestCluster cluster, int count, TimeSpan timeout)
    {
        using var stop = new CancellationTokenSource(timeout);
        foreach (var silo in cluster.Silos.Where(s => s.IsActive))
        {
            var membership = silo.ServiceProvider.GetRequiredService<IClusterMembershipService>();
            // The updates start with the latest snapshot; cancelled (the timeout), they simply end.
            var seen = -1;
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(stop.Token))
            {
                if ((seen = Active(snapshot)) == count)
                {
                    break;
                }
            }

            if (seen != count)
            {
                throw new TimeoutException($"silo {silo.Name} still lists {seen} active silos, not {count}, after {timeout}");
            }
        }

        static int Active(ClusterMembershipSnapshot snapshot) => snapshot.Members.Values.Count(m => m.Status == SiloStatus.Active);
    }

    /// <summary>The silos holding activations of <typeparamref name="TGrain"/> for job <paramref name="jobId"/>.</summary>
    public static async Task<HashSet<SiloAddress>> SilosOfAsync<TGrain>(InProcessTestCluster cluster, string jobId)
    {
        var statistics = await cluster.Client.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics();
        return statistics
            .Where(s => s.GrainType.Contains(typeof(TGrain).Name, StringComparison.Ordinal) && s.GrainId.ToString().Contains(jobId, StringComparison.Ordinal))
            .Select(s => s.SiloAddress)
            .ToHashSet();
    }

    public static void Delete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}

/// <summary>
/// Holds one job's step orders past <see cref="HoldAfter"/> at the worker's door until <see cref="Open"/>: a test can
/// act on the job at a known step (cancel it after a checkpoint) however fast the machine runs it. With
/// <paramref name="pushes"/>, gradient pushes of later steps (ssp and async rounds, which the workers run without
/// orders) are held instead, as the worker sends them.
/// </summary>
public sealed class StepGate(string jobId, long holdAfter, bool pushes = false)
{
    private readonly TaskCompletionSource opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int held;

    public long HoldAfter => holdAfter;

    /// <summary>Whether an order has been held: the job cannot have got past step <see cref="HoldAfter"/> + 1.</summary>
    public bool Holding => Volatile.Read(ref held) > 0;

    public void Open() => opened.TrySetResult();

    /// <summary>Orders wait at the worker's door.</summary>
    internal async Task InvokeAsync(IIncomingGrainCallContext context)
    {
        if (!pushes && !opened.Task.IsCompleted && IsLateOrder(context))
        {
            Interlocked.Increment(ref held);
            await opened.Task;
        }

        await context.Invoke();
    }

    /// <summary>
    /// Pushes wait at the sending worker, not at the shard: held there they would hold the shard's turn, and in async
    /// mode (no bound on how far a worker runs ahead) the slower workers' earlier pushes would wait behind them for good.
    /// </summary>
    internal async Task SendAsync(IOutgoingGrainCallContext context)
    {
        if (pushes && !opened.Task.IsCompleted && IsLatePush(context))
        {
            Interlocked.Increment(ref held);
            await opened.Task;
        }

        await context.Invoke();
    }

    private bool IsLateOrder(IIncomingGrainCallContext context) =>
        context.InterfaceMethod?.Name == nameof(IWorkerGrain.ComputeStepAsync)
        && context.Request.GetArgument(0) is StepOrder order
        && order.Spec.JobId == jobId
        && order.Step > holdAfter;

    private bool IsLatePush(IGrainCallContext context) =>
        context.InterfaceMethod?.Name == nameof(IParameterServerGrain.PushAsync)
        && context.Request.GetArgument(0) is JobSpec spec
        && spec.JobId == jobId
        && context.Request.GetArgument(1) is GradientChunk chunk
        && chunk.Step > holdAfter;
}
