using ClusterConv.Cli;
using ClusterConv.Cli.Commands;
using ClusterConv.Cli.Inference;

namespace ClusterConv.Reports.Tests;

public sealed class ReportCommandTests
{
    [Fact]
    public void A_missing_run_folder_is_bad_input_naming_the_folder()
    {
        var missing = Path.Combine(Path.GetTempPath(), "clusterconv-no-such-run-" + Guid.NewGuid().ToString("N"));
        var error = Assert.Throws<UserException>(() => ReportCommand.Write(missing, null));
        Assert.Equal(ExitCodes.BadInput, error.ExitCode);
        Assert.Contains(missing, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_folder_without_metrics_is_not_a_run_folder()
    {
        var directory = Directory.CreateTempSubdirectory("clusterconv-empty-run-");
        try
        {
            var error = Assert.Throws<UserException>(() => ReportCommand.Write(directory.FullName, null));
            Assert.Contains("metrics.jsonl", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void Step_checkpoints_are_looked_for_where_the_trainer_writes_them()
    {
        var directory = Directory.CreateTempSubdirectory("clusterconv-run-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(directory, "metrics.jsonl"), string.Empty);
            var run = RunFolder.Open(directory);
            Assert.All(new long[] { 0, 500 }, step => Assert.Equal(RunCheckpoints.StepPath(directory, step), run.StepCheckpoint(step)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
