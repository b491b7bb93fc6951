using ClusterConv.Cli.Output;
using ClusterConv.Cli.Training;
using ClusterConv.Cluster;
using ClusterConv.Reports;

namespace ClusterConv.Cli.Tests;

/// <summary>The client's side of per-worker telemetry: job events in, metrics.jsonl lines out, as the report reads them.</summary>
public sealed class WorkerStepLinesTests : IDisposable
{
    private readonly DirectoryInfo directory = CliRunner.TempDirectory();

    public void Dispose() => directory.Delete(recursive: true);

    private static LayerStatistics Aggregated(string layer) =>
        new(layer, "Conv2D", [0.5f, 0.25f, 0f], [1f, 1f, 1f], [0.01f, 0.01f, 0f], [0.4f, 0.6f, 1f], "sparsity", "relu", [2]);

    private static WorkerStep Worker(int index, string silo, double start, int samples, double loss, bool withFilters) =>
        new(index, silo, start, 0.25, samples, loss, withFilters
            ? [new WorkerLayerStatistics("conv2d", [0.6f + index, 0.3f, 0f], [1f, 1f, 1f], [0.3f + (0.2f * index), 0.6f, 1f])]
            : null);

    private RunMetrics WriteAndRead(params JobEvent[] events)
    {
        var path = Path.Combine(directory.FullName, "metrics.jsonl");
        using (var metrics = new MetricsLog(path))
        {
            foreach (var e in events)
            {
                ClusterTrainer.WriteStepEvent(metrics, e);
            }
        }

        var read = RunMetrics.ReadFile(path);
        Assert.Empty(read.Problems);
        return read;
    }

    [Fact]
    public void Each_worker_of_a_logged_step_gets_a_worker_step_line_that_the_report_reads_back()
    {
        var read = WriteAndRead(new JobEvent
        {
            Epoch = 1,
            Step = 20,
            WallSeconds = 3.5,
            Loss = 0.7,
            Filters = [Aggregated("conv2d")],
            Workers = [Worker(0, "127.0.0.1:11111@1", 3.0, 40, 0.6, withFilters: true), Worker(1, "127.0.0.1:11112@2", 3.1, 24, 0.9, withFilters: true)],
        });

        Assert.Equal([20L], read.Steps.Select(s => s.Step));
        Assert.Equal(2, read.WorkerSteps.Count);
        var (w0, w1) = (read.WorkerSteps[0], read.WorkerSteps[1]);
        Assert.Equal(("w0", "127.0.0.1:11111@1", 20L), (w0.Worker, w0.Silo, w0.Step));
        Assert.Equal(("w1", "127.0.0.1:11112@2", 20L), (w1.Worker, w1.Silo, w1.Step));

        // The timeline draws a bar from wall_seconds - duration_seconds to wall_seconds: that is the worker's start.
        Assert.Equal(3.25, w0.WallSeconds!.Value, 6);
        Assert.Equal(0.25, w0.DurationSeconds!.Value, 6);
        Assert.Equal(3.0, w0.WallSeconds!.Value - w0.DurationSeconds!.Value, 6);
        Assert.Equal((40, 0.6), (w0.Samples, w0.Loss));
        Assert.Equal((24, 0.9), (w1.Samples, w1.Loss));
        Assert.Equal([1.6, 0.3, 0.0], w1.GradNorm["conv2d"].Select(v => Math.Round(v, 5)));
        Assert.Equal([0.5, 0.6, 1.0], w1.Sparsity["conv2d"].Select(v => Math.Round(v, 5)));
    }

    [Fact]
    public void Workers_of_a_step_without_statistics_get_timing_lines_without_per_filter_numbers()
    {
        var read = WriteAndRead(new JobEvent
        {
            Step = 3,
            Workers = [Worker(0, "silo-a", 1.0, 32, 1.1, withFilters: false), Worker(1, "silo-a", 1.0, 32, 1.2, withFilters: false)],
        });

        Assert.Null(read.Steps.Single().Filters);
        Assert.All(read.WorkerSteps, w =>
        {
            Assert.Equal(3, w.Step);
            Assert.Empty(w.GradNorm);
            Assert.Empty(w.Sparsity);
            Assert.NotNull(w.DurationSeconds);
        });
    }

    [Fact]
    public void A_step_event_without_worker_records_writes_the_step_line_alone()
    {
        var read = WriteAndRead(new JobEvent { Step = 0 }, new JobEvent { Step = 10, Workers = [] });

        Assert.Equal([0L, 10L], read.Steps.Select(s => s.Step));
        Assert.Empty(read.WorkerSteps);
    }

    [Fact]
    public void A_worker_loss_that_is_not_finite_is_written_as_null_and_the_line_stays_readable()
    {
        var read = WriteAndRead(new JobEvent { Step = 5, Workers = [Worker(0, "silo-a", 0.5, 16, double.NaN, withFilters: false)] });

        Assert.Null(read.WorkerSteps.Single().Loss);
        Assert.Equal(16, read.WorkerSteps.Single().Samples);
    }

    [Fact]
    public void Experiment_refuses_a_cluster_address_that_is_not_redis_as_train_does()
    {
        foreach (var verb in new[] { new[] { "train" }, new[] { "experiment", "activations" } })
        {
            var result = CliRunner.Run([.. verb, "--data", "synthetic", "--cluster", "localhost:6379", "--out", directory.FullName]);
            Assert.Equal(ExitCodes.Usage, result.ExitCode);
            Assert.Contains("--cluster must be redis://HOST:PORT, got 'localhost:6379'", result.Stderr + result.Stdout, StringComparison.Ordinal);
        }
    }
}
