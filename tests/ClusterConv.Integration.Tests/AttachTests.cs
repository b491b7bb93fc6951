using System.Text.Json.Nodes;

namespace ClusterConv.Integration.Tests;

public sealed class AttachTests
{
    [Fact]
    public async Task Attaching_to_a_finished_job_writes_its_run_folder_with_the_epochs_and_their_filters()
    {
        using var cluster = await SingleSiloCluster.StartAsync("attach-silo");
        var trained = Path.Combine(cluster.Directory, "trained");
        await RunToEndAsync(cluster, ["train", "--cluster", cluster.Address, "--data", "synthetic", "--train-limit", "640", "--test-limit", "200", "--epochs", "2", "--workers", "2", "--job-id", "attach-me", "--out", trained, "--json"]);

        var attached = Path.Combine(cluster.Directory, "attached");
        var output = await RunToEndAsync(cluster, ["attach", "attach-me", "--cluster", cluster.Address, "--out", attached]);

        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(trained, "summary.json")))!;
        Assert.Contains(summary["weights_sha256"]!.GetValue<string>(), output, StringComparison.Ordinal);
        Assert.Equal(EpochLines(trained), EpochLines(attached));
        // Both epoch ends (steps 10 and 20 of 640 samples in batches of 64) were kept by the job grain.
        Assert.True(File.Exists(Path.Combine(attached, "checkpoints", "step-10.ckpt")), output);
        Assert.Equal(File.ReadAllBytes(Path.Combine(trained, "checkpoints", "step-20.ckpt")), File.ReadAllBytes(Path.Combine(attached, "checkpoints", "step-20.ckpt")));

        // The attached run folder is a whole one: the same summary (counts included), model.ckpt and model.json.
        var attachedSummary = JsonNode.Parse(File.ReadAllText(Path.Combine(attached, "summary.json")))!;
        foreach (var key in new[] { "weights_sha256", "steps", "test_accuracy", "epochs", "batch_size", "seed", "optimizer", "learning_rate", "workers", "mode", "ps_shards", "restarts", "steps_recomputed", "job_id" })
        {
            Assert.True(JsonNode.DeepEquals(summary[key], attachedSummary[key]), $"{key}: train wrote {summary[key]?.ToJsonString()}, attach wrote {attachedSummary[key]?.ToJsonString()}");
        }

        Assert.Equal(File.ReadAllText(Path.Combine(trained, "model.json")), File.ReadAllText(Path.Combine(attached, "model.json")));
        var checkpoint = Engine.Checkpoints.ModelCheckpoint.LoadFile(Path.Combine(attached, "model.ckpt"));
        Assert.Equal(Engine.Checkpoints.ModelCheckpoint.LoadFile(Path.Combine(trained, "model.ckpt")).Parameters, checkpoint.Parameters);
    }

    private static string[] EpochLines(string runDirectory) =>
        File.ReadLines(Path.Combine(runDirectory, "metrics.jsonl")).Where(l => l.Contains("\"type\":\"epoch\"", StringComparison.Ordinal)).ToArray();

    private static async Task<string> RunToEndAsync(SingleSiloCluster cluster, string[] arguments)
    {
        using var run = ChildProcess.StartClusterConv(arguments, new Dictionary<string, string> { ["NO_COLOR"] = "1" });
        Assert.True(await run.WaitForExitAsync(TimeSpan.FromSeconds(90)), $"{arguments[0]} did not finish:\n{run.Output}\nsilo:\n{cluster.Silo!.Output}");
        Assert.True(run.ExitCode == 0, $"{arguments[0]} exited with {run.ExitCode}:\n{run.Output}\nsilo:\n{cluster.Silo!.Output}");
        return run.Output;
    }
}
