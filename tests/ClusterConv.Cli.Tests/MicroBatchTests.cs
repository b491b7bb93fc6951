using System.Text.Json;

namespace ClusterConv.Cli.Tests;

/// <summary>A batch size that --micro-batches does not divide is split unevenly, and bsp stays reproducible across worker counts.</summary>
public sealed class MicroBatchTests : IDisposable
{
    private readonly DirectoryInfo temp = CliRunner.TempDirectory();

    public void Dispose() => temp.Delete(recursive: true);

    [Fact]
    public void A_batch_of_30_in_4_micro_batches_gives_the_same_weights_on_1_to_4_workers()
    {
        var hashes = new List<string>();
        foreach (var workers in new[] { "1", "2", "3", "4" })
        {
            var run = Path.Combine(temp.FullName, $"w{workers}");
            var result = CliRunner.Run(
                "train", "--data", "synthetic", "--epochs", "1", "--max-steps", "3", "--batch-size", "30", "--micro-batches", "4", "--workers", workers,
                "--threads", "2", "--stats-every", "0", "--test-limit", "100", "--seed", "3", "--out", run);
            Assert.True(result.ExitCode == 0, result.Stderr);
            using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "summary.json")));
            Assert.Equal(3, summary.RootElement.GetProperty("steps").GetInt64());
            hashes.Add(summary.RootElement.GetProperty("weights_sha256").GetString()!);
        }

        Assert.Single(hashes.Distinct());
    }
}
