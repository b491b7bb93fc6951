using Orleans.Runtime;
using Xunit.Abstractions;

namespace ClusterConv.Cluster.Tests;

/// <summary>ssp and async jobs through a silo killed mid-job: the job goes on and counts what it did again.</summary>
public sealed class FreeModeFaultTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(ConsistencyMode.Ssp)]
    [InlineData(ConsistencyMode.Async)]
    public async Task A_free_mode_job_completes_when_a_silo_with_workers_is_killed(ConsistencyMode mode)
    {
        var (cluster, directory) = await TestClusters.StartAsync(3, fastFailureDetection: true);
        try
        {
            var spec = FreeSpec($"free-kill-{mode}", mode);
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var (status, killed) = await TestClusters.WaitWithFaultAsync(job, TimeSpan.FromSeconds(120), atStep: 5, () => cluster.KillSiloAsync(cluster.Silos[^1]));
            output.WriteLine($"{status.Phase} at {status.Step}: restarts {status.Restarts}, recomputed {status.StepsRecomputed}, error {status.Error}");

            Assert.True(killed, "the job ended before a silo was killed");
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(spec.MaxSteps, status.Step);
            Assert.True(status.Restarts + status.StepsRecomputed >= 1, "nothing was counted as done again");
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Theory]
    [InlineData(ConsistencyMode.Ssp)]
    [InlineData(ConsistencyMode.Async)]
    public async Task A_free_mode_job_completes_when_a_silo_stops_gracefully(ConsistencyMode mode)
    {
        var (cluster, directory) = await TestClusters.StartAsync(3, fastFailureDetection: true);
        try
        {
            var spec = FreeSpec($"free-stop-{mode}", mode) with { PsShards = 6 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var (status, stopped) = await TestClusters.WaitWithFaultAsync(job, TimeSpan.FromSeconds(120), atStep: 20, () => cluster.StopSiloAsync(cluster.Silos[^1]));
            output.WriteLine($"{status.Phase} at {status.Step}: restarts {status.Restarts}, recomputed {status.StepsRecomputed}, error {status.Error}");

            Assert.True(stopped, "the job ended before a silo was stopped");
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(spec.MaxSteps, status.Step);
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task A_silo_that_joins_mid_ssp_job_receives_workers_at_a_checkpoint_round()
    {
        var (cluster, directory) = await TestClusters.StartAsync(2, fastFailureDetection: true);
        try
        {
            var spec = FreeSpec("free-join", ConsistencyMode.Ssp) with { MaxSteps = 800, Epochs = 16 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var (status, joined) = await TestClusters.WaitWithFaultAsync(job, TimeSpan.FromSeconds(120), atStep: 10, async () =>
            {
                await cluster.StartAdditionalSiloAsync();
                await TestClusters.WaitForActiveSilosAsync(cluster, 3, TimeSpan.FromSeconds(60));
            });
            output.WriteLine($"{status.Phase} at {status.Step}: silos {status.Silos}, rebalances {status.Rebalances}, restarts {status.Restarts}, recomputed {status.StepsRecomputed}");

            Assert.True(joined, "the job ended before a silo joined");
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(spec.MaxSteps, status.Step);
            Assert.True(status.Rebalances > 0, $"no worker moved to the new silo (silos {status.Silos})");
            Assert.Equal(0, status.Restarts);
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task A_parameter_server_shard_that_lost_its_state_rolls_every_shard_back_to_the_last_checkpoint_in_ssp()
    {
        var (cluster, directory) = await TestClusters.StartAsync(3, fastFailureDetection: true);
        try
        {
            // Six shards over three silos: one is on a silo other than the first and the job grain's.
            // A checkpoint round every 40 rounds, the kill past round 100: back to round 80 or later, not to the start.
            var spec = FreeSpec("free-kill-ps", ConsistencyMode.Ssp) with { PsShards = 6, CheckpointEvery = 40 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var (status, killed) = await TestClusters.WaitWithFaultAsync(job, TimeSpan.FromSeconds(120), atStep: 100, async () =>
            {
                // The silo of a parameter-server shard that neither holds the job grain nor is the first silo.
                var statistics = await cluster.Client.GetGrain<IManagementGrain>(0).GetDetailedGrainStatistics();
                var jobSilo = statistics.First(s => s.GrainId.ToString().Contains("job", StringComparison.OrdinalIgnoreCase) && s.GrainId.ToString().Contains(spec.JobId, StringComparison.Ordinal)).SiloAddress;
                var shardSilos = statistics.Where(s => s.GrainType.Contains(nameof(ParameterServerGrain), StringComparison.Ordinal)).Select(s => s.SiloAddress).ToHashSet();
                var victim = cluster.Silos.Skip(1).First(s => shardSilos.Contains(s.SiloAddress) && s.SiloAddress != jobSilo);
                output.WriteLine($"killing {victim.SiloAddress} (shards on {string.Join(", ", shardSilos)}, job on {jobSilo})");
                await cluster.KillSiloAsync(victim);
            });
            output.WriteLine($"{status.Phase} at {status.Step}: restarts {status.Restarts}, recomputed {status.StepsRecomputed}, error {status.Error}");

            Assert.True(killed, "the job ended before a silo was killed");
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(spec.MaxSteps, status.Step);
            Assert.True(status.Restarts >= 1, "the shard's lost state was not counted as a restart");
            Assert.InRange(status.StepsRecomputed, 1, 99);
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
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

    private static JobSpec FreeSpec(string jobId, ConsistencyMode mode) =>
        TestClusters.Spec(jobId, workers: 4, steps: 300) with { Epochs = 6, Mode = mode, Staleness = mode == ConsistencyMode.Ssp ? 2 : 0, StatsEvery = 0 };
}
