using System.Text.Json;
using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Cli.Tests;

/// <summary>Embedded-cluster runs: per-filter step lines in ssp and async, and a BatchNormalization model on the cluster.</summary>
public sealed class ClusterModesTests
{
    private static List<JsonElement> Lines(DirectoryInfo run) =>
        File.ReadAllLines(Path.Combine(run.FullName, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    [Theory]
    [InlineData("async")]
    [InlineData("ssp:1")]
    public void Ssp_and_async_runs_write_step_lines_with_per_filter_statistics(string mode)
    {
        var run = CliRunner.TempDirectory();
        try
        {
            var result = CliRunner.Run(
                "train", "--data", "synthetic", "--train-limit", "640", "--test-limit", "128", "--epochs", "1", "--batch-size", "32",
                "--workers", "2", "--micro-batches", "2", "--threads", "2", "--mode", mode, "--stats-every", "5", "--log-every", "5",
                "--checkpoint-every", "0", "--out", run.FullName);
            Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);

            var lines = Lines(run);
            var withFilters = lines.Where(l => l.GetProperty("type").GetString() == "step" && l.TryGetProperty("filters", out _)).ToList();

            // 20 rounds: statistics rounds 0, 5, 10 and 15, each once both workers have done it.
            Assert.Equal([0L, 5L, 10L, 15L], withFilters.Select(l => l.GetProperty("step").GetInt64()));
            var conv = withFilters[^1].GetProperty("filters").GetProperty("conv2d");
            Assert.Equal(32, conv.GetProperty("grad_norm").GetArrayLength());
            Assert.All(conv.GetProperty("grad_norm").EnumerateArray(), v => Assert.True(double.IsFinite(v.GetDouble()) && v.GetDouble() >= 0));
            Assert.Contains(conv.GetProperty("grad_norm").EnumerateArray(), v => v.GetDouble() > 0);
            Assert.All(conv.GetProperty("sparsity").EnumerateArray(), v => Assert.InRange(v.GetDouble(), 0.0, 1.0));
            Assert.Contains(conv.GetProperty("update_ratio").EnumerateArray(), v => v.GetDouble() > 0);

            // Each worker's own numbers for those rounds.
            var workerLines = lines.Where(l => l.GetProperty("type").GetString() == "worker_step" && l.GetProperty("step").GetInt64() == 15).ToList();
            Assert.Equal(2, workerLines.Count);
            Assert.All(workerLines, w => Assert.Equal(32, w.GetProperty("grad_norm").GetProperty("conv2d").GetArrayLength()));

            // The run folder keeps the weights at the start and at the epoch's end (the report's filters); nothing
            // trains after the last epoch's end, so its file holds the final weights.
            var checkpoints = Path.Combine(run.FullName, "checkpoints");
            Assert.Equal(["step-0.ckpt", "step-20.ckpt"], Directory.GetFiles(checkpoints, "step-*.ckpt").Select(Path.GetFileName).Order(StringComparer.Ordinal));
            var end = ModelCheckpoint.LoadFile(Path.Combine(checkpoints, "step-20.ckpt"));
            Assert.Equal(20, end.Step);
            Assert.Equal(ModelCheckpoint.LoadFile(Path.Combine(run.FullName, "model.ckpt")).Parameters, end.Parameters);
            Assert.NotEqual(ModelCheckpoint.LoadFile(Path.Combine(checkpoints, "step-0.ckpt")).Parameters, end.Parameters);
        }
        finally
        {
            run.Delete(recursive: true);
        }
    }

    [Fact]
    public void A_BatchNormalization_model_trains_on_the_embedded_cluster()
    {
        var run = CliRunner.TempDirectory();
        try
        {
            var model = new ModelSpec("bn-small", new SampleShape(1, 28, 28),
            [
                new Conv2DSpec("conv2d", 8, 3, 3),
                new BatchNormSpec("batch_normalization", Momentum: 0.5f),
                new ActivationSpec("activation", ClusterConv.Engine.Layers.Activation.Relu),
                new Pool2DSpec("max_pooling2d", PoolKind.Max, 2, 2, 2, 2),
                new FlattenSpec("flatten"),
                new DenseSpec("dense", 10),
            ]);
            var modelFile = Path.Combine(run.FullName, "bn-small.json");
            File.WriteAllText(modelFile, KerasModelWriter.Write(model));
            var result = CliRunner.Run(
                "train", "--model", modelFile, "--data", "synthetic", "--train-limit", "640", "--test-limit", "256", "--epochs", "1", "--batch-size", "32",
                "--workers", "2", "--threads", "2", "--out", Path.Combine(run.FullName, "out"));
            Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
            Assert.DoesNotContain("engine-only", result.Stdout, StringComparison.Ordinal);

            using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(run.FullName, "out", "summary.json")));
            Assert.Equal(2, summary.RootElement.GetProperty("workers").GetInt32());
            Assert.Equal("bsp", summary.RootElement.GetProperty("mode").GetString());

            // The saved model carries the moving statistics the parameter servers kept (not their initial 0 and 1).
            var saved = ClusterConv.Engine.Checkpoints.ModelCheckpoint.LoadFile(Path.Combine(run.FullName, "out", "model.ckpt")).CreateModel();
            var norm = saved.Layers.OfType<ClusterConv.Engine.Layers.BatchNorm>().Single();
            Assert.Contains(norm.MovingMean.Value, v => v != 0f);
            Assert.Contains(norm.MovingVariance.Value, v => v != 1f);
            Assert.InRange(summary.RootElement.GetProperty("test_accuracy").GetDouble(), 0.3, 1.0);
        }
        finally
        {
            run.Delete(recursive: true);
        }
    }
}
