using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace ClusterConv.Integration.Tests;

/// <summary>Debian's prometheus on a free loopback port, scraping the given targets every second; stopped by its pid.</summary>
public sealed class PrometheusServer : IDisposable
{
    private readonly ChildProcess process;
    private readonly HttpClient http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private PrometheusServer(ChildProcess process, int port)
    {
        this.process = process;
        Port = port;
        http.BaseAddress = new Uri($"http://127.0.0.1:{port}");
    }

    public int Port { get; }

    public string Output => process.Output;

    /// <summary>
    /// Scrapes each target (HOST:PORT, with its instance label) as job "clusterconv". honor_labels keeps ClusterConv's own
    /// "job" label (the training job) as the compose stack's Prometheus does (deploy/prometheus/prometheus.yml).
    /// </summary>
    public static async Task<PrometheusServer> StartAsync(string directory, IReadOnlyDictionary<string, string> targets)
    {
        var port = ChildProcess.FreePort();
        var config = Path.Combine(directory, "prometheus.yml");
        var lines = new List<string>
        {
            "global:", "  scrape_interval: 1s", "  evaluation_interval: 1s",
            "scrape_configs:", "  - job_name: clusterconv", "    honor_labels: true", "    static_configs:",
        };
        foreach (var (target, instance) in targets)
        {
            lines.Add($"      - targets: [\"{target}\"]");
            lines.Add($"        labels: {{ instance: \"{instance}\" }}");
        }

        await File.WriteAllLinesAsync(config, lines);
        var child = ChildProcess.Start("/usr/bin/prometheus",
        [
            $"--config.file={config}", $"--web.listen-address=127.0.0.1:{port}", $"--storage.tsdb.path={Path.Combine(directory, "tsdb")}",
            "--log.level=warn",
        ]);
        var server = new PrometheusServer(child, port);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var ready = await server.http.GetAsync(new Uri("/-/ready", UriKind.Relative));
                if (ready.IsSuccessStatusCode)
                {
                    return server;
                }
            }
            catch (HttpRequestException) when (clock.Elapsed < TimeSpan.FromSeconds(20) && !child.HasExited)
            {
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(20) || child.HasExited)
            {
                server.Dispose();
                throw new TimeoutException($"prometheus did not become ready:\n{child.Output}");
            }

            await Task.Delay(100);
        }
    }

    public async Task<JsonNode> GetAsync(string pathAndQuery)
    {
        var text = await http.GetStringAsync(new Uri(pathAndQuery, UriKind.Relative));
        return JsonNode.Parse(text)!;
    }

    /// <summary>An instant query at <paramref name="time"/>: the status and the number of series (or scalar results).</summary>
    public async Task<(string Status, int Series, string Body)> QueryAsync(string expr, DateTimeOffset time)
    {
        var at = (time.ToUnixTimeMilliseconds() / 1000.0).ToString("F3", CultureInfo.InvariantCulture);
        using var response = await http.GetAsync(new Uri($"/api/v1/query?query={Uri.EscapeDataString(expr)}&time={at}", UriKind.Relative));
        var body = await response.Content.ReadAsStringAsync();
        var json = JsonNode.Parse(body)!;
        var status = json["status"]?.GetValue<string>() ?? "?";
        var result = json["data"]?["result"];
        var series = result switch
        {
            JsonArray a => a.Count,
            null => 0,
            _ => 1,
        };
        return (status, series, body);
    }

    /// <summary>Values of a label on the series matching <paramref name="match"/> (Grafana's label_values).</summary>
    public async Task<string[]> LabelValuesAsync(string label, string? match)
    {
        var query = match is null ? string.Empty : $"?match[]={Uri.EscapeDataString(match)}";
        var json = await GetAsync($"/api/v1/label/{Uri.EscapeDataString(label)}/values{query}");
        return json["data"] is JsonArray a ? a.Select(v => v!.GetValue<string>()).ToArray() : [];
    }

    public void Dispose()
    {
        http.Dispose();
        process.Dispose();
    }
}
