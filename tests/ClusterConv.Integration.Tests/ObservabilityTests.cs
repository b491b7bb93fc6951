using System.Diagnostics;
using System.Text.RegularExpressions;

namespace ClusterConv.Integration.Tests;

/// <summary>A silo process and a `train --cluster` client over a password-protected Redis, scraped by a real Prometheus.</summary>
public sealed partial class ObservabilityTests
{
    private const string JobId = "observed";

    /// <summary>A second, ssp job at the same time: staleness and worker lag exist only in ssp and async.</summary>
    private const string SspJobId = "observed-ssp";
    private const string SiloName = "silo-observed";

    /// <summary>Names of docs/TELEMETRY.md that a short bsp-free run need not produce: they count rare events.</summary>
    private static readonly string[] EventOnly = ["clusterconv_filter_series_dropped_total", "clusterconv_job_restarts_total", "clusterconv_worker_alerts_total"];

    [Fact]
    public async Task A_scraped_training_run_serves_health_every_documented_metric_and_an_answer_to_every_dashboard_query()
    {
        var root = RepositoryRoot();
        var directory = Directory.CreateTempSubdirectory("clusterconv-observability-").FullName;
        var password = Guid.NewGuid().ToString("N");
        var passwordFile = Path.Combine(directory, "redis-password");
        await File.WriteAllTextAsync(passwordFile, password + "\n");
        var redisPort = ChildProcess.FreePort();
        using var redis = ChildProcess.Start("redis-server", ["--port", redisPort.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", password]);
        ChildProcess? silo = null;
        ChildProcess? train = null;
        ChildProcess? trainSsp = null;
        PrometheusServer? prometheus = null;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        using var otlp = new OtlpReceiver();
        try
        {
            await ChildProcess.WaitForRedisAsync(redisPort, TimeSpan.FromSeconds(20), password);

            // The silo reads the password from a file, the client from the environment (deploy/README.md).
            silo = ChildProcess.StartClusterConv(
                ["silo", "--redis", $"127.0.0.1:{redisPort}", "--redis-password-file", passwordFile, "--silo-port", ChildProcess.FreePort().ToString(),
                 "--gateway-port", ChildProcess.FreePort().ToString(), "--name", SiloName, "--metrics-port", "0"],
                new Dictionary<string, string>
                {
                    ["OTEL_SERVICE_NAME"] = "clusterconv-silo",
                    ["OTEL_RESOURCE_ATTRIBUTES"] = "deployment.environment=integration-test",
                    ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.Endpoint,
                    ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
                    ["OTEL_METRIC_EXPORT_INTERVAL"] = "1000",
                    ["OTEL_BSP_SCHEDULE_DELAY"] = "500",
                    ["CLUSTERCONV_LOG_LEVEL"] = "Information",
                });

            // Port 0: the listener picks one and prints it before the silo joins.
            await silo.WaitForLineAsync("metrics on http://", TimeSpan.FromSeconds(60));
            var metricsPort = int.Parse(MetricsLine().Match(silo.Output).Groups[1].Value);
            var endpoint = new Uri($"http://127.0.0.1:{metricsPort}");
            prometheus = await PrometheusServer.StartAsync(directory, new Dictionary<string, string> { [$"127.0.0.1:{metricsPort}"] = SiloName });

            // (a) /livez answers while joining; /healthz turns 200 once the silo is Active.
            Assert.Equal(200, await StatusAsync(http, new Uri(endpoint, "/livez")));
            await WaitUntilAsync(async () => await StatusAsync(http, new Uri(endpoint, "/healthz")) == 200, TimeSpan.FromSeconds(60), () => silo.Output);
            Assert.Equal("ok\n", await http.GetStringAsync(new Uri(endpoint, "/healthz")));
            using (var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, new Uri(endpoint, "/healthz"))))
            {
                Assert.Equal(200, (int)head.StatusCode);
            }

            await silo.WaitForLineAsync("running", TimeSpan.FromSeconds(60));
            Assert.Contains("password=***", silo.Output, StringComparison.Ordinal);

            var outDir = Path.Combine(directory, "run");
            var clock = Stopwatch.StartNew();
            var clientEnvironment = new Dictionary<string, string> { ["CLUSTERCONV_REDIS_PASSWORD"] = password, ["NO_COLOR"] = "1" };
            train = ChildProcess.StartClusterConv(
                ["train", "--cluster", $"redis://127.0.0.1:{redisPort}", "--data", "synthetic", "--train-limit", "1920", "--test-limit", "256", "--epochs", "2",
                 "--batch-size", "32", "--workers", "2", "--micro-batches", "2", "--threads", "1", "--stats-every", "3", "--log-every", "10",
                 "--checkpoint-every", "20", "--job-id", JobId, "--out", outDir],
                clientEnvironment);
            trainSsp = ChildProcess.StartClusterConv(
                ["train", "--cluster", $"redis://127.0.0.1:{redisPort}", "--data", "synthetic", "--train-limit", "640", "--test-limit", "128", "--epochs", "1",
                 "--batch-size", "32", "--workers", "2", "--micro-batches", "2", "--threads", "1", "--mode", "ssp:1", "--stats-every", "5", "--log-every", "10",
                 "--checkpoint-every", "0", "--job-id", SspJobId, "--out", outDir + "-ssp", "--metrics-port", "0"],
                clientEnvironment);
            foreach (var client in new[] { train, trainSsp })
            {
                Assert.True(await client.WaitForExitAsync(TimeSpan.FromSeconds(120)), $"train did not finish:\n{client.Output}\n{silo.Output}");
                Assert.True(client.ExitCode == 0, $"train exited with {client.ExitCode}:\n{client.Output}\n{silo.Output}");
            }

            // A client serves the endpoint too (--metrics-port on train --cluster).
            Assert.Matches(MetricsLine(), trainSsp.Output);

            var trained = DateTimeOffset.UtcNow;

            // Scraped after the run ended: the silo's gauges stay until it stops.
            await WaitUntilAsync(() => ScrapedAfterAsync(prometheus, trained.AddSeconds(2)), TimeSpan.FromSeconds(20), () => prometheus.Output);
            var at = DateTimeOffset.UtcNow;

            // (b) Prometheus sees the target up.
            var targets = await prometheus.GetAsync("/api/v1/targets");
            var active = targets["data"]!["activeTargets"]!.AsArray();
            Assert.Contains(active, t => t!["labels"]!["instance"]!.GetValue<string>() == SiloName && t["health"]!.GetValue<string>() == "up");

            // The exposition: every documented name the run produces, and the resource as target_info.
            var exposition = await http.GetStringAsync(new Uri(endpoint, "/metrics"));
            var missing = DocumentedNames(root).Except(EventOnly).Where(n => !Regex.IsMatch(exposition, $"^{n}(_bucket|_sum|_count)?[{{ ]", RegexOptions.Multiline)).ToArray();
            Assert.True(missing.Length == 0, $"missing from /metrics: {string.Join(", ", missing)}");
            var targetInfo = exposition.Split('\n').FirstOrDefault(l => l.StartsWith("target_info{", StringComparison.Ordinal)) ?? string.Empty;
            Assert.Contains($"service_instance_id=\"{SiloName}\"", targetInfo, StringComparison.Ordinal);
            Assert.Contains("service_name=\"clusterconv-silo\"", targetInfo, StringComparison.Ordinal);
            Assert.Contains($"clusterconv_silo=\"{SiloName}\"", targetInfo, StringComparison.Ordinal);
            Assert.Contains("deployment_environment=\"integration-test\"", targetInfo, StringComparison.Ordinal);

            // (c) Every dashboard query parses and returns a series.
            var dashboards = Directory.Exists(Path.Combine(root, "deploy", "grafana", "dashboards"))
                ? Directory.GetFiles(Path.Combine(root, "deploy", "grafana", "dashboards"), "*.json")
                : [];
            Assert.True(dashboards.Length > 0, "no dashboards under deploy/grafana/dashboards/*.json: nothing to check");
            var failures = new List<string>();
            var checkedQueries = 0;
            var preferred = new Dictionary<string, string> { ["job_id"] = JobId, ["silo"] = SiloName, ["instance"] = SiloName };
            foreach (var dashboard in dashboards)
            {
                var values = await DashboardQueries.ResolveVariablesAsync(dashboard, prometheus, preferred);
                var all = DashboardQueries.AllValues(dashboard);
                foreach (var query in DashboardQueries.Read(dashboard))
                {
                    checkedQueries++;
                    var expr = DashboardQueries.Substitute(query.Expr, values, all);
                    if (query.IsVariable)
                    {
                        if ((await DashboardQueries.EvaluateVariableAsync(expr, prometheus)).Length == 0)
                        {
                            failures.Add($"{query.Dashboard} {query.Where}: no values for {expr}");
                        }

                        continue;
                    }

                    var (status, series, body) = await prometheus.QueryAsync(expr, at);
                    if (status != "success" || series == 0)
                    {
                        failures.Add($"{query.Dashboard} {query.Where}: {(status != "success" ? "error" : "no series")} for {expr}{(status != "success" ? $" ({body})" : string.Empty)}");
                    }
                }
            }

            Assert.True(checkedQueries > 0, "the dashboards hold no PromQL");
            Assert.True(failures.Count == 0, $"{failures.Count} of {checkedQueries} dashboard queries failed (variables: {string.Join(", ", (await DashboardQueries.ResolveVariablesAsync(dashboards[0], prometheus, preferred)).Where(kv => !kv.Key.StartsWith("__", StringComparison.Ordinal)))}):\n{string.Join("\n", failures)}");

            // OTLP as well, from the standard variables alone: metrics (under the documented names) and spans.
            await WaitUntilAsync(() => Task.FromResult(otlp.Received("/v1/metrics", "clusterconv.test.accuracy_ratio") && otlp.Received("/v1/traces", "clusterconv.step")), TimeSpan.FromSeconds(10), () => otlp.Summary);

            // The password is never printed, not even with ClusterConv's information logs on.
            Assert.DoesNotContain(password, silo.Output + train.Output + trainSsp.Output, StringComparison.Ordinal);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"the run took {clock.Elapsed}");
        }
        finally
        {
            train?.Dispose();
            trainSsp?.Dispose();
            prometheus?.Dispose();
            silo?.Dispose();
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

    /// <summary>The Prometheus names of docs/TELEMETRY.md's metric table (its last column).</summary>
    public static string[] DocumentedNames(string root) =>
        File.ReadLines(Path.Combine(root, "docs", "TELEMETRY.md"))
            .Where(l => l.StartsWith("| `clusterconv.", StringComparison.Ordinal))
            .Select(l => l.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)[^1].Trim('`'))
            .ToArray();

    private static async Task<bool> ScrapedAfterAsync(PrometheusServer prometheus, DateTimeOffset after)
    {
        var (status, series, body) = await prometheus.QueryAsync("timestamp(up{job=\"clusterconv\"})", DateTimeOffset.UtcNow);
        if (status != "success" || series == 0)
        {
            return false;
        }

        var value = System.Text.Json.Nodes.JsonNode.Parse(body)!["data"]!["result"]![0]!["value"]![1]!.GetValue<string>();
        return double.Parse(value, System.Globalization.CultureInfo.InvariantCulture) >= after.ToUnixTimeMilliseconds() / 1000.0;
    }

    private static async Task<int> StatusAsync(HttpClient http, Uri uri)
    {
        try
        {
            using var response = await http.GetAsync(uri);
            return (int)response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return 0;
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> context)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"not reached in {timeout}:\n{context()}");
            }

            await Task.Delay(200);
        }
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "ClusterConv.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("ClusterConv.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"metrics on http://[^:]+:(\d+)/metrics")]
    private static partial Regex MetricsLine();
}
