using System.Text.Json.Nodes;

namespace ClusterConv.Integration.Tests;

public sealed class MultiProcessClusterTests
{
    [Theory]
    [InlineData("bsp")]
    [InlineData("ssp:2")]
    public async Task A_job_on_three_silo_processes_over_redis_completes_when_one_silo_is_killed(string mode)
    {
        var directory = Path.Combine(Path.GetTempPath(), $"clusterconv-mp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        var redisPort = ChildProcess.FreePort();
        using var redis = ChildProcess.Start("redis-server", ["--port", redisPort.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        var silos = new List<ChildProcess>();
        try
        {
            await ChildProcess.WaitForRedisAsync(redisPort, TimeSpan.FromSeconds(20));
            var fast = new Dictionary<string, string>
            {
                ["Orleans__Membership__ProbeTimeout"] = "00:00:01",
                ["Orleans__Membership__NumMissedProbesLimit"] = "2",
                ["Orleans__Membership__NumVotesForDeathDeclaration"] = "1",
                ["Orleans__Membership__TableRefreshTimeout"] = "00:00:01",
                ["CLUSTERCONV_LOG_LEVEL"] = "Information",
            };
            for (var i = 0; i < 3; i++)
            {
                silos.Add(ChildProcess.StartClusterConv(
                    ["silo", "--redis", $"127.0.0.1:{redisPort}", "--silo-port", ChildProcess.FreePort().ToString(), "--gateway-port", ChildProcess.FreePort().ToString(), "--name", $"silo{i}"],
                    fast));
            }

            foreach (var silo in silos)
            {
                await silo.WaitForLineAsync("running", TimeSpan.FromSeconds(60));
            }

            var outDir = Path.Combine(directory, "run");
            using var train = ChildProcess.StartClusterConv(
                ["train", "--cluster", $"redis://127.0.0.1:{redisPort}", "--data", "synthetic", "--epochs", "1", "--max-steps", "60", "--batch-size", "32",
                 "--workers", "3", "--micro-batches", "3", "--threads", "3", "--checkpoint-every", "10", "--log-every", "2", "--stats-every", "20", "--mode", mode, "--job-id", $"multi-process-{mode.Replace(':', '-')}", "--out", outDir]);
            var metrics = Path.Combine(outDir, "metrics.jsonl");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!File.Exists(metrics) || !File.ReadLines(metrics).Any(l => l.Contains("\"type\":\"step\"", StringComparison.Ordinal) && StepOf(l) >= 12))
            {
                Assert.False(train.HasExited, $"train exited early:\n{train.Output}");
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), $"no progress:\n{train.Output}");
                await Task.Delay(100);
            }

            silos[^1].Kill();
            Assert.True(await train.WaitForExitAsync(TimeSpan.FromSeconds(150)), $"train did not finish:\n{train.Output}\n{string.Join("\n", silos.Select(x => x.Output))}");
            Assert.True(train.ExitCode == 0, $"train exited with {train.ExitCode}:\n{train.Output}");
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")))!;
            Assert.Equal(60, summary["steps"]!.GetValue<long>());
            Assert.Equal(mode, summary["mode"]!.GetValue<string>());
            Assert.True(summary["silos"]!.GetValue<int>() >= 2);
            Assert.True(File.Exists(Path.Combine(outDir, "model.ckpt")));
        }
        finally
        {
            foreach (var silo in silos)
            {
                silo.Dispose();
            }

            redis.Kill();
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static long StepOf(string line) => JsonNode.Parse(line)!["step"]!.GetValue<long>();
}
