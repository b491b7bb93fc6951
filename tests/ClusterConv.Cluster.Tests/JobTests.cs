namespace ClusterConv.Cluster.Tests;

public sealed class JobTests
{
    [Fact]
    public async Task A_job_completes_and_learns_on_synthetic_data()
    {
        var (cluster, directory) = await TestClusters.StartAsync(2);
        try
        {
            var spec = TestClusters.Spec("learns", workers: 2, steps: 100) with { Epochs = 2, StatsEvery = 20, LogEvery = 10 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var status = await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(90));
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(100, status.Step);
            var events = (await job.GetEventsAsync(string.Empty, -1)).Events;
            var epochs = events.Where(e => e.IsEpoch).ToArray();
            Assert.NotEmpty(epochs);
            Assert.True(epochs[^1].TestAccuracy > 0.5, $"test accuracy {epochs[^1].TestAccuracy}");
            var steps = events.Where(e => !e.IsEpoch).ToArray();
            Assert.True(steps[^1].Loss < steps[0].Loss, $"loss {steps[0].Loss} -> {steps[^1].Loss}");
            var withFilters = steps.First(e => e.Filters is not null);
            Assert.Equal(["conv2d", "conv2d_1", "dense", "dense_1"], withFilters.Filters!.Select(f => f.Layer));
            Assert.Equal(32, withFilters.Filters![0].GradientNorm.Length);
            Assert.True(status.BytesMoved > 0);
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task Final_weights_are_bitwise_identical_for_1_2_and_4_workers()
    {
        var (cluster, directory) = await TestClusters.StartAsync(2);
        try
        {
            var hashes = new List<string>();
            foreach (var workers in new[] { 1, 2, 4 })
            {
                var spec = TestClusters.Spec($"repro-{workers}", workers, steps: 10) with { JobId = $"repro-{workers}" };
                var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
                await job.StartAsync(spec);
                var status = await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(60));
                Assert.Equal(JobPhase.Completed, status.Phase);
                hashes.Add(status.WeightsSha256!);
            }

            Assert.All(hashes, h => Assert.Equal(hashes[0], h));
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }
}

public sealed class ModeTests
{
    [Theory]
    [InlineData(ConsistencyMode.Async, 0, 0)]
    [InlineData(ConsistencyMode.Ssp, 1, 0)]
    [InlineData(ConsistencyMode.Bsp, 0, 1)]
    public async Task Jobs_complete_in_every_consistency_mode(ConsistencyMode mode, int staleness, int backupWorkers)
    {
        var (cluster, directory) = await TestClusters.StartAsync(1);
        try
        {
            var spec = TestClusters.Spec($"mode-{mode}-{backupWorkers}", workers: 2, steps: 30) with { Mode = mode, Staleness = staleness, BackupWorkers = backupWorkers, LogEvery = 5 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var status = await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(90));
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(30, status.Step);
            Assert.NotNull(status.WeightsSha256);
            var events = (await job.GetEventsAsync(string.Empty, -1)).Events;
            Assert.Contains(events, e => e.IsEpoch && e.TestAccuracy > 0.2);
            Assert.Contains(events, e => !e.IsEpoch);
            if (backupWorkers > 0)
            {
                Assert.True(status.DroppedContributions > 0, "no contribution was dropped");
            }

            // Every update reached every shard: one version per step in bsp, one per worker and round in ssp and async
            // (a round behind the version is not stale garbage there: it is how those modes work).
            for (var shard = 0; shard < spec.PsShards; shard++)
            {
                var version = await cluster.Client.GetGrain<IParameterServerGrain>(shard, spec.JobId).InitializeAsync(spec, fresh: false);
                Assert.Equal(mode == ConsistencyMode.Bsp ? 30 : 30 * spec.Workers, version);
            }

            // Each worker knows how far it got (a job grain restarted after losing its shard counts the redone steps by
            // it); with a backup worker the slowest may still be on the last step.
            for (var w = 0; w < (backupWorkers == 0 ? spec.Workers : 0); w++)
            {
                Assert.Equal(30, await cluster.Client.GetGrain<IWorkerGrain>(w, spec.JobId).PeekRoundsAsync());
            }
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task A_resumed_job_continues_from_its_checkpoint_and_ends_with_the_same_weights()
    {
        // The resumed job's orders past step 11 wait at the workers' door until it is cancelled: it stops after its
        // checkpoint at step 10 and before its end, however fast the machine.
        var gate = new StepGate("resume", holdAfter: 11);
        var (cluster, directory) = await TestClusters.StartAsync(1, gate: gate);
        try
        {
            var full = TestClusters.Spec("resume-full", workers: 2, steps: 30) with { CheckpointEvery = 10 };
            var fullJob = cluster.Client.GetGrain<IJobGrain>(full.JobId);
            await fullJob.StartAsync(full);
            var expected = await TestClusters.WaitAsync(fullJob, TimeSpan.FromSeconds(60));

            var spec = full with { JobId = "resume" };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(60), async s =>
            {
                if (s.LastCheckpointStep >= 10 && gate.Holding)
                {
                    await job.CancelAsync();
                    gate.Open();
                }
            });
            var cancelled = await job.GetStatusAsync();
            Assert.Equal(JobPhase.Cancelled, cancelled.Phase);
            Assert.True(cancelled.LastCheckpointStep >= 10);

            await job.StartAsync(spec with { Resume = true });
            var resumed = await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(60));
            Assert.Equal(JobPhase.Completed, resumed.Phase);
            Assert.Equal(expected.WeightsSha256, resumed.WeightsSha256);
        }
        finally
        {
            gate.Open();
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }
}
