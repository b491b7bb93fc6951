using System.Text.Json.Nodes;

namespace ClusterConv.Cli.Tests;

/// <summary>Non-finite gradients and divergence through the real executable with an in-process silo.</summary>
public sealed class DivergenceCliTests : IDisposable
{
    private readonly DirectoryInfo temp = CliRunner.TempDirectory();

    public void Dispose() => temp.Delete(recursive: true);

    private string Out => Path.Combine(temp.FullName, "run");

    [Fact]
    public void A_run_whose_gradients_blow_up_stops_with_exit_3_after_the_allowed_refusals()
    {
        // sgd at 1e30: step 0 is finite, after it every worker's gradient is NaN.
        var result = CliRunner.Run(
            "train", "--data", "synthetic", "--workers", "2", "--threads", "2", "--epochs", "1", "--max-steps", "12", "--batch-size", "32",
            "--optimizer", "sgd", "--lr", "1e30", "--stats-every", "0", "--max-nonfinite-refusals", "1", "--out", Out);

        Assert.Equal(ExitCodes.TrainingFailed, result.ExitCode);
        Assert.Contains("training diverged: 2 non-finite gradients refused, more than --max-nonfinite-refusals 1 (the last from worker 1 at step 1); lower --lr", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("warning: worker 0 pushed a non-finite gradient for step 1; the parameter servers refused it and the step is not applied", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        var alerts = File.ReadAllLines(Path.Combine(Out, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(n => (string?)n["type"] == "alert").ToArray();
        Assert.Equal(["w0", "w1"], alerts.Select(a => (string?)a["worker"]));
        Assert.All(alerts, a => Assert.Equal(("nonfinite_gradient", 1L), ((string?)a["kind"], (long?)a["step"])));
        Assert.False(File.Exists(Path.Combine(Out, "summary.json")));
    }

    [Fact]
    public void A_healthy_run_counts_no_refusals_or_divergence_in_summary_json()
    {
        var result = CliRunner.Run("train", "--data", "synthetic", "--workers", "2", "--threads", "2", "--epochs", "1", "--max-steps", "3", "--batch-size", "32", "--stats-every", "0", "--test-limit", "200", "--out", Out);

        Assert.Equal(0, result.ExitCode);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(Out, "summary.json")))!;
        Assert.Equal((0L, 0L, 0L, 0L), ((long)summary["nonfinite_refusals"]!, (long)summary["steps_skipped"]!, (long)summary["gradient_outliers"]!, (long)summary["weights_mismatches"]!));
        Assert.Empty(summary["divergent_workers"]!.AsArray());
    }

    [Theory]
    [InlineData("--max-nonfinite-refusals", "-1", "--max-nonfinite-refusals must be 0 or more, got -1")]
    [InlineData("--divergence-factor", "0.5", "--divergence-factor must be 0 (off) or a number above 1, got 0.5")]
    public void A_bad_divergence_option_is_refused_with_exit_1(string option, string value, string expected)
    {
        var result = CliRunner.Run("train", "--data", "synthetic", option, value, "--out", Out);
        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Equal(expected, result.Stderr.Trim());
        Assert.False(Directory.Exists(Out));
    }
}
