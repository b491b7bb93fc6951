using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace ClusterConv.Integration.Tests;

public sealed partial class HealthEndpointTests
{
    [Fact]
    public async Task A_silo_that_has_not_joined_is_live_but_not_healthy()
    {
        // A "Redis" that accepts connections and never answers: the silo stays before joining for the connect timeout.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var redisPort = ((IPEndPoint)silent.LocalEndpoint).Port;
        var accepted = new List<TcpClient>();
        using var stop = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    accepted.Add(await silent.AcceptTcpClientAsync(stop.Token));
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        });
        using var silo = ChildProcess.StartClusterConv(
            ["silo", "--redis", $"127.0.0.1:{redisPort}", "--silo-port", ChildProcess.FreePort().ToString(), "--gateway-port", ChildProcess.FreePort().ToString(),
             "--name", "never-joins", "--metrics-port", "0"]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            await silo.WaitForLineAsync("metrics on http://", TimeSpan.FromSeconds(30));
            var endpoint = new Uri($"http://127.0.0.1:{MetricsLine().Match(silo.Output).Groups[1].Value}");

            using var health = await http.GetAsync(new Uri(endpoint, "/healthz"));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
            Assert.Matches("^(starting|joining)\n$", await health.Content.ReadAsStringAsync());
            using var live = await http.GetAsync(new Uri(endpoint, "/livez"));
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);
            using var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, new Uri(endpoint, "/healthz")));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, head.StatusCode);
            using var post = await http.PostAsync(new Uri(endpoint, "/healthz"), null);
            Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
            using var metrics = await http.GetAsync(new Uri(endpoint, "/metrics"));
            Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        }
        finally
        {
            silo.Kill();
            await stop.CancelAsync();
            await accepting;
            foreach (var client in accepted)
            {
                client.Dispose();
            }
        }
    }

    [GeneratedRegex(@"metrics on http://[^:]+:(\d+)/metrics")]
    private static partial Regex MetricsLine();
}
