using ClusterConv.Engine;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Cluster.Tests;

/// <summary>BatchNormalization on the cluster: moving statistics carried through the parameter servers.</summary>
public sealed class BatchNormTests
{
    /// <summary>A small CNN with BatchNormalization on an image (per channel) and on a vector (per unit); low momenta so 10 steps warm the moving statistics up.</summary>
    internal static readonly ModelSpec Model = new("bn-cnn", new SampleShape(1, 28, 28),
    [
        new Conv2DSpec("conv2d", 8, 3, 3),
        new BatchNormSpec("batch_normalization", Momentum: 0.5f),
        new ActivationSpec("activation", Activation.Relu),
        new Pool2DSpec("max_pooling2d", PoolKind.Max, 2, 2, 2, 2),
        new FlattenSpec("flatten"),
        new DenseSpec("dense", 16),
        new BatchNormSpec("batch_normalization_1", Momentum: 0.6f),
        new ActivationSpec("activation_1", Activation.Relu),
        new DenseSpec("dense_1", 10),
    ]);

    private static JobSpec Spec(string jobId, int workers) => TestClusters.Spec(jobId, workers, steps: 10) with
    {
        ModelJson = KerasModelWriter.Write(Model),

        // Three shards: the moving statistics (the vector's tail) sit on the last one, cut from the trainable part.
        PsShards = 3,
    };

    [Fact]
    public async Task Weights_and_moving_statistics_are_bitwise_identical_for_1_2_and_4_workers()
    {
        var (cluster, directory) = await TestClusters.StartAsync(2);
        try
        {
            var layout = new ClusterVector(new Model(Model));
            Assert.Equal(2 * (8 + 16), layout.Moving);
            var vectors = new List<float[]>();
            var hashes = new List<string>();
            foreach (var workers in new[] { 1, 2, 4 })
            {
                var spec = Spec($"bn-repro-{workers}", workers);
                var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
                await job.StartAsync(spec);
                var status = await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(60));
                Assert.True(status.Phase == JobPhase.Completed, status.Error);
                hashes.Add(status.WeightsSha256!);
                var servers = Enumerable.Range(0, spec.PsShards).Select(p => cluster.Client.GetGrain<IParameterServerGrain>(p, spec.JobId)).ToArray();
                vectors.Add(await JobGrain.ReadWeightsAsync(spec, servers, layout.Length));

                var events = (await job.GetEventsAsync(string.Empty, -1)).Events;
                Assert.Contains(events, e => e.IsEpoch && e.TestAccuracy > 0.2);
            }

            Assert.All(hashes, h => Assert.Equal(hashes[0], h));
            foreach (var vector in vectors.Skip(1))
            {
                Assert.Equal(vectors[0], vector);
            }

            // The moving statistics moved away from their start (mean 0, variance 1), and the job's hash covers them.
            var model = new Model(Model);
            layout.Load(model, vectors[0]);
            var norms = model.Layers.OfType<BatchNorm>().ToArray();
            Assert.All(norms, n => Assert.Contains(n.MovingMean.Value, v => v != 0f));
            Assert.All(norms, n => Assert.Contains(n.MovingVariance.Value, v => v != 1f));
            Assert.All(norms, n => Assert.All(n.MovingVariance.Value, v => Assert.True(v > 0f, $"variance {v}")));
            Assert.Equal(hashes[0], model.WeightsSha256());
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Theory]
    [InlineData(ConsistencyMode.Async, 0)]
    [InlineData(ConsistencyMode.Ssp, 1)]
    public async Task Ssp_and_async_jobs_keep_the_moving_statistics_of_their_updates(ConsistencyMode mode, int staleness)
    {
        var (cluster, directory) = await TestClusters.StartAsync(1);
        try
        {
            var spec = Spec($"bn-{mode}", workers: 2) with { Mode = mode, Staleness = staleness, MaxSteps = 20 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var status = await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(60));
            Assert.True(status.Phase == JobPhase.Completed, status.Error);

            var layout = new ClusterVector(new Model(Model));
            var servers = Enumerable.Range(0, spec.PsShards).Select(p => cluster.Client.GetGrain<IParameterServerGrain>(p, spec.JobId)).ToArray();
            var model = new Model(Model);
            layout.Load(model, await JobGrain.ReadWeightsAsync(spec, servers, layout.Length));

            // Each update brings its own micro-batches' mean (not a fraction of it): the variances stay positive and
            // away from zero, as the layer's inputs are.
            Assert.All(model.Layers.OfType<BatchNorm>(), n => Assert.All(n.MovingVariance.Value, v => Assert.True(v > 1e-4f && float.IsFinite(v), $"variance {v}")));
            Assert.All(model.Layers.OfType<BatchNorm>(), n => Assert.Contains(n.MovingMean.Value, v => v != 0f));
            var events = (await job.GetEventsAsync(string.Empty, -1)).Events;
            Assert.Contains(events, e => e.IsEpoch && e.TestAccuracy > 0.2);
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task A_resumed_job_restores_the_moving_statistics_from_its_checkpoint()
    {
        // The resumed job's orders past step 5 wait at the workers' door until it is cancelled: it stops after its
        // checkpoint at step 4 and before its end, however fast the machine.
        var gate = new StepGate("bn-resume", holdAfter: 5);
        var (cluster, directory) = await TestClusters.StartAsync(1, gate: gate);
        try
        {
            var full = Spec("bn-resume-full", workers: 2) with { CheckpointEvery = 4, MaxSteps = 16 };
            var fullJob = cluster.Client.GetGrain<IJobGrain>(full.JobId);
            await fullJob.StartAsync(full);
            var expected = await TestClusters.WaitAsync(fullJob, TimeSpan.FromSeconds(60));
            Assert.Equal(JobPhase.Completed, expected.Phase);

            var spec = full with { JobId = "bn-resume" };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(60), async s =>
            {
                if (s.LastCheckpointStep >= 4 && gate.Holding)
                {
                    await job.CancelAsync();
                    gate.Open();
                }
            });
            var cancelled = await job.GetStatusAsync();
            Assert.Equal(JobPhase.Cancelled, cancelled.Phase);

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
