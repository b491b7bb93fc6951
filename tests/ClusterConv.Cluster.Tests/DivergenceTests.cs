using System.Collections.Concurrent;
using System.Diagnostics;
using ClusterConv.Cluster.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace ClusterConv.Cluster.Tests;

/// <summary>
/// Faults injected into workers through the test-only <see cref="IWorkerFaults"/> (a NaN gradient, a gradient scaled
/// by 1000, a corrupted weight copy): the parameter servers refuse non-finite gradients and skip the step on every
/// shard, the job stops past --max-nonfinite-refusals, and divergent workers are named.
/// </summary>
public sealed class DivergenceTests : IClassFixture<DivergenceTests.Fixture>
{
    private readonly Fixture fixture;

    public DivergenceTests(Fixture fixture) => this.fixture = fixture;

    [Theory]
    [InlineData(GradientCompression.None)]
    [InlineData(GradientCompression.Fp16)]
    public async Task A_nan_gradient_is_refused_and_its_step_skipped_on_every_shard(GradientCompression compression)
    {
        // With fp16 the refused gradient must also stay out of the error-feedback residual, or every later step would be refused.
        var spec = TestClusters.Spec($"div-nan-{compression}", workers: 2, steps: 8) with { PsShards = 2, StatsEvery = 0, LogEvery = 1, Compression = compression };
        fixture.Faults.Gradient(spec.JobId, worker: 1, step: 3, g => g[g.Length - 1] = float.NaN);

        var (status, events) = await fixture.RunAsync(spec);

        Assert.Equal(JobPhase.Completed, status.Phase);
        Assert.Equal(8, status.Step);
        Assert.Equal(1, status.NonFiniteRefusals);
        Assert.Equal(1, status.StepsSkipped);
        Assert.Equal([1], status.DivergentWorkers);
        var alert = Assert.Single(events, e => e.Alert is not null).Alert!;
        Assert.Equal((JobAlert.NonFinite, 1, 3L), (alert.Kind, alert.Worker, alert.Step));
        Assert.Contains("worker 1", alert.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(events, e => !e.IsEpoch && e.Alert is null && e.Step == 3);

        // Every worker computed step 4 on the weights of step 3: no shard applied any part of the refused step.
        foreach (var worker in new[] { 0, 1 })
        {
            Assert.Equal(fixture.Faults.WeightsSeen(spec.JobId, worker, 3), fixture.Faults.WeightsSeen(spec.JobId, worker, 4));
            Assert.NotEqual(fixture.Faults.WeightsSeen(spec.JobId, worker, 2), fixture.Faults.WeightsSeen(spec.JobId, worker, 3));
        }

        // The NaN sat in the last shard's slice; the first shard refused the worker's flagged chunks as well.
        var refusals = fixture.Events(spec.JobId, ClusterTelemetry.Events.NonFiniteGradient);
        Assert.Contains(refusals, e => Tag(e, ClusterTelemetry.Attributes.Shard) is 0);
        Assert.Contains(refusals, e => Tag(e, ClusterTelemetry.Attributes.Shard) is 1);
        Assert.All(refusals, e => Assert.Equal(1, Tag(e, ClusterTelemetry.Attributes.Worker)));
        Assert.Single(fixture.Events(spec.JobId, ClusterTelemetry.Events.StepSkipped));
    }

    [Fact]
    public async Task A_short_compute_runs_in_the_grain_turn_and_the_one_after_a_long_compute_on_the_compute_thread()
    {
        const int Steps = 12;
        var spec = TestClusters.Spec("div-compute-thread", workers: 2, steps: Steps) with { StatsEvery = 0, CheckpointEvery = 0 };
        var threads = new ConcurrentDictionary<long, string?>();
        for (var step = 0L; step < Steps; step++)
        {
            var at = step;
            fixture.Faults.Gradient(spec.JobId, worker: 0, step, _ => threads[at] = Thread.CurrentThread.Name);
        }

        // The limit is raised from 20 ms to 500 ms so that ordinary steps stay under it on a loaded machine; step 3's
        // compute takes longer: step 4 goes to the compute thread.
        fixture.Faults.InTurnLimit(spec.JobId, seconds: 0.5);
        fixture.Faults.Gradient(spec.JobId, worker: 0, step: 3, _ => Thread.Sleep(600));

        var (status, _) = await fixture.RunAsync(spec);

        Assert.Equal(JobPhase.Completed, status.Phase);
        const string ComputeThread = "clusterconv-compute-0";
        var onComputeThread = Enumerable.Range(0, Steps).Select(s => threads[s] == ComputeThread).ToArray();

        // Step 0 (no compute time known yet) and step 4 on the compute thread; after warm-up, short steps in the turn.
        Assert.True(onComputeThread[0]);
        Assert.True(onComputeThread[4]);
        Assert.Contains(false, onComputeThread[5..]);
    }

    [Theory]
    [InlineData(0, 2L, 1L, 0L)]
    [InlineData(2, 4L, 3L, 2L)]
    public async Task The_job_stops_as_diverged_after_max_refusals(int maxRefusals, long failedAt, long refusals, long skipped)
    {
        var spec = TestClusters.Spec($"div-stop-{maxRefusals}", workers: 2, steps: 10) with { MaxNonFiniteRefusals = maxRefusals, StatsEvery = 0 };
        fixture.Faults.Gradient(spec.JobId, worker: 0, step: -1, g => g[0] = float.PositiveInfinity, from: 2);

        var (status, events) = await fixture.RunAsync(spec);

        Assert.Equal(JobPhase.Failed, status.Phase);
        Assert.False(status.BadInput);
        Assert.StartsWith("training diverged:", status.Error, StringComparison.Ordinal);
        Assert.Contains($"more than --max-nonfinite-refusals {maxRefusals}", status.Error, StringComparison.Ordinal);
        Assert.Contains($"worker 0 at step {failedAt}", status.Error, StringComparison.Ordinal);
        Assert.Equal(refusals, status.NonFiniteRefusals);
        Assert.Equal(skipped, status.StepsSkipped);
        Assert.Equal(failedAt, status.Step);
        Assert.Equal(refusals, events.Count(e => e.Alert is { Kind: JobAlert.NonFinite, Worker: 0 }));
    }

    [Theory]
    [InlineData(3, 4, ConsistencyMode.Bsp)]
    [InlineData(2, 8, ConsistencyMode.Bsp)]
    [InlineData(3, 4, ConsistencyMode.Async)]
    [InlineData(2, 8, ConsistencyMode.Ssp)]
    public async Task A_worker_whose_gradient_norm_jumps_is_named(int workers, long step, ConsistencyMode mode)
    {
        // Three workers: compared with the others' median; two: with its own recent steps (5 needed). In ssp and async
        // the step is the worker's round, compared once every worker has done it.
        var spec = TestClusters.Spec($"div-norm-{workers}-{mode}", workers, steps: 12) with { StatsEvery = 0, Mode = mode, Staleness = mode == ConsistencyMode.Ssp ? 1 : 0 };
        fixture.Faults.Gradient(spec.JobId, worker: workers - 1, step, g => System.Numerics.Tensors.TensorPrimitives.Multiply(g, 1000f, g));

        var (status, events) = await fixture.RunAsync(spec);

        Assert.Equal(JobPhase.Completed, status.Phase);
        var outliers = events.Select(e => e.Alert).OfType<JobAlert>().Where(a => a.Kind == JobAlert.GradientOutlier).ToArray();
        var named = Assert.Single(outliers);
        Assert.Equal((workers - 1, step), (named.Worker, named.Step));
        Assert.InRange(named.Value / named.Reference, 100, 10_000);
        Assert.Equal(1, status.GradientOutliers);
        Assert.Equal(0, status.NonFiniteRefusals);
        Assert.Equal([workers - 1], status.DivergentWorkers);
        var span = Assert.Single(fixture.Events(spec.JobId, ClusterTelemetry.Events.GradientOutlier));
        Assert.Equal(workers - 1, Tag(span, ClusterTelemetry.Attributes.Worker));
    }

    [Fact]
    public async Task A_worker_computing_on_a_corrupted_weight_copy_is_named()
    {
        var spec = TestClusters.Spec("div-weights", workers: 2, steps: 6) with { StatsEvery = 0 };
        fixture.Faults.Weights(spec.JobId, worker: 1, step: 3, w => w[w.Length / 2] += 0.5f);

        var (status, events) = await fixture.RunAsync(spec);

        Assert.Equal(JobPhase.Completed, status.Phase);
        var alert = Assert.Single(events, e => e.Alert is not null).Alert!;
        Assert.Equal((JobAlert.WeightsMismatch, 1, 3L), (alert.Kind, alert.Worker, alert.Step));
        Assert.Equal(1, status.WeightsMismatches);
        Assert.Equal([1], status.DivergentWorkers);

        // Only the shard holding the changed value saw the difference.
        var mismatch = Assert.Single(fixture.Events(spec.JobId, ClusterTelemetry.Events.WeightsMismatch), e => Tag(e, ClusterTelemetry.Attributes.Shard) is not null);
        Assert.Equal(1, Tag(mismatch, ClusterTelemetry.Attributes.Worker));
    }

    [Fact]
    public async Task In_async_mode_a_refused_round_is_counted_and_the_job_goes_on()
    {
        var spec = TestClusters.Spec("div-async", workers: 2, steps: 8) with { Mode = ConsistencyMode.Async, StatsEvery = 0 };
        fixture.Faults.Gradient(spec.JobId, worker: 0, step: 2, g => g[0] = float.NaN);

        var (status, events) = await fixture.RunAsync(spec);

        Assert.Equal(JobPhase.Completed, status.Phase);
        Assert.Equal(1, status.NonFiniteRefusals);
        Assert.Equal(0, status.StepsSkipped);
        var alert = Assert.Single(events, e => e.Alert is not null).Alert!;
        Assert.Equal((JobAlert.NonFinite, 0, 2L), (alert.Kind, alert.Worker, alert.Step));
    }

    [Fact]
    public async Task A_chunk_flagged_non_finite_is_refused_by_every_shard_and_skipping_leaves_the_weights()
    {
        var spec = TestClusters.Spec("div-flag", workers: 1) with { PsShards = 2, ScheduleSteps = 10 };
        var shards = new[] { 0, 1 }.Select(p => fixture.Cluster.Client.GetGrain<IParameterServerGrain>(p, spec.JobId)).ToArray();
        foreach (var shard in shards)
        {
            await shard.InitializeAsync(spec, fresh: true);
        }

        foreach (var shard in shards)
        {
            var before = await shard.GetWeightsAsync(spec, 0, -1);
            var finite = WireFormat.ToBytes(new float[before.SliceLength]);
            var chunk = new GradientChunk(0, 0, spec.MicroBatches, 0, before.SliceLength, GradientCompression.None, finite, 32, Worker: 5, NonFinite: true);
            var result = await shard.PushAsync(spec, chunk);
            Assert.True(result.Refused);
            Assert.False(result.Taken);
            Assert.Null(result.Applied);

            var skipped = await shard.SkipAsync(spec, 0);
            Assert.Equal((1L, false), (skipped.Version, skipped.Applied));
            Assert.Equal(skipped, await shard.SkipAsync(spec, 0));
            var after = await shard.GetWeightsAsync(spec, 0, 1);
            Assert.Equal(1, after.Version);
            Assert.Equal(before.Segments, after.Segments);
        }
    }

    private static object? Tag(ActivityEvent e, string key) => e.Tags.FirstOrDefault(t => t.Key == key).Value;

    /// <summary>Faults by job, worker and step, registered in every silo of the fixture's cluster.</summary>
    internal sealed class Faults : IWorkerFaults
    {
        private readonly ConcurrentDictionary<string, List<(int Worker, long Step, long From, Action<float[]> Change)>> gradients = new();
        private readonly ConcurrentDictionary<string, List<(int Worker, long Step, Action<float[]> Change)>> weights = new();
        private readonly ConcurrentDictionary<(string Job, int Worker, long Step), float[]> seen = new();
        private readonly ConcurrentDictionary<string, double> inTurnLimits = new();

        /// <summary>Changes worker's gradient (each tree node's) at <paramref name="step"/>, or at every step from <paramref name="from"/> when step is −1.</summary>
        public void Gradient(string job, int worker, long step, Action<float[]> change, long from = long.MaxValue) =>
            gradients.GetOrAdd(job, _ => []).Add((worker, step, from, change));

        public void Weights(string job, int worker, long step, Action<float[]> change) =>
            weights.GetOrAdd(job, _ => []).Add((worker, step, change));

        /// <summary>The weights the worker computed step <paramref name="step"/> on (after any fault), as it saw them.</summary>
        public float[] WeightsSeen(string job, int worker, long step) => seen[(job, worker, step)];

        public void InTurnLimit(string job, double seconds) => inTurnLimits[job] = seconds;

        public double InTurnComputeSeconds(string job, double standard) => inTurnLimits.GetValueOrDefault(job, standard);

        public void OnWeights(string job, int worker, long step, float[] values)
        {
            foreach (var (w, s, change) in weights.GetValueOrDefault(job) ?? [])
            {
                if (w == worker && s == step)
                {
                    change(values);
                }
            }

            seen[(job, worker, step)] = (float[])values.Clone();
        }

        public void OnGradient(string job, int worker, long step, IReadOnlyList<float[]> nodes)
        {
            foreach (var (w, s, from, change) in gradients.GetValueOrDefault(job) ?? [])
            {
                if (w == worker && (s == step || (s < 0 && step >= from)))
                {
                    foreach (var node in nodes)
                    {
                        change(node);
                    }
                }
            }
        }
    }

    /// <summary>A two-silo cluster whose workers take <see cref="Faults"/>, and the ClusterConv span events of each job.</summary>
    public sealed class Fixture : IAsyncLifetime
    {
        private readonly ConcurrentQueue<Activity> spans = new();
        private readonly JobSpanEnds spanEnds = new();
        private ActivityListener? listener;
        private string directory = string.Empty;

        internal Faults Faults { get; } = new();

        public InProcessTestCluster Cluster { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name == ClusterTelemetry.Name,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = span =>
                {
                    spans.Enqueue(span);
                    spanEnds.Observe(span);
                },
            };
            ActivitySource.AddActivityListener(listener);
            directory = Path.Combine(Path.GetTempPath(), $"clusterconv-test-{Guid.NewGuid():N}");
            var builder = new InProcessTestClusterBuilder(2);
            builder.ConfigureSilo((_, silo) =>
            {
                silo.AddClusterConv(new ClusterConvSiloOptions { CheckpointDirectory = directory });
                silo.Services.AddSingleton<IWorkerFaults>(Faults);
            });
            Cluster = builder.Build();
            await Cluster.DeployAsync();
        }

        public async Task DisposeAsync()
        {
            await Cluster.DisposeAsync();
            TestClusters.Delete(directory);
            listener?.Dispose();
        }

        public async Task<(JobStatus Status, JobEvent[] Events)> RunAsync(JobSpec spec)
        {
            var job = Cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var status = await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(120));

            await spanEnds.WaitAsync(spec.JobId);
            return (status, (await job.GetEventsAsync(string.Empty, -1)).Events);
        }

        /// <summary>Span events named <paramref name="name"/> on spans of job <paramref name="jobId"/>.</summary>
        public ActivityEvent[] Events(string jobId, string name) =>
            spans.Where(s => s.GetTagItem(ClusterTelemetry.Attributes.Job) as string == jobId).SelectMany(s => s.Events).Where(e => e.Name == name).ToArray();
    }
}
