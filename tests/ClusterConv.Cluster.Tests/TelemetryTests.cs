using System.Diagnostics;
using ClusterConv.Cluster.Telemetry;
using ClusterConv.Engine;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;
using OpenTelemetry.Metrics;
using Xunit.Abstractions;

namespace ClusterConv.Cluster.Tests;

public sealed class TelemetryTests(TelemetryFixture fixture, ITestOutputHelper output) : IClassFixture<TelemetryFixture>
{
    private static readonly string[] Layers = ["conv2d", "conv2d_1", "dense", "dense_1"];

    [Fact]
    public async Task Per_filter_gauges_equal_the_job_event_statistics_and_the_worker_steps_of_the_last_statistics_step()
    {
        var spec = TestClusters.Spec("telemetry-values", workers: 2, steps: 6) with { StatsEvery = 5, LogEvery = 5, CheckpointEvery = 0 };
        var (status, events) = await fixture.RunAsync(spec);
        Assert.Equal(JobPhase.Completed, status.Phase);
        var last = events.Last(e => e.Filters is not null);
        Assert.Equal(5, last.Step);

        foreach (var layer in last.Filters!)
        {
            var gradient = Gauges("clusterconv.filter.gradient_norm", spec.JobId, layer.Layer);
            var weight = Gauges("clusterconv.filter.weight_norm", spec.JobId, layer.Layer);
            var ratio = Gauges("clusterconv.filter.update_to_weight", spec.JobId, layer.Layer);
            var sparsity = Gauges("clusterconv.filter.sparsity", spec.JobId, layer.Layer);
            Assert.Equal(layer.GradientNorm.Select(v => (double)v), gradient);
            Assert.Equal(layer.WeightNorm.Select(v => (double)v), weight);
            Assert.Equal(layer.UpdateRatio.Select(v => (double)v), ratio);
            Assert.Equal(layer.Sparsity.Select(v => (double)v), sparsity);
            var dead = Assert.Single(fixture.Points("clusterconv.layer.dead_filters", spec.JobId), p => p.Tags["layer"] == layer.Layer);
            Assert.Equal(layer.DeadFilters.Length, dead.Point.GetGaugeLastValueLong());
        }

        Assert.Equal(2, last.Workers!.Length);
        foreach (var worker in last.Workers)
        {
            Assert.Equal(Layers, worker.Filters!.Select(f => f.Layer));
            foreach (var layer in worker.Filters!)
            {
                bool Mine(Dictionary<string, string> tags) => tags["worker"] == worker.Worker.ToString(System.Globalization.CultureInfo.InvariantCulture) && tags["layer"] == layer.Layer;
                Assert.All(fixture.Points("clusterconv.worker.filter.gradient_norm", spec.JobId).Where(p => Mine(p.Tags)), p => Assert.Equal(worker.Silo, p.Tags["silo"]));
                Assert.Equal(layer.GradientNorm.Select(v => (double)v), ByFilter(fixture.Points("clusterconv.worker.filter.gradient_norm", spec.JobId).Where(p => Mine(p.Tags))));
                Assert.Equal(layer.WeightNorm.Select(v => (double)v), ByFilter(fixture.Points("clusterconv.worker.filter.weight_norm", spec.JobId).Where(p => Mine(p.Tags))));
                Assert.Equal(layer.Sparsity.Select(v => (double)v), ByFilter(fixture.Points("clusterconv.worker.filter.sparsity", spec.JobId).Where(p => Mine(p.Tags))));
            }
        }

        // Samples are counted by the workers, per worker and silo; they add up to every step's global batch.
        var samples = fixture.Points("clusterconv.train.samples", spec.JobId);
        Assert.Equal(6 * spec.BatchSize, samples.Sum(p => p.Point.GetSumLong()));
        Assert.Equal(2, samples.Select(p => p.Tags["worker"]).Distinct().Count());
        Assert.Equal(6, fixture.Points("clusterconv.step.duration", spec.JobId).Sum(p => p.Point.GetHistogramCount()));
        Assert.Equal(last.Loss, Assert.Single(fixture.Points("clusterconv.train.loss", spec.JobId)).Point.GetGaugeLastValueDouble());
        Assert.Equal(events.Last(e => e.IsEpoch).TestAccuracy, Assert.Single(fixture.Points("clusterconv.test.accuracy", spec.JobId)).Point.GetGaugeLastValueDouble());
        Assert.Contains(fixture.Points("clusterconv.network.received", spec.JobId), p => p.Tags["role"] == "ps" && p.Point.GetSumLong() > 0);
        Assert.Contains(fixture.Points("clusterconv.network.sent", spec.JobId), p => p.Tags["role"] == "worker" && p.Point.GetSumLong() > 0);
        Assert.Equal(2, fixture.Points("clusterconv.silo.workers", spec.JobId).Sum(p => p.Point.GetGaugeLastValueLong()));
    }

    [Fact]
    public async Task A_worker_alone_reports_the_aggregated_gradient_norms()
    {
        // One worker's mean local gradient is the aggregated one: the same normalization, up to summation order.
        var spec = TestClusters.Spec("telemetry-alone", workers: 1, steps: 1) with { StatsEvery = 1, CheckpointEvery = 0 };
        var (status, events) = await fixture.RunAsync(spec);
        Assert.Equal(JobPhase.Completed, status.Phase);
        var step = events.Single(e => !e.IsEpoch && e.Step == 0);
        var worker = Assert.Single(step.Workers!);
        for (var l = 0; l < Layers.Length; l++)
        {
            var aggregated = step.Filters![l].GradientNorm;
            var alone = worker.Filters![l].GradientNorm;
            Assert.Equal(aggregated.Length, alone.Length);
            for (var k = 0; k < aggregated.Length; k++)
            {
                Assert.True(Math.Abs(aggregated[k] - alone[k]) <= 1e-4 * Math.Max(aggregated[k], 1e-6f), $"{Layers[l]} filter {k}: aggregated {aggregated[k]}, worker {alone[k]}");
            }
        }
    }

    [Fact]
    public async Task Relu_conv_sparsity_at_initialization_is_near_one_half()
    {
        var spec = TestClusters.Spec("telemetry-init", workers: 2, steps: 1) with { StatsEvery = 1, CheckpointEvery = 0 };
        var (status, _) = await fixture.RunAsync(spec);
        Assert.Equal(JobPhase.Completed, status.Phase);
        var sparsity = Gauges("clusterconv.filter.sparsity", spec.JobId, "conv2d");
        Assert.Equal(32, sparsity.Length);
        Assert.InRange(sparsity.Average(), 0.35, 0.65);

        var step = Assert.Single(fixture.Spans(spec.JobId), s => s.OperationName == ClusterTelemetry.Spans.Step);
        var onSpan = Assert.IsType<double[]>(step.GetTagItem(ClusterTelemetry.Attributes.Sparsity("conv2d")));
        Assert.Equal(sparsity, onSpan);
    }

    [Fact]
    public async Task A_filter_that_cannot_fire_is_counted_dead_and_reported_by_a_span_event()
    {
        // A conv2d filter whose weights are all negative (bias 0) never outputs a positive value on inputs in [0, 1].
        var (seed, forced) = SeedWithSilentFilter();
        var spec = TestClusters.Spec("telemetry-dead", workers: 2, steps: 2) with { Seed = seed, StatsEvery = 1, LogEvery = 1, DeadWindow = 1, CheckpointEvery = 0 };
        var (status, events) = await fixture.RunAsync(spec);
        Assert.Equal(JobPhase.Completed, status.Phase);

        var conv = events.Last(e => e.Filters is not null).Filters![0];
        Assert.Contains(forced, conv.DeadFilters);
        var gauge = Assert.Single(fixture.Points("clusterconv.layer.dead_filters", spec.JobId), p => p.Tags["layer"] == "conv2d");
        Assert.Equal(conv.DeadFilters.Length, gauge.Point.GetGaugeLastValueLong());
        Assert.True(gauge.Point.GetGaugeLastValueLong() >= 1);

        var spans = fixture.Spans(spec.JobId);
        var deaths = spans.Where(s => s.OperationName == ClusterTelemetry.Spans.Step)
            .SelectMany(s => s.Events)
            .Where(e => e.Name == ClusterTelemetry.Events.FilterDead)
            .Select(e => (Layer: e.Tags.First(t => t.Key == ClusterTelemetry.Attributes.Layer).Value as string, Filter: (int)e.Tags.First(t => t.Key == ClusterTelemetry.Attributes.Filter).Value!))
            .ToArray();
        Assert.Contains(("conv2d", forced), deaths);
        Assert.Single(deaths, d => d == ("conv2d", forced));

        // Each worker's span lists it as silent on its own samples.
        var computes = spans.Where(s => s.OperationName == ClusterTelemetry.Spans.WorkerCompute).ToArray();
        Assert.Equal(4, computes.Length);
        Assert.All(computes, c => Assert.Contains(forced, Assert.IsType<int[]>(c.GetTagItem(ClusterTelemetry.Attributes.DeadFilters("conv2d")))));
    }

    [Fact]
    public async Task One_step_reads_as_one_trace_across_worker_and_parameter_server_spans()
    {
        var spec = TestClusters.Spec("telemetry-trace", workers: 2, steps: 2) with { StatsEvery = 1, CheckpointEvery = 0 };
        var spans = await fixture.RunToSpansAsync(spec);
        foreach (var stepIndex in new long[] { 0, 1 })
        {
            var inStep = spans.Where(s => s.GetTagItem(ClusterTelemetry.Attributes.Step) is long n && n == stepIndex).ToArray();
            var stepSpans = inStep.Where(s => s.OperationName == ClusterTelemetry.Spans.Step).ToArray();
            // Seen once (session 8, not reproduced): no step span for one step. Say what there was, to explain it next time.
            Assert.True(stepSpans.Length == 1, $"step {stepIndex}: {stepSpans.Length} step spans; all spans of the job: {Describe(spans)}");
            var step = stepSpans[0];
            var computes = inStep.Where(s => s.OperationName == ClusterTelemetry.Spans.WorkerCompute).ToArray();
            var pushes = inStep.Where(s => s.OperationName == ClusterTelemetry.Spans.GradientPush).ToArray();
            var aggregates = inStep.Where(s => s.OperationName == ClusterTelemetry.Spans.PsAggregate).ToArray();
            var applies = inStep.Where(s => s.OperationName == ClusterTelemetry.Spans.PsApply).ToArray();
            Assert.Equal(2, computes.Length);
            Assert.Equal(2, pushes.Length);
            Assert.Equal(spec.PsShards, aggregates.Length);
            Assert.Equal(spec.PsShards, applies.Length);
            Assert.All(computes.Concat(pushes).Concat(aggregates).Concat(applies), s => Assert.Equal(step.TraceId, s.TraceId));
            Assert.Equal(2, computes.Select(c => c.GetTagItem(ClusterTelemetry.Attributes.Silo)).Distinct().Count());
        }

        var job = Assert.Single(spans, s => s.OperationName == ClusterTelemetry.Spans.Job);
        Assert.NotEqual(job.TraceId, spans.First(s => s.OperationName == ClusterTelemetry.Spans.Step).TraceId);
        Assert.Contains(spans, s => s.OperationName == ClusterTelemetry.Spans.Evaluate && s.TraceId == job.TraceId);
        Assert.Contains(spans, s => s.OperationName == ClusterTelemetry.Spans.Epoch && s.TraceId == job.TraceId);
    }

    [Fact]
    public async Task Workers_start_the_next_step_before_the_job_is_done_with_the_last_and_each_step_stays_one_trace()
    {
        // 8 steps: the job checkpoints or snapshots before no step but 4 (half-way), so steps 1-3 and 5-7 are run ahead.
        var spec = TestClusters.Spec("telemetry-run-ahead", workers: 2, steps: 8) with { StatsEvery = 0, LogEvery = 1, CheckpointEvery = 0 };
        var spans = await fixture.RunToSpansAsync(spec);
        var steps = spans.Where(s => s.OperationName == ClusterTelemetry.Spans.Step).ToDictionary(s => (long)s.GetTagItem(ClusterTelemetry.Attributes.Step)!);
        Assert.Equal(8, steps.Count);
        var computes = spans.Where(s => s.OperationName == ClusterTelemetry.Spans.WorkerCompute).ToLookup(s => (long)s.GetTagItem(ClusterTelemetry.Attributes.Step)!);
        var pushes = spans.Where(s => s.OperationName == ClusterTelemetry.Spans.GradientPush).ToLookup(s => (long)s.GetTagItem(ClusterTelemetry.Attributes.Step)!);
        foreach (var step in new long[] { 1, 2, 3, 5, 6, 7 })
        {
            var previous = steps[step - 1];
            var ahead = computes[step].ToArray();
            Assert.Equal(2, ahead.Length);
            Assert.All(ahead.Concat(pushes[step]), s => Assert.Equal(steps[step].TraceId, s.TraceId));
            Assert.All(ahead, c => Assert.True(c.StartTimeUtc < previous.StartTimeUtc + previous.Duration, $"step {step} started on a worker after the job finished step {step - 1}"));
        }

        // Before the half-way snapshot the workers wait for the job: the shards must hold exactly that version.
        Assert.All(computes[4], c => Assert.True(c.StartTimeUtc >= steps[3].StartTimeUtc + steps[3].Duration));
    }

    [Fact]
    public async Task Parameter_server_aggregate_spans_carry_the_gradient_norms_of_the_filters_they_hold()
    {
        var spec = TestClusters.Spec("telemetry-ps-norms", workers: 2, steps: 1) with { StatsEvery = 1, CheckpointEvery = 0, PsShards = 3 };
        var spans = await fixture.RunToSpansAsync(spec);
        var step = Assert.Single(spans, s => s.OperationName == ClusterTelemetry.Spans.Step);
        var aggregates = spans.Where(s => s.OperationName == ClusterTelemetry.Spans.PsAggregate).ToArray();
        Assert.Equal(3, aggregates.Length);
        foreach (var layer in Layers)
        {
            // Each shard holds a run of rows (a cut row partly): the squares of its parts add up to the step's norm.
            var expected = Assert.IsType<double[]>(step.GetTagItem(ClusterTelemetry.Attributes.GradientNorm(layer)));
            var squares = new double[expected.Length];
            foreach (var aggregate in aggregates)
            {
                if (aggregate.GetTagItem(ClusterTelemetry.Attributes.GradientNorm(layer)) is not double[] part)
                {
                    continue;
                }

                var first = Assert.IsType<int>(aggregate.GetTagItem(ClusterTelemetry.Attributes.FirstFilter(layer)));
                for (var i = 0; i < part.Length; i++)
                {
                    squares[first + i] += part[i] * part[i];
                }
            }

            for (var f = 0; f < expected.Length; f++)
            {
                Assert.Equal(expected[f], Math.Sqrt(squares[f]), 1e-5 * Math.Max(1, expected[f]));
            }
        }
    }

    [Fact]
    public async Task Every_logged_step_carries_one_record_per_worker_from_its_silo_covering_the_global_batch()
    {
        var spec = TestClusters.Spec("telemetry-workers", workers: 2, steps: 6) with { StatsEvery = 5, LogEvery = 2, CheckpointEvery = 0 };
        var (status, events) = await fixture.RunAsync(spec);
        Assert.Equal(JobPhase.Completed, status.Phase);
        var steps = events.Where(e => !e.IsEpoch).ToArray();
        Assert.Equal([0L, 2, 4, 5], steps.Select(e => e.Step));
        foreach (var step in steps)
        {
            var workers = step.Workers!;
            Assert.Equal([0, 1], workers.Select(w => w.Worker).Order());
            Assert.All(workers, w => Assert.False(string.IsNullOrEmpty(w.Silo)));
            Assert.Equal(2, workers.Select(w => w.Silo).Distinct().Count());
            Assert.Equal(spec.BatchSize, workers.Sum(w => w.Samples));
            Assert.All(workers, w => Assert.InRange(w.StartSeconds, 0, step.WallSeconds));
            Assert.All(workers, w => Assert.True(w.DurationSeconds > 0 && double.IsFinite(w.Loss)));
            Assert.All(workers, w => Assert.Equal(step.Filters is not null, w.Filters is not null));
        }
    }

    [Fact]
    public async Task Per_filter_series_past_the_cap_are_counted_and_not_recorded()
    {
        // keras-cnn measures 32 + 64 + 128 + 10 = 234 filters: 234 aggregated series, then 234 per worker.
        var spec = TestClusters.Spec("telemetry-cap", workers: 2, steps: 1) with { StatsEvery = 1, MaxFilterSeries = 250, CheckpointEvery = 0 };
        var (status, events) = await fixture.RunAsync(spec);
        Assert.Equal(JobPhase.Completed, status.Phase);
        Assert.Equal(234, fixture.Points("clusterconv.filter.gradient_norm", spec.JobId).Count);
        var perWorker = fixture.Points("clusterconv.worker.filter.gradient_norm", spec.JobId);
        Assert.Equal(16, perWorker.Count);
        Assert.All(perWorker, p => Assert.Equal(("0", "conv2d"), (p.Tags["worker"], p.Tags["layer"])));
        Assert.Equal((234 * 3) - 250, Assert.Single(fixture.Points("clusterconv.filter.series_dropped", spec.JobId)).Point.GetSumLong());

        // The job's events keep every filter.
        Assert.All(events.Single(e => e.Filters is not null).Workers!, w => Assert.Equal(128, w.Filters![2].GradientNorm.Length));
    }

    [Fact]
    public async Task A_non_finite_gradient_is_refused_naming_the_worker()
    {
        var spec = TestClusters.Spec("telemetry-nan", workers: 1) with { PsShards = 1, ScheduleSteps = 10 };
        var server = fixture.Cluster.Client.GetGrain<IParameterServerGrain>(0, spec.JobId);
        await server.InitializeAsync(spec, fresh: true);
        var length = (await server.GetWeightsAsync(spec, 0, -1)).SliceLength;
        var gradient = new float[length];
        gradient[length / 2] = float.NaN;
        var chunk = new GradientChunk(0, 0, spec.MicroBatches, 0, length, GradientCompression.None, WireFormat.ToBytes(gradient), 32, Worker: 3);

        var refused = await server.PushAsync(spec, chunk);
        Assert.True(refused.Refused);
        Assert.False(refused.Taken);
        Assert.Equal(0, (await server.GetWeightsAsync(spec, 0, -1)).Version);
        var refusal = Assert.Single(fixture.Spans(spec.JobId).SelectMany(s => s.Events), e => e.Name == ClusterTelemetry.Events.NonFiniteGradient);
        Assert.Equal(3, refusal.Tags.First(t => t.Key == ClusterTelemetry.Attributes.Worker).Value);

        // A finite chunk for the same step is still taken and applies it.
        var finite = chunk with { Bytes = WireFormat.ToBytes(new float[length]) };
        Assert.True((await server.PushAsync(spec, finite)).Applied!.Applied);
    }

    [Fact]
    public async Task A_killed_silo_shows_as_a_restart_a_restored_checkpoint_and_a_rebalance()
    {
        // The job's orders past step 10 wait until the survivor's membership has declared the killed silo dead: the job
        // sees the silo set shrink before it ends, however fast it runs and however slowly the death is detected.
        var gate = new StepGate("telemetry-kill", holdAfter: 10);
        var (cluster, directory) = await TestClusters.StartAsync(2, fastFailureDetection: true, gate: gate);
        try
        {
            // No periodic checkpoints: the shard on the killed silo comes back at version 0, so the job must restore.
            var spec = TestClusters.Spec("telemetry-kill", workers: 2, steps: 40) with { CheckpointEvery = 0, StatsEvery = 0 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var (status, killed) = await TestClusters.WaitWithFaultAsync(job, TimeSpan.FromSeconds(120), atStep: 5, async () =>
            {
                // The silo without the job grain (it holds the other parameter-server shard): the job grain lives on
                // and must see the silo set shrink. A job grain killed with its silo never ends its span, and its next
                // activation starts with no silo set to compare with.
                var jobSilo = (await TestClusters.SilosOfAsync<JobGrain>(cluster, spec.JobId)).Single();
                await cluster.KillSiloAsync(cluster.Silos.First(s => s.SiloAddress != jobSilo));
                await TestClusters.WaitForActiveSilosAsync(cluster, 1, TimeSpan.FromSeconds(60));
                gate.Open();
            });

            await fixture.WaitForJobSpanAsync(spec.JobId);
            output.WriteLine($"{status.Phase} at {status.Step}: restarts {status.Restarts}, recomputed {status.StepsRecomputed}, error {status.Error}");
            Assert.True(killed, "the job ended before a silo was killed");
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.True(fixture.Points("clusterconv.job.restarts", spec.JobId).Sum(p => p.Point.GetSumLong()) >= 1);
            var spans = fixture.Spans(spec.JobId);
            var events = spans.SelectMany(s => s.Events).ToArray();
            Assert.Contains(events, e => e.Name == ClusterTelemetry.Events.CheckpointRestored);
            var jobSpans = spans.Where(s => s.OperationName == ClusterTelemetry.Spans.Job).ToArray();
            output.WriteLine($"job spans {jobSpans.Length}; events: {string.Join(", ", events.Select(e => e.Name))}");
            var jobSpan = Assert.Single(jobSpans);
            Assert.Contains(jobSpan.Events, e => e.Name == ClusterTelemetry.Events.Rebalance && (int)e.Tags.First(t => t.Key == ClusterTelemetry.Attributes.Silos).Value! == 1);
        }
        finally
        {
            gate.Open();
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    private static string Describe(IEnumerable<Activity> spans) => string.Join("; ", spans.Select(s =>
        $"{s.OperationName} [{string.Join(", ", s.TagObjects.Where(t => t.Value is not Array).Select(t => $"{t.Key}={t.Value}"))}] trace {s.TraceId} {s.StartTimeUtc:HH:mm:ss.fff}+{s.Duration.TotalMilliseconds:F1}ms"));

    private double[] Gauges(string name, string jobId, string layer) => ByFilter(fixture.Points(name, jobId).Where(p => p.Tags["layer"] == layer));

    private static double[] ByFilter(IEnumerable<(Dictionary<string, string> Tags, MetricPoint Point)> points) =>
        points.OrderBy(p => int.Parse(p.Tags["filter"], System.Globalization.CultureInfo.InvariantCulture)).Select(p => p.Point.GetGaugeLastValueDouble()).ToArray();

    /// <summary>The first seed whose keras-cnn initialization gives a conv2d filter with every weight negative, and that filter.</summary>
    private static (ulong Seed, int Filter) SeedWithSilentFilter()
    {
        for (ulong seed = 1; seed < 2000; seed++)
        {
            var model = new Model(BuiltInModels.KerasCnn);
            model.Initialize(seed);
            var kernel = ((Conv2D)model.Layers[0]).Parameters[0];
            var size = kernel.Length / kernel.Rows;
            for (var k = 0; k < kernel.Rows; k++)
            {
                if (kernel.Value.AsSpan(k * size, size).ToArray().All(w => w < 0))
                {
                    return (seed, k);
                }
            }
        }

        throw new InvalidOperationException("no seed below 2000 gives a conv2d filter with all weights negative");
    }
}
