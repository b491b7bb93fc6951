using Orleans.Runtime;
using Orleans.TestingHost;
using Xunit.Abstractions;

namespace ClusterConv.Cluster.Tests;

/// <summary>ssp and async jobs through silos killed, stopped and joining mid-job, and resumed: they complete and count what they did again.</summary>
public sealed class FreeModeFaultTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(ConsistencyMode.Ssp)]
    [InlineData(ConsistencyMode.Async)]
    public async Task A_free_mode_job_completes_when_a_silo_with_workers_is_killed(ConsistencyMode mode)
    {
        // The kill comes once every worker has done round 5 (the job's step is the slowest worker's rounds), and rounds
        // past 7 wait until the silo is dead: every worker is killed (or survives) with rounds of the segment 5-10
        // behind it and before its end. At either boundary a lost worker would have nothing to do again (a kill at
        // round 5 once landed while the job was starting the segment: restarts 0, recomputed 0).
        var spec = FreeSpec($"free-kill-{mode}", mode);
        var gate = new StepGate(spec.JobId, holdAfter: 7, pushes: true);
        var status = await CompleteThroughAsync(3, spec, atStep: 6, async cluster =>
        {
            await cluster.KillSiloAsync(cluster.Silos[^1]);
            await TestClusters.WaitForActiveSilosAsync(cluster, 2, TimeSpan.FromSeconds(60));
            gate.Open();
        }, gate);
        Assert.True(status.Restarts + status.StepsRecomputed >= 1, "nothing was counted as done again");
    }

    [Theory]
    [InlineData(ConsistencyMode.Ssp)]
    [InlineData(ConsistencyMode.Async)]
    public async Task A_free_mode_job_completes_when_a_silo_stops_gracefully(ConsistencyMode mode)
    {
        // Six shards: the stopped silo holds some, which hand over their exact state (no restart needed).
        var status = await CompleteThroughAsync(3, FreeSpec($"free-stop-{mode}", mode) with { PsShards = 6 }, atStep: 20, cluster => cluster.StopSiloAsync(cluster.Silos[^1]));
        Assert.Equal(0, status.Restarts);
    }

    [Fact]
    public async Task A_free_mode_job_whose_job_grain_silo_stops_gracefully_hands_over_at_once_without_a_restart()
    {
        var spec = FreeSpec("free-stop-job", ConsistencyMode.Ssp) with { MaxSteps = 1200, Epochs = 24 };
        var status = await CompleteThroughAsync(3, spec, atStep: 20, async cluster =>
        {
            var jobSilo = (await TestClusters.SilosOfAsync<JobGrain>(cluster, spec.JobId)).Single();
            output.WriteLine($"stopping {jobSilo}, the job grain's silo (silo {cluster.Silos.ToList().FindIndex(s => s.SiloAddress == jobSilo)})");
            await cluster.StopSiloAsync(cluster.Silos.First(s => s.SiloAddress == jobSilo));

            // Handed over, the job goes on elsewhere while the silo stops; a job that ignored the hand-over kept its
            // silo's shutdown waiting (up to 20 s) and finished there, or was cut off and restarted.
            var after = await cluster.Client.GetGrain<IJobGrain>(spec.JobId).GetStatusAsync();
            output.WriteLine($"when the silo had stopped: {after.Phase} at {after.Step}");
            Assert.Equal(JobPhase.Running, after.Phase);
        });
        Assert.Equal(0, status.Restarts);
        Assert.True(status.Rebalances >= 1, "the job grain's hand-over was not counted");
    }

    [Fact]
    public async Task A_silo_that_joins_mid_ssp_job_receives_workers_at_a_checkpoint_round()
    {
        var status = await CompleteThroughAsync(2, FreeSpec("free-join", ConsistencyMode.Ssp) with { MaxSteps = 800, Epochs = 16 }, atStep: 10, async cluster =>
        {
            await cluster.StartAdditionalSiloAsync();
            await TestClusters.WaitForActiveSilosAsync(cluster, 3, TimeSpan.FromSeconds(60));
        });
        Assert.True(status.Rebalances > 0, $"no worker moved to the new silo (silos {status.Silos})");
        Assert.Equal(0, status.Restarts);
    }

    [Fact]
    public async Task A_parameter_server_shard_that_lost_its_state_rolls_every_shard_back_to_the_last_checkpoint_in_ssp()
    {
        // Six shards over three silos: one is on a silo other than the first and the job grain's. A checkpoint round
        // every 40 rounds, the kill past round 100: back to round 80 or later, not to the start.
        var spec = FreeSpec("free-kill-ps", ConsistencyMode.Ssp) with { PsShards = 6, CheckpointEvery = 40 };
        var status = await CompleteThroughAsync(3, spec, atStep: 100, async cluster =>
        {
            var jobSilo = (await TestClusters.SilosOfAsync<JobGrain>(cluster, spec.JobId)).Single();
            var shardSilos = await TestClusters.SilosOfAsync<ParameterServerGrain>(cluster, spec.JobId);
            var victim = cluster.Silos.Skip(1).First(s => shardSilos.Contains(s.SiloAddress) && s.SiloAddress != jobSilo);
            output.WriteLine($"killing {victim.SiloAddress} (shards on {string.Join(", ", shardSilos)}, job on {jobSilo})");
            await cluster.KillSiloAsync(victim);
        });
        Assert.True(status.Restarts >= 1, "the shard's lost state was not counted as a restart");
        Assert.InRange(status.StepsRecomputed, 1, 99);
    }

    [Fact]
    public async Task A_resumed_ssp_job_continues_from_its_last_checkpoint_round()
    {
        var (cluster, directory) = await TestClusters.StartAsync(1);
        try
        {
            var spec = TestClusters.Spec("free-resume", workers: 2, steps: 1000) with { Epochs = 20, Mode = ConsistencyMode.Ssp, Staleness = 1, StatsEvery = 0, CheckpointEvery = 40 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(60), async s =>
            {
                if (s.LastCheckpointStep >= 80 && s.Phase == JobPhase.Running)
                {
                    await job.CancelAsync();
                }
            });
            var cancelled = await job.GetStatusAsync();
            Assert.Equal(JobPhase.Cancelled, cancelled.Phase);
            Assert.True(cancelled.LastCheckpointStep >= 80 && cancelled.LastCheckpointStep % 40 == 0, $"checkpoint round {cancelled.LastCheckpointStep}");

            await job.StartAsync(spec with { Resume = true });
            var resumed = await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(60));
            output.WriteLine($"cancelled with a checkpoint at round {cancelled.LastCheckpointStep}; resumed: {resumed.Phase} at {resumed.Step}, {resumed.TrainSamples} samples");
            Assert.Equal(JobPhase.Completed, resumed.Phase);
            Assert.Equal(1000, resumed.Step);
            // Every round from the checkpoint on is trained once more, none before it: one global batch per round.
            Assert.Equal((1000 - cancelled.LastCheckpointStep) * spec.BatchSize, resumed.TrainSamples);
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    /// <summary>Runs <paramref name="spec"/> on a fresh cluster of <paramref name="silos"/>, doing <paramref name="fault"/> once it reached <paramref name="atStep"/>; it must complete every step.</summary>
    private async Task<JobStatus> CompleteThroughAsync(int silos, JobSpec spec, long atStep, Func<InProcessTestCluster, Task> fault, StepGate? gate = null)
    {
        var (cluster, directory) = await TestClusters.StartAsync(silos, fastFailureDetection: true, gate: gate);
        try
        {
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var (status, done) = await TestClusters.WaitWithFaultAsync(job, TimeSpan.FromSeconds(120), atStep, () => fault(cluster));
            output.WriteLine($"{status.Phase} at {status.Step}: silos {status.Silos}, restarts {status.Restarts}, recomputed {status.StepsRecomputed}, rebalances {status.Rebalances}, error {status.Error}");
            Assert.True(done, "the job ended before the fault");
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(spec.MaxSteps, status.Step);
            return status;
        }
        finally
        {
            gate?.Open();
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    private static JobSpec FreeSpec(string jobId, ConsistencyMode mode) =>
        TestClusters.Spec(jobId, workers: 4, steps: 300) with { Epochs = 6, Mode = mode, Staleness = mode == ConsistencyMode.Ssp ? 2 : 0, StatsEvery = 0 };
}
