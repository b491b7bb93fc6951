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

    [Fact]
    public async Task A_silo_leaving_on_SIGTERM_is_live_and_healthy_or_stopping_until_it_exits_0()
    {
        var redisPort = ChildProcess.FreePort();
        using var redis = ChildProcess.Start("redis-server", ["--port", redisPort.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            await ChildProcess.WaitForRedisAsync(redisPort, TimeSpan.FromSeconds(20));
            using var silo = ChildProcess.StartClusterConv(
                ["silo", "--redis", $"127.0.0.1:{redisPort}", "--silo-port", ChildProcess.FreePort().ToString(), "--gateway-port", ChildProcess.FreePort().ToString(),
                 "--name", "leaves", "--metrics-port", "0"]);
            await silo.WaitForLineAsync("running", TimeSpan.FromSeconds(60));
            var endpoint = new Uri($"http://127.0.0.1:{MetricsLine().Match(silo.Output).Groups[1].Value}");
            using (var joined = await http.GetAsync(new Uri(endpoint, "/healthz")))
            {
                Assert.Equal(HttpStatusCode.OK, joined.StatusCode);
            }

            // Until the listener stops (last, after the silo has left): /healthz says ok or stopping, /livez ok.
            // A silo without grains leaves within milliseconds, so how many answers come back is left open.
            silo.Terminate();
            var answers = new List<string>();
            while (!silo.HasExited)
            {
                try
                {
                    using var health = await http.GetAsync(new Uri(endpoint, "/healthz"));
                    answers.Add($"healthz {(int)health.StatusCode} {await health.Content.ReadAsStringAsync()}");
                    using var live = await http.GetAsync(new Uri(endpoint, "/livez"));
                    answers.Add($"livez {(int)live.StatusCode} {await live.Content.ReadAsStringAsync()}");
                }
                catch (HttpRequestException)
                {
                    break;
                }
            }

            Assert.True(await silo.WaitForExitAsync(TimeSpan.FromSeconds(45)), silo.Output);
            Assert.Equal(0, silo.ExitCode);
            Assert.All(answers, a => Assert.Contains(a, new[] { "healthz 200 ok\n", "healthz 503 stopping\n", "livez 200 ok\n" }));
        }
        finally
        {
            redis.Kill();
        }
    }

    [GeneratedRegex(@"metrics on http://[^:]+:(\d+)/metrics")]
    private static partial Regex MetricsLine();
}
