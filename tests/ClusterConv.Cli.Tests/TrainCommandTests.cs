using System.Text.Json;

namespace ClusterConv.Cli.Tests;

public class TrainCommandTests
{
    private static readonly string FashionMnist = "/usr/share/datasets/fashion-mnist";

    [Fact]
    public void Keras_cnn_on_a_fashion_mnist_subset_learns_and_writes_the_run_folder()
    {
        Assert.True(Directory.Exists(FashionMnist), $"{FashionMnist} is missing: install the Debian package dataset-fashion-mnist (./test.sh does)");
        var run = CliRunner.TempDirectory();
        try
        {
            var result = CliRunner.Run(
                "train", "--data", FashionMnist, "--epochs", "1", "--train-limit", "6000", "--test-limit", "2000",
                "--threads", "2", "--stats-every", "20", "--out", run.FullName);
            Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);

            using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(run.FullName, "summary.json")));
            var s = summary.RootElement;
            foreach (var field in new[] { "model", "dataset", "epochs", "batch_size", "seed", "test_accuracy", "test_loss", "wall_seconds", "samples_per_second", "weights_sha256" })
            {
                Assert.True(s.TryGetProperty(field, out _), $"summary.json lacks {field}");
            }

            // 94 steps of Adam on 6,000 images: measured 0.761 and 0.767 (seeds 7 and 1) here; chance is 0.10.
            Assert.InRange(s.GetProperty("test_accuracy").GetDouble(), 0.70, 1.0);
            Assert.Equal(64, s.GetProperty("weights_sha256").GetString()!.Length);

            var lines = File.ReadAllLines(Path.Combine(run.FullName, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            var epoch = Assert.Single(lines, l => l.GetProperty("type").GetString() == "epoch");
            Assert.Equal(94, epoch.GetProperty("step").GetInt64());
            var withFilters = lines.Where(l => l.TryGetProperty("filters", out _)).ToList();
            Assert.Equal(5, withFilters.Count); // steps 0, 20, 40, 60, 80
            var conv = withFilters[^1].GetProperty("filters").GetProperty("conv2d");
            Assert.Equal(32, conv.GetProperty("grad_norm").GetArrayLength());
            Assert.Equal(32, conv.GetProperty("sparsity").GetArrayLength());
            Assert.All(conv.GetProperty("sparsity").EnumerateArray(), v => Assert.InRange(v.GetDouble(), 0.0, 1.0));
            Assert.True(File.Exists(Path.Combine(run.FullName, "model.ckpt")));
        }
        finally
        {
            run.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("0", "bsp")]
    [InlineData("2", "bsp")]
    [InlineData("2", "async")]
    public void Summary_gives_the_median_step_time_for_stepped_training(string workers, string mode)
    {
        var run = CliRunner.TempDirectory();
        try
        {
            var result = CliRunner.Run(
                "train", "--data", "synthetic", "--epochs", "1", "--max-steps", "30", "--test-limit", "200", "--batch-size", "32",
                "--threads", "2", "--workers", workers, "--mode", mode, "--checkpoint-every", "0", "--out", run.FullName);
            Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
            var s = JsonDocument.Parse(File.ReadAllText(Path.Combine(run.FullName, "summary.json"))).RootElement;
            if (mode == "async")
            {
                // Workers run their own rounds: there is no global step to time.
                Assert.Equal(JsonValueKind.Null, s.GetProperty("median_step_seconds").ValueKind);
                Assert.Equal(JsonValueKind.Null, s.GetProperty("median_step_samples_per_second").ValueKind);
                return;
            }

            var median = s.GetProperty("median_step_seconds").GetDouble();
            var mean = s.GetProperty("train_seconds").GetDouble() / s.GetProperty("steps").GetInt64();
            Assert.True(median > 0);

            // At most half of the steps can take twice the mean or more, so the median is below twice the mean.
            Assert.True(median <= 2 * mean * 1.01, $"median step {median} s against a mean of {mean} s");
            Assert.Equal(32 / median, s.GetProperty("median_step_samples_per_second").GetDouble(), 32 / median * 1e-3);
        }
        finally
        {
            run.Delete(recursive: true);
        }
    }

    [Fact]
    public void The_same_seed_gives_the_same_weights_whatever_the_thread_count()
    {
        var one = CliRunner.TempDirectory();
        var two = CliRunner.TempDirectory();
        try
        {
            string[] common = ["train", "--data", "synthetic", "--epochs", "1", "--max-steps", "12", "--test-limit", "200", "--seed", "5"];
            var a = CliRunner.Run([.. common, "--threads", "1", "--out", one.FullName]);
            var b = CliRunner.Run([.. common, "--threads", "2", "--out", two.FullName]);
            Assert.Equal(0, a.ExitCode);
            Assert.Equal(0, b.ExitCode);
            Assert.Equal(Sha(one), Sha(two));
        }
        finally
        {
            one.Delete(recursive: true);
            two.Delete(recursive: true);
        }

        static string Sha(DirectoryInfo run) =>
            JsonDocument.Parse(File.ReadAllText(Path.Combine(run.FullName, "summary.json"))).RootElement.GetProperty("weights_sha256").GetString()!;
    }

    [Theory]
    [InlineData("--epochs", "0")]
    [InlineData("--batch-size", "-3")]
    [InlineData("--threads", "0")]
    public void Non_positive_sizes_are_refused_naming_the_option(string option, string value)
    {
        var result = CliRunner.Run("train", "--data", "synthetic", option, value);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(option, result.Stderr + result.Stdout);
    }

    [Fact]
    public void A_data_folder_without_the_idx_files_is_refused_and_nothing_is_written()
    {
        var empty = CliRunner.TempDirectory();
        var run = Path.Combine(Path.GetTempPath(), $"clusterconv-never-{Guid.NewGuid():N}");
        try
        {
            var result = CliRunner.Run("train", "--data", empty.FullName, "--out", run);
            Assert.Equal(2, result.ExitCode);
            Assert.Contains(empty.FullName, result.Stderr);
            Assert.Contains("train-images-idx3-ubyte", result.Stderr);
            Assert.False(Directory.Exists(run));
        }
        finally
        {
            empty.Delete(recursive: true);
        }
    }
}
