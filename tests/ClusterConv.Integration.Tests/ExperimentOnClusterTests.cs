using System.Text.Json.Nodes;

namespace ClusterConv.Integration.Tests;

public sealed class ExperimentOnClusterTests
{
    [Fact]
    public async Task The_activation_experiment_trains_each_activation_on_a_running_cluster_and_reuses_finished_runs()
    {
        using var cluster = await SingleSiloCluster.StartAsync("experiment-silo");
        var silo = cluster.Silo!;
        var outDir = Path.Combine(cluster.Directory, "activations");
        string[] experiment =
        [
            "experiment", "activations", "--cluster", cluster.Address, "--activations", "relu,tanh", "--data", "synthetic",
            "--max-steps", "6", "--train-limit", "512", "--test-limit", "200", "--threads", "2", "--out", outDir, "--json",
        ];
        var first = await RunToEndAsync(experiment, silo);
        Assert.Contains("relu: training into", first, StringComparison.Ordinal);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "experiment.json")))!;
        Assert.Equal(["relu", "tanh"], json["rows"]!.AsArray().Select(r => r!["activation"]!.GetValue<string>()));
        Assert.Equal(["relu", "tanh"], ComparisonTableActivations(first));
        foreach (var activation in new[] { "relu", "tanh" })
        {
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, activation, "summary.json")))!;
            Assert.True(summary["silos"]!.GetValue<int>() >= 1, $"{activation}: {summary}");
            Assert.Equal("bsp", summary["mode"]!.GetValue<string>());
            Assert.Equal($"activations-{activation}-1", summary["job_id"]!.GetValue<string>());
            Assert.Equal(6, summary["steps"]!.GetValue<long>());
            Assert.True(File.Exists(Path.Combine(outDir, activation, "model.ckpt")));
        }

        // Run again: both runs are finished, so nothing trains and the comparison is written again.
        var relu = File.GetLastWriteTimeUtc(Path.Combine(outDir, "relu", "summary.json"));
        var second = await RunToEndAsync(experiment, silo);
        Assert.DoesNotContain(": training into", second, StringComparison.Ordinal);
        Assert.Equal(relu, File.GetLastWriteTimeUtc(Path.Combine(outDir, "relu", "summary.json")));
    }

    /// <summary>The first column of the printed comparison table (the one headed "activation │ test accuracy"), row by row.</summary>
    private static string[] ComparisonTableActivations(string output) =>
        output.Split('\n')
            .SkipWhile(l => !l.Contains("activation", StringComparison.Ordinal) || !l.Contains("test accuracy", StringComparison.Ordinal))
            .Skip(1)
            .TakeWhile(l => !l.StartsWith('└'))
            .Where(l => l.StartsWith("│ ", StringComparison.Ordinal))
            .Select(l => l.Split('│', StringSplitOptions.TrimEntries)[1])
            .ToArray();

    private static async Task<string> RunToEndAsync(string[] arguments, ChildProcess silo)
    {
        using var run = ChildProcess.StartClusterConv(arguments, new Dictionary<string, string> { ["NO_COLOR"] = "1" });
        Assert.True(await run.WaitForExitAsync(TimeSpan.FromSeconds(90)), $"experiment did not finish:\n{run.Output}\nsilo:\n{silo.Output}");
        Assert.True(run.ExitCode == 0, $"experiment exited with {run.ExitCode}:\n{run.Output}\nsilo:\n{silo.Output}");
        return run.Output;
    }
}
