using ClusterConv.Cli.Commands;
using ClusterConv.Cli.Inference;
using ClusterConv.Cli.Training;
using ClusterConv.Engine.Checkpoints;

namespace ClusterConv.Reports.Tests;

/// <summary>A short `train` on the embedded cluster (synthetic data, two workers, two epochs) and its report.</summary>
public sealed class EmbeddedClusterRun : IDisposable
{
    public const int Workers = 2;
    public const int BatchSize = 64;
    public const int StepsPerEpoch = 8;
    public const int Epochs = 2;

    public EmbeddedClusterRun()
    {
        Root = Directory.CreateTempSubdirectory("clusterconv-cluster-report-").FullName;
        RunDirectory = Path.Combine(Root, "run");
        Settings = new TrainSettings
        {
            Data = "synthetic",
            Epochs = Epochs,
            BatchSize = BatchSize,
            TrainLimit = StepsPerEpoch * BatchSize,
            TestLimit = 200,
            Seed = 4,
            Threads = 2,
            Workers = Workers,
            StatsEvery = 2,
            LogEvery = 1,

            // The learning rate does not depend on the run's length, so a run stopped early is this run's beginning.
            Schedule = "constant",
            OutDir = RunDirectory,
        };
        Assert.Equal(0, TrainCommand.Execute(Settings, asJson: true, CancellationToken.None));
        Report = RunReport.Write(RunDirectory, null, TinyRun.TestImages);
        Html = File.ReadAllText(Report.Path);
    }

    public string Root { get; }

    public TrainSettings Settings { get; }

    public string RunDirectory { get; }

    public ReportResult Report { get; }

    public string Html { get; }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

public sealed class ClusterRunReportTests(EmbeddedClusterRun run) : IClassFixture<EmbeddedClusterRun>
{
    private const int TotalSteps = EmbeddedClusterRun.StepsPerEpoch * EmbeddedClusterRun.Epochs;

    [Fact]
    public void A_two_epoch_cluster_run_saves_the_filters_between_start_and_end_and_the_report_draws_them_midway()
    {
        var saved = RunCheckpoints.SavedSteps(run.RunDirectory);
        Assert.Contains(0L, saved);
        var inside = saved.Where(s => s > 0 && s < TotalSteps).ToArray();
        Assert.NotEmpty(inside);

        Assert.Contains("alt=\"conv2d filters at midway\"", run.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("midway: not recorded", run.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void A_cluster_run_stopped_by_max_steps_within_its_first_epoch_saves_the_filters_from_its_second_half()
    {
        const int MaxSteps = 12;
        var stopped = Path.Combine(run.Root, "max-steps");
        Assert.Equal(0, TrainCommand.Execute(run.Settings with { Epochs = 1, TrainLimit = 4 * MaxSteps * EmbeddedClusterRun.BatchSize, MaxSteps = MaxSteps, OutDir = stopped }, asJson: true, CancellationToken.None));

        // No epoch ends inside the run: the checkpoint comes from about half the steps.
        var inside = RunCheckpoints.SavedSteps(stopped).Where(s => s > 0 && s < MaxSteps).ToArray();
        Assert.Single(inside);
        Assert.InRange(inside[0], MaxSteps / 2, MaxSteps - 1);
        Assert.Equal(inside[0], RunFolder.Open(stopped).Snapshots().Midway?.Step);
    }

    [Fact]
    public void A_checkpoint_taken_while_the_job_runs_holds_the_weights_of_the_step_it_is_named_after()
    {
        // The same run stopped at that step (bsp with fixed micro-batches is deterministic) ends with those weights.
        var middle = RunCheckpoints.SavedSteps(run.RunDirectory).First(s => s > 0 && s < TotalSteps);
        var stopped = Path.Combine(run.Root, "stopped");
        Assert.Equal(0, TrainCommand.Execute(run.Settings with { MaxSteps = middle, OutDir = stopped }, asJson: true, CancellationToken.None));

        var saved = ModelCheckpoint.LoadFile(RunCheckpoints.StepPath(run.RunDirectory, middle));
        Assert.Equal(middle, saved.Step);
        Assert.Equal(ModelCheckpoint.LoadFile(RunCheckpoints.FinalPath(stopped)).Parameters, saved.Parameters);

        // The last epoch's end is the end: its checkpoint holds the final weights.
        Assert.Equal(ModelCheckpoint.LoadFile(RunCheckpoints.FinalPath(run.RunDirectory)).Parameters, ModelCheckpoint.LoadFile(RunCheckpoints.StepPath(run.RunDirectory, TotalSteps)).Parameters);
    }

    [Fact]
    public void A_cluster_run_logs_one_worker_step_line_per_worker_and_logged_step_whose_samples_make_the_batch()
    {
        var metrics = RunFolder.Open(run.RunDirectory).Metrics;
        Assert.Equal(TotalSteps, metrics.Steps.Count);
        foreach (var step in metrics.Steps)
        {
            var workers = metrics.WorkerSteps.Where(w => w.Step == step.Step).ToArray();
            Assert.Equal(["w0", "w1"], workers.Select(w => w.Worker).Order(StringComparer.Ordinal));
            Assert.Equal(EmbeddedClusterRun.BatchSize, workers.Sum(w => w.Samples));
            Assert.All(workers, w => Assert.True(w.DurationSeconds > 0 && w.WallSeconds >= w.DurationSeconds, $"worker {w.Worker} of step {w.Step}: wall {w.WallSeconds}, duration {w.DurationSeconds}"));
            if (step.Filters is not null)
            {
                Assert.All(workers, w => Assert.Equal(step.Filters["conv2d"].Filters, w.GradNorm["conv2d"].Length));
            }
        }

        Assert.Equal(TotalSteps * EmbeddedClusterRun.Workers, metrics.WorkerSteps.Count);
    }

    [Fact]
    public async Task The_report_of_a_cluster_run_draws_per_worker_gradients_and_sparsity_and_the_step_timeline()
    {
        Assert.Contains("2 workers on 1 silo(s)", run.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("Single process: no per-worker data.", run.Html, StringComparison.Ordinal);
        Assert.DoesNotContain("No timeline:", run.Html, StringComparison.Ordinal);

        // The section's figures are there and show in a browser.
        await using var browser = await HeadlessChromium.StartAsync(Path.Combine(run.Root, "chromium-profile"));
        await browser.OpenAsync(run.Report.Path);
        var figures = (await browser.EvaluateAsync("""
            (async () => {
              const images = [...document.querySelectorAll('#workers img')];
              await Promise.all(images.map(i => i.decode().catch(() => null)));
              return images.filter(i => i.complete && i.naturalWidth > 0).map(i => i.alt);
            })()
            """))!.AsArray().Select(a => a!.GetValue<string>()).ToArray();
        Assert.Empty(browser.Errors);
        Assert.Equal(
            ["conv2d per-worker gradient norms", "conv2d per-worker sparsity", "conv2d_1 per-worker gradient norms", "conv2d_1 per-worker sparsity", "worker step timeline"],
            figures);
    }
}
