using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ClusterConv.Cli.Training;
using ClusterConv.Cluster;
using ClusterConv.Engine.Checkpoints;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ClusterConv.Integration.Tests;

/// <summary>A silo process of <see cref="FaultCluster"/>, with the port of its /metrics endpoint.</summary>
public sealed record FaultSilo(string Name, ChildProcess Process, int MetricsPort);

/// <summary>
/// Shared by the fault scenarios: a real redis-server with an append-only file (so a restart keeps membership and
/// checkpoints, as the compose file and the manifests run it), three `clusterconv silo` processes with fast failure
/// detection, a small model, and one fault-free run of the job every scenario repeats (same seed).
/// </summary>
public sealed partial class FaultCluster : IAsyncLifetime
{
    public const int Steps = 120;
    public const int CheckpointEvery = 10;

    /// <summary>Failure detection in a few seconds instead of Orleans' default minute or so.</summary>
    public static readonly IReadOnlyDictionary<string, string> Fast = new Dictionary<string, string>
    {
        ["Orleans__Membership__ProbeTimeout"] = "00:00:01",
        ["Orleans__Membership__NumMissedProbesLimit"] = "2",
        ["Orleans__Membership__NumVotesForDeathDeclaration"] = "1",
        ["Orleans__Membership__TableRefreshTimeout"] = "00:00:01",
        ["Orleans__Membership__IAmAliveTablePublishTimeout"] = "00:00:02",
        ["CLUSTERCONV_LOG_LEVEL"] = "Warning",
        ["NO_COLOR"] = "1",
    };

    private readonly List<FaultSilo> silos = [];
    private readonly List<ChildProcess> started = [];
    private ChildProcess? redis;
    private int siloCount;

    public FaultCluster()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("clusterconv-faults-").FullName;
        RedisPort = ChildProcess.FreePort();
        System.IO.Directory.CreateDirectory(Path.Combine(Directory, "redis"));
    }

    public string Directory { get; }

    public int RedisPort { get; }

    public string Address => $"redis://127.0.0.1:{RedisPort}";

    /// <summary>summary.json of the fault-free run.</summary>
    public JsonNode Baseline { get; private set; } = null!;

    public IReadOnlyList<FaultSilo> Silos => silos;

    public async Task InitializeAsync()
    {
        StartRedis();
        await ChildProcess.WaitForRedisAsync(RedisPort, TimeSpan.FromSeconds(20));
        await EnsureSilosAsync();
        var outDir = RunDirectory("baseline");
        using var train = Train("fault-baseline", outDir);
        Baseline = await FinishAsync(train, outDir);
    }

    public Task DisposeAsync()
    {
        foreach (var process in started)
        {
            process.Dispose();
        }

        redis?.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }

        return Task.CompletedTask;
    }

    public void StartRedis()
    {
        var port = RedisPort.ToString(CultureInfo.InvariantCulture);
        redis?.Dispose();
        redis = ChildProcess.Start("redis-server", ["--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", Path.Combine(Directory, "redis")]);
    }

    /// <summary>SIGTERM to redis-server (it writes its append-only file and exits).</summary>
    public async Task StopRedisAsync()
    {
        redis!.Terminate();
        Assert.True(await redis.WaitForExitAsync(TimeSpan.FromSeconds(20)), "redis-server did not stop on SIGTERM");
    }

    /// <summary>Three running silos: the ones that exited are replaced (new names and ports).</summary>
    public async Task EnsureSilosAsync()
    {
        foreach (var gone in silos.Where(s => s.Process.HasExited).ToArray())
        {
            silos.Remove(gone);
        }

        var starting = new List<Task<FaultSilo>>();
        while (silos.Count + starting.Count < 3)
        {
            starting.Add(StartSiloAsync($"fault-silo{siloCount++}"));
        }

        silos.AddRange(await Task.WhenAll(starting));
    }

    private async Task<FaultSilo> StartSiloAsync(string name)
    {
        var process = Track(ChildProcess.StartClusterConv(
            ["silo", "--redis", $"127.0.0.1:{RedisPort}", "--silo-port", Free(), "--gateway-port", Free(), "--name", name, "--metrics-port", "0"], Fast));
        await process.WaitForLineAsync("running", TimeSpan.FromSeconds(120));
        var port = int.Parse(MetricsPortPattern().Match(process.Output).Groups[1].Value, CultureInfo.InvariantCulture);
        return new FaultSilo(name, process, port);

        static string Free() => ChildProcess.FreePort().ToString(CultureInfo.InvariantCulture);
    }

    public ChildProcess Track(ChildProcess process)
    {
        started.Add(process);
        return process;
    }

    public string RunDirectory(string name) => Path.Combine(Directory, name);

    /// <summary>The job every scenario runs: lenet5, bsp unless <paramref name="mode"/> says otherwise, 3 workers, 2 epochs of 60 steps (long enough for a fault mid job on an idle machine), checkpoints every 10 steps, a step line each step.</summary>
    public ChildProcess Train(string jobId, string outDir, int checkpointEvery = CheckpointEvery, string mode = "bsp") => Track(ChildProcess.StartClusterConv(
        ["train", "--cluster", Address, "--model", "lenet5", "--data", "synthetic", "--train-limit", "18000", "--test-limit", "500", "--epochs", "2",
         "--batch-size", "300", "--workers", "3", "--micro-batches", "3", "--threads", "3", "--checkpoint-every", checkpointEvery.ToString(CultureInfo.InvariantCulture),
         "--log-every", "1", "--stats-every", "0", "--seed", "11", "--mode", mode, "--job-id", jobId, "--out", outDir],
        Fast));

    public ChildProcess Verb(params string[] arguments) => Track(ChildProcess.StartClusterConv(arguments, Fast));

    /// <summary>Waits for the client to exit 0; returns its summary.json.</summary>
    public async Task<JsonNode> FinishAsync(ChildProcess train, string outDir)
    {
        Assert.True(await train.WaitForExitAsync(TimeSpan.FromSeconds(300)), $"train did not finish:\n{train.Output}\n{SiloOutput()}");
        Assert.True(train.ExitCode == 0, $"train exited with {train.ExitCode}:\n{train.Output}\n{SiloOutput()}");
        return JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")))!;
    }

    public string SiloOutput() => string.Join("\n", started.Where(p => p.Output.Contains("silo fault-silo", StringComparison.Ordinal)).Select(p => $"--- silo {p.Id}{(p.HasExited ? $" (exited {p.ExitCode})" : string.Empty)}:\n{Tail(p.Output)}"));

    private static string Tail(string text) => text.Length > 6000 ? text[^6000..] : text;

    /// <summary>The highest step line in the run folder's metrics.jsonl, −1 before the first.</summary>
    public static long MaxStep(string outDir) => Lines(outDir).Where(l => l["type"]?.GetValue<string>() == "step").Select(l => l["step"]!.GetValue<long>()).DefaultIfEmpty(-1).Max();

    /// <summary>Silo names of the workers in the run's worker_step lines.</summary>
    public static HashSet<string> WorkerSilos(string outDir) => Lines(outDir).Where(l => l["type"]?.GetValue<string>() == "worker_step").Select(l => l["silo"]!.GetValue<string>()).ToHashSet();

    private static List<JsonNode> Lines(string outDir)
    {
        var path = Path.Combine(outDir, "metrics.jsonl");
        var nodes = new List<JsonNode>();
        if (!File.Exists(path))
        {
            return nodes;
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        while (reader.ReadLine() is { } line)
        {
            try
            {
                if (JsonNode.Parse(line) is { } node)
                {
                    nodes.Add(node);
                }
            }
            catch (System.Text.Json.JsonException)
            {
                // The line being written.
            }
        }

        return nodes;
    }

    /// <summary>Waits until the run has logged step <paramref name="step"/> (fast polling, so a fault lands near that step).</summary>
    public async Task WaitForStepAsync(ChildProcess train, string outDir, long step)
    {
        var clock = Stopwatch.StartNew();
        while (MaxStep(outDir) < step)
        {
            Assert.False(train.HasExited, $"train exited before step {step}:\n{train.Output}\n{SiloOutput()}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(180), $"no step {step} in 180 s:\n{train.Output}\n{SiloOutput()}");
            await Task.Delay(20);
        }
    }

    /// <summary>
    /// The live silo whose /metrics has <paramref name="metric"/> for the job: clusterconv_ps_aggregate_duration_seconds_count
    /// (a parameter-server shard) or clusterconv_step_duration_seconds_count (the job grain).
    /// </summary>
    public async Task<FaultSilo?> HostOfAsync(string metric, string jobId, string? label = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        foreach (var silo in silos.Where(s => !s.Process.HasExited))
        {
            var text = await http.GetStringAsync(new Uri($"http://127.0.0.1:{silo.MetricsPort}/metrics"));
            if (text.Split('\n').Any(l => l.StartsWith(metric + "{", StringComparison.Ordinal) && l.Contains($"job_id=\"{jobId}\"", StringComparison.Ordinal)
                && (label is null || l.Contains(label, StringComparison.Ordinal))))
            {
                return silo;
            }
        }

        return null;
    }

    /// <summary>Waits until Redis' membership table marks the silo dead (status 6), as the other silos declare it.</summary>
    public async Task WaitDeclaredDeadAsync(string siloName, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            using var cli = ChildProcess.Start("redis-cli", ["-p", RedisPort.ToString(CultureInfo.InvariantCulture), "hgetall", "clusterconv/members/clusterconv"]);
            Assert.True(await cli.WaitForExitAsync(TimeSpan.FromSeconds(20)), "redis-cli did not answer");
            if (cli.Output.Split('\n').Any(l => l.Contains($"\"SiloName\":\"{siloName}\"", StringComparison.Ordinal) && l.Contains("\"Status\":6", StringComparison.Ordinal)))
            {
                return;
            }

            Assert.True(clock.Elapsed < timeout, $"{siloName} not declared dead in {timeout}:\n{cli.Output}");
            await Task.Delay(200);
        }
    }

    public const string PsMetric = "clusterconv_ps_aggregate_duration_seconds_count";
    public const string JobMetric = "clusterconv_step_duration_seconds_count";

    /// <summary>With <see cref="PsRole"/>: gradient bytes a parameter-server shard received (in ssp and async too, where no step is aggregated).</summary>
    public const string ReceivedMetric = "clusterconv_network_received_bytes_total";
    public const string PsRole = "role=\"ps\"";

    /// <summary>
    /// Every checkpoint is readable: the run folder's files through the engine's reader, and in Redis grain storage the
    /// job's state and each shard's last two checkpoints (a shard rolled back to each reads and restores it).
    /// </summary>
    public async Task AssertCheckpointsReadableAsync(string outDir, string jobId, int checkpointEvery = CheckpointEvery)
    {
        AssertCheckpointFilesReadable(outDir);
        using var host = await ClusterTrainer.StartClientAsync(Address);
        try
        {
            var client = host.Services.GetRequiredService<IClusterClient>();
            var job = client.GetGrain<IJobGrain>(jobId);
            var status = await job.GetStatusAsync();
            var spec = (await job.GetSpecAsync())!;
            Assert.Equal(JobPhase.Completed, status.Phase);
            Assert.Equal(Steps, status.LastCheckpointStep);
            var before = (Steps - 1) / checkpointEvery * checkpointEvery;
            for (var p = 0; p < spec.PsShards; p++)
            {
                var shard = client.GetGrain<IParameterServerGrain>(p, jobId);
                Assert.Equal(before, await shard.RollbackAsync(spec, before));
                Assert.Equal(Steps, await shard.RollbackAsync(spec, Steps));
            }
        }
        finally
        {
            await host.StopAsync();
        }
    }

    /// <summary>The run folder's checkpoints (at least <paramref name="minimumFiles"/>, model.ckpt included) all read back through the engine's reader, and no temporary file is left.</summary>
    public static void AssertCheckpointFilesReadable(string outDir, int minimumFiles = 3)
    {
        var files = System.IO.Directory.GetFiles(Path.Combine(outDir, "checkpoints"), "*.ckpt").Append(Path.Combine(outDir, "model.ckpt")).ToArray();
        Assert.True(files.Length >= minimumFiles, string.Join(", ", files));
        foreach (var file in files)
        {
            _ = ModelCheckpoint.LoadFile(file);
        }

        Assert.Empty(System.IO.Directory.GetFiles(outDir, "*.tmp", SearchOption.AllDirectories));
    }

    /// <summary>The run matches the fault-free one: all steps, test accuracy within 1 point, and (bsp, same seed) the same weights.</summary>
    public void AssertLikeBaseline(JsonNode summary, bool sameWeights = true)
    {
        Assert.Equal(Steps, summary["steps"]!.GetValue<long>());
        var accuracy = summary["test_accuracy"]!.GetValue<double>();
        var baseline = Baseline["test_accuracy"]!.GetValue<double>();
        Assert.True(Math.Abs(accuracy - baseline) <= 0.01, $"test accuracy {accuracy} vs {baseline} without faults");
        if (sameWeights)
        {
            Assert.Equal(Baseline["weights_sha256"]!.GetValue<string>(), summary["weights_sha256"]!.GetValue<string>());
        }
    }

    public static void AssertGone(params ChildProcess[] processes)
    {
        foreach (var p in processes)
        {
            Assert.True(p.HasExited, $"process {p.Id} still runs");
        }
    }

    [GeneratedRegex(@"metrics on http://[^:]+:(\d+)/metrics")]
    private static partial Regex MetricsPortPattern();
}
