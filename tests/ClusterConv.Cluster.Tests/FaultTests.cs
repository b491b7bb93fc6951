using Orleans.TestingHost;

namespace ClusterConv.Cluster.Tests;

public sealed class FaultTests
{
    [Fact]
    public async Task A_job_completes_with_the_same_weights_when_a_silo_is_killed_mid_job()
    {
        var (cluster, directory) = await TestClusters.StartAsync(3, fastFailureDetection: true);
        try
        {
            var reference = TestClusters.Spec("kill-reference", workers: 4, steps: 300) with { Epochs = 6 };
            var referenceJob = cluster.Client.GetGrain<IJobGrain>(reference.JobId);
            await referenceJob.StartAsync(reference);
            var expected = await TestClusters.WaitAsync(referenceJob, TimeSpan.FromSeconds(60));
            Assert.Equal(JobPhase.Completed, expected.Phase);

            var spec = reference with { JobId = "kill" };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var (status, killed) = await TestClusters.WaitWithFaultAsync(job, TimeSpan.FromSeconds(120), atStep: 5, () => cluster.KillSiloAsync(cluster.Silos[^1]));

            Assert.True(killed, "the job ended before a silo was killed");
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(300, status.Step);
            Assert.Equal(expected.WeightsSha256, status.WeightsSha256);
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task A_silo_stopped_gracefully_mid_job_hands_over_and_the_weights_stay_the_same()
    {
        var (cluster, directory) = await TestClusters.StartAsync(3, fastFailureDetection: true);
        try
        {
            var reference = TestClusters.Spec("stop-reference", workers: 4, steps: 120) with { Epochs = 3, CheckpointEvery = 1000 };
            var referenceJob = cluster.Client.GetGrain<IJobGrain>(reference.JobId);
            await referenceJob.StartAsync(reference);
            var expected = await TestClusters.WaitAsync(referenceJob, TimeSpan.FromSeconds(60));

            var spec = reference with { JobId = "stop" };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var (status, stopped) = await TestClusters.WaitWithFaultAsync(job, TimeSpan.FromSeconds(120), atStep: 5, () => cluster.StopSiloAsync(cluster.Silos[^1]));

            Assert.True(stopped, "the job ended before a silo was stopped");
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(120, status.Step);
            Assert.Equal(expected.WeightsSha256, status.WeightsSha256);
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task A_silo_that_joins_mid_job_receives_workers_and_the_weights_stay_the_same()
    {
        // The job's orders past step 6 wait at the workers' door until the new silo is up: it joins mid-job, however fast the machine.
        var gate = new StepGate("join", holdAfter: 6);
        var (cluster, directory) = await TestClusters.StartAsync(2, fastFailureDetection: true, gate: gate);
        try
        {
            var reference = TestClusters.Spec("join-reference", workers: 4, steps: 50);
            var referenceJob = cluster.Client.GetGrain<IJobGrain>(reference.JobId);
            await referenceJob.StartAsync(reference);
            var expected = await TestClusters.WaitAsync(referenceJob, TimeSpan.FromSeconds(60));

            var spec = reference with { JobId = "join" };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var (status, joined) = await TestClusters.WaitWithFaultAsync(job, TimeSpan.FromSeconds(120), atStep: 5, async () =>
            {
                await cluster.StartAdditionalSiloAsync();
                // The job rebalances when its silo's membership view changes: open once the cluster lists the new silo.
                await TestClusters.WaitForActiveSilosAsync(cluster, 3, TimeSpan.FromSeconds(60));
                gate.Open();
            });

            Assert.True(joined, "the job ended before a silo joined");
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(expected.WeightsSha256, status.WeightsSha256);
            Assert.True(status.Rebalances > 0, $"no worker moved to the new silo (silos {status.Silos})");
        }
        finally
        {
            gate.Open();
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task A_parameter_server_shard_handed_over_by_a_stopping_silo_counts_as_a_rebalance()
    {
        var (cluster, directory) = await TestClusters.StartAsync(3, fastFailureDetection: true);
        try
        {
            var spec = TestClusters.Spec("stop-shard", workers: 2, steps: 60) with { PsShards = 3, CheckpointEvery = 1000 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var (status, stopped) = await TestClusters.WaitWithFaultAsync(job, TimeSpan.FromSeconds(120), atStep: 5, async () =>
            {
                // A silo with a shard, never the job grain's (its own hand-over is another scenario), and without a
                // worker when there is one: the shard moves by hand-over. (Three shards on three silos: two are not
                // the job grain's.)
                var jobSilos = await TestClusters.SilosOfAsync<JobGrain>(cluster, spec.JobId);
                var workerSilos = await TestClusters.SilosOfAsync<WorkerGrain>(cluster, spec.JobId);
                var shards = await TestClusters.SilosOfAsync<ParameterServerGrain>(cluster, spec.JobId);
                var candidates = cluster.Silos.Where(s => shards.Contains(s.SiloAddress) && !jobSilos.Contains(s.SiloAddress)).ToArray();
                var victim = candidates.FirstOrDefault(s => !workerSilos.Contains(s.SiloAddress)) ?? candidates.First();
                await cluster.StopSiloAsync(victim);
            });

            Assert.True(stopped, "the job ended before a silo was stopped");
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(0, status.Restarts);
            Assert.True(status.Rebalances >= 1, $"the shard's hand-over was not counted (rebalances {status.Rebalances})");
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task A_step_pushed_twice_is_applied_once()
    {
        var (cluster, directory) = await TestClusters.StartAsync(1);
        try
        {
            var spec = TestClusters.Spec("idempotent", workers: 1) with { PsShards = 1, ScheduleSteps = 10 };
            var twice = cluster.Client.GetGrain<IParameterServerGrain>(0, spec.JobId);
            var onceSpec = spec with { JobId = "idempotent-once" };
            var once = cluster.Client.GetGrain<IParameterServerGrain>(0, onceSpec.JobId);
            Assert.Equal(0, await twice.InitializeAsync(spec, fresh: true));
            Assert.Equal(0, await once.InitializeAsync(onceSpec, fresh: true));
            var length = (await twice.GetWeightsAsync(spec, 0, -1)).SliceLength;
            Assert.Equal(0, await twice.GetVersionAsync(spec));
            var gradient = Enumerable.Range(0, length).Select(i => ((i % 7) - 3) * 1e-3f).ToArray();
            var chunk = new GradientChunk(0, 0, spec.MicroBatches, 0, length, GradientCompression.None, WireFormat.ToBytes(gradient), 32);

            // The push that completes the step's tree applies it; the repeated push and the job's apply change nothing.
            var first = await twice.PushAsync(spec, chunk);
            var repeated = await twice.PushAsync(spec, chunk);
            var apply = await twice.ApplyAsync(new ApplyOrder(spec, 0, false, false, 32));
            var late = await twice.PushAsync(spec, chunk);

            Assert.True((await once.PushAsync(onceSpec, chunk)).Taken);

            Assert.True(first.Taken);
            Assert.True(first.Applied!.Applied);
            Assert.False(repeated.Taken);
            Assert.False(apply.Applied);
            Assert.Equal(1, apply.Version);
            Assert.False(late.Taken);
            var a = await twice.GetWeightsAsync(spec, 0, -1);
            var b = await once.GetWeightsAsync(onceSpec, 0, -1);
            Assert.Equal(1, a.Version);
            Assert.Equal(1, await twice.GetVersionAsync(spec));
            Assert.Equal(b.Segments, a.Segments);
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task Every_version_a_shard_serves_holds_its_own_weights_while_the_shard_reuses_its_weight_segments()
    {
        var (cluster, directory) = await TestClusters.StartAsync(1);
        try
        {
            var (spec, shard) = await SingleShardAsync(cluster, "reused-segments");
            for (var step = 0; step < 6; step++)
            {
                var current = await shard.GetWeightsAsync(spec, 0, step);
                Assert.Equal(step, current.Version);
                var served = ToFloats(current);
                var gradient = Enumerable.Range(0, current.SliceLength).Select(i => (((i + step) % 5) - 2) * 1e-2f).ToArray();
                Assert.True((await PushWholeAsync(shard, spec, step, gradient)).Applied!.Applied);

                // The new version first (its bytes go into reused segments), then the version before (what a
                // recomputed step starts from): still exactly what was served for it.
                var after = await shard.GetWeightsAsync(spec, 0, step + 1);
                Assert.Equal(step + 1, after.Version);
                Assert.NotEqual(served, ToFloats(after));
                var before = await shard.GetWeightsAsync(spec, 0, step);
                Assert.Equal(step, before.Version);
                Assert.Equal(served, ToFloats(before));
            }
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }

    }

    [Fact]
    public async Task A_shard_handed_over_after_applying_a_step_still_serves_the_weights_that_step_started_from()
    {
        // A worker on a stopping silo can push its part of step s, the shard apply it and hand over, and the worker's
        // report be lost: the job has that worker compute step s again, from the weights of version s on every shard.
        var (cluster, directory) = await TestClusters.StartAsync(1);
        try
        {
            var (spec, shard) = await SingleShardAsync(cluster, "handover-prior");
            var start = await shard.GetWeightsAsync(spec, 0, 0);
            var gradient = Enumerable.Range(0, start.SliceLength).Select(i => ((i % 5) - 2) * 1e-2f).ToArray();
            Assert.True((await PushWholeAsync(shard, spec, 0, gradient)).Applied!.Applied);
            var applied = ToFloats(await shard.GetWeightsAsync(spec, 0, 1));

            // Every idle activation is deactivated; the shard writes its hand-over state, and the next call activates it anew.
            await cluster.Client.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);

            var report = await shard.ApplyAsync(new ApplyOrder(spec, 0, false, false, 32));
            Assert.True(report.HandedOver, "the shard was not deactivated and handed over");
            Assert.Equal(1, report.Version);
            var recomputed = await shard.GetWeightsAsync(spec, 0, 0);
            Assert.Equal(0, recomputed.Version);
            Assert.Equal(ToFloats(start), ToFloats(recomputed));
            var current = await shard.GetWeightsAsync(spec, 0, 1);
            Assert.Equal(1, current.Version);
            Assert.Equal(applied, ToFloats(current));
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    /// <summary>A job's only parameter-server shard, initialized fresh (version 0).</summary>
    private static async Task<(JobSpec Spec, IParameterServerGrain Shard)> SingleShardAsync(InProcessTestCluster cluster, string jobId)
    {
        var spec = TestClusters.Spec(jobId, workers: 1) with { PsShards = 1, ScheduleSteps = 10 };
        var shard = cluster.Client.GetGrain<IParameterServerGrain>(0, spec.JobId);
        Assert.Equal(0, await shard.InitializeAsync(spec, fresh: true));
        return (spec, shard);
    }

    /// <summary>Step <paramref name="step"/>'s whole gradient as one push (the root of the tree over every micro-batch).</summary>
    private static Task<PushResult> PushWholeAsync(IParameterServerGrain shard, JobSpec spec, long step, float[] gradient) =>
        shard.PushAsync(spec, new GradientChunk(step, 0, spec.MicroBatches, 0, gradient.Length, GradientCompression.None, WireFormat.ToBytes(gradient), 32));

    private static float[] ToFloats(WeightsChunk chunk)
    {
        var values = new float[chunk.Count];
        chunk.CopyTo(values);
        return values;
    }
}
