using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ClusterConv.Integration.Tests;

/// <summary>
/// docs/SECURITY.md: a password-protected TLS Redis, and mutual TLS between silos and clients, with certificates the
/// test makes; real redis-server and clusterconv processes on loopback ports.
/// </summary>
public sealed partial class TlsTests : IDisposable
{
    private static readonly TimeSpan RefusalBound = TimeSpan.FromSeconds(30);
    private readonly string directory = Directory.CreateTempSubdirectory("clusterconv-tls-").FullName;
    private readonly List<ChildProcess> processes = [];

    [Fact]
    public async Task A_silo_joins_a_password_protected_tls_redis_and_a_job_completes_and_a_wrong_ca_is_refused_at_once()
    {
        using var ca = TestCa.Create("redis-test-ca");
        using var other = TestCa.Create("some-other-ca");
        using var server = ca.Issue("redis");
        CertificateFiles.WritePem(server, Path("redis.pem"), Path("redis.key"));
        ca.WriteCertificatePem(Path("ca.pem"));
        other.WriteCertificatePem(Path("other-ca.pem"));
        const string password = "tls0redis0password";
        File.WriteAllText(Path("password"), password + "\n");

        var port = ChildProcess.FreePort().ToString(CultureInfo.InvariantCulture);
        Start("redis-server", ["--port", "0", "--tls-port", port, "--bind", "127.0.0.1", "--tls-cert-file", Path("redis.pem"), "--tls-key-file", Path("redis.key"),
            "--tls-ca-cert-file", Path("ca.pem"), "--tls-auth-clients", "no", "--requirepass", password, "--save", "", "--appendonly", "no"]);
        await CertificateFiles.WaitForTlsRedisAsync(int.Parse(port, CultureInfo.InvariantCulture), password, TimeSpan.FromSeconds(20));
        var address = $"rediss://127.0.0.1:{port}";

        var silo = StartClusterConv(["silo", "--redis", address, "--redis-ca", Path("ca.pem"), "--redis-password-file", Path("password"), "--silo-port", Free(), "--gateway-port", Free(), "--name", "tls-redis-silo"]);
        await silo.WaitForLineAsync("running", TimeSpan.FromSeconds(60));

        // The client takes the password from the environment, the CA from its option.
        var run = Path("run");
        var train = await RunAsync(["train", "--cluster", address, "--redis-ca", Path("ca.pem"), "--data", "synthetic", "--train-limit", "640", "--test-limit", "200", "--epochs", "1", "--workers", "2", "--out", run, "--json"],
            TimeSpan.FromSeconds(90), new Dictionary<string, string> { ["CLUSTERCONV_REDIS_PASSWORD"] = password });
        Assert.True(train.ExitCode == 0, $"train exited with {train.ExitCode}:\n{train.Output}\nsilo:\n{silo.Output}");
        Assert.Equal(10, JsonNode.Parse(File.ReadAllText(System.IO.Path.Combine(run, "summary.json")))!["steps"]!.GetValue<int>());
        Assert.DoesNotContain(password, silo.Output + train.Output, StringComparison.Ordinal);

        // A CA that did not sign the server's certificate: the client's probe names it, the silo's start too.
        var client = await RunAsync(["status", "--cluster", address, "--redis-ca", Path("other-ca.pem"), "--redis-password-file", Path("password")], RefusalBound);
        Assert.True(client.ExitCode == 4, $"status exited with {client.ExitCode}:\n{client.Output}");
        Assert.Contains($"--cluster {address},password=***: Redis at 127.0.0.1:{port} refused over TLS", client.Output, StringComparison.Ordinal);
        Assert.Contains("certificate 'CN=redis' (issuer 'CN=redis-test-ca') is not signed by a trusted CA", client.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", client.Output, StringComparison.Ordinal);

        var noCa = await RunAsync(["status", "--cluster", address], RefusalBound, new Dictionary<string, string> { ["CLUSTERCONV_REDIS_PASSWORD"] = password });
        Assert.True(noCa.ExitCode == 4, $"status exited with {noCa.ExitCode}:\n{noCa.Output}");
        Assert.Contains("does not chain to a root this system trusts; give the CA that signed it with --redis-ca", noCa.Output, StringComparison.Ordinal);

        var wrongSilo = await RunAsync(["silo", "--redis", address, "--redis-ca", Path("other-ca.pem"), "--redis-password-file", Path("password"), "--silo-port", Free(), "--gateway-port", Free()], RefusalBound);
        Assert.True(wrongSilo.ExitCode == 4, $"silo exited with {wrongSilo.ExitCode}:\n{wrongSilo.Output}");
        Assert.Contains("TLS refused Redis' certificate: certificate 'CN=redis' (issuer 'CN=redis-test-ca') is not signed by a trusted CA", wrongSilo.Output, StringComparison.Ordinal);
        Assert.Single(wrongSilo.Output.Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Two_tls_silos_and_a_tls_client_complete_a_job_and_clients_without_a_trusted_certificate_are_refused()
    {
        using var ca = TestCa.Create("cluster-ca");
        using var rogue = TestCa.Create("rogue-ca");
        ca.WriteCertificatePem(Path("ca.pem"));
        rogue.WriteCertificatePem(Path("rogue-ca.pem"));
        // Each process its own certificate from the cluster CA, as .pfx with a password or as PEM certificate + key.
        using (var a = ca.Issue("silo-a"))
        {
            CertificateFiles.WritePfx(a, Path("silo-a.pfx"), "pfx-password");
        }

        File.WriteAllText(Path("pfx-password"), "pfx-password\n");
        using (var b = ca.Issue("silo-b"))
        {
            CertificateFiles.WritePem(b, Path("silo-b.pem"), Path("silo-b.key"));
        }

        using (var c = ca.Issue("trainer"))
        {
            CertificateFiles.WritePem(c, Path("client.pem"), Path("client.key"));
        }

        using (var r = rogue.Issue("intruder"))
        {
            CertificateFiles.WritePem(r, Path("intruder.pem"), Path("intruder.key"));
        }

        var redisPort = ChildProcess.FreePort();
        Start("redis-server", ["--port", redisPort.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        await ChildProcess.WaitForRedisAsync(redisPort, TimeSpan.FromSeconds(20));
        var address = $"redis://127.0.0.1:{redisPort}";

        var siloA = StartClusterConv(["silo", "--redis", address, "--silo-port", Free(), "--gateway-port", Free(), "--name", "tls-a", "--metrics-port", "0",
            "--tls-cert", Path("silo-a.pfx"), "--tls-cert-password-file", Path("pfx-password"), "--tls-ca", Path("ca.pem")]);
        // The other silo from the environment, as a container would get it.
        var siloB = StartClusterConv(["silo", "--redis", address, "--silo-port", Free(), "--gateway-port", Free(), "--name", "tls-b"],
            new Dictionary<string, string> { ["CLUSTERCONV_TLS_CERT"] = Path("silo-b.pem"), ["CLUSTERCONV_TLS_KEY"] = Path("silo-b.key"), ["CLUSTERCONV_TLS_CA"] = Path("ca.pem") });
        await siloA.WaitForLineAsync("running", TimeSpan.FromSeconds(60));
        await siloB.WaitForLineAsync("running", TimeSpan.FromSeconds(60));
        Assert.Contains("tls as 'CN=silo-a', trusting 'CN=cluster-ca'", siloA.Output, StringComparison.Ordinal);
        AssertMetricsOnLoopbackOnly(siloA.Output);

        string[] tls = ["--tls-cert", Path("client.pem"), "--tls-key", Path("client.key"), "--tls-ca", Path("ca.pem")];
        var run = Path("run");
        var train = await RunAsync([.. new[] { "train", "--cluster", address, "--data", "synthetic", "--train-limit", "640", "--test-limit", "200", "--epochs", "1", "--workers", "4", "--job-id", "tls-job", "--out", run, "--json" }, .. tls], TimeSpan.FromSeconds(90));
        Assert.True(train.ExitCode == 0, $"train exited with {train.ExitCode}:\n{train.Output}\nsilo a:\n{siloA.Output}\nsilo b:\n{siloB.Output}");
        var status = await RunAsync([.. new[] { "status", "tls-job", "--cluster", address }, .. tls], TimeSpan.FromSeconds(60));
        Assert.True(status.ExitCode == 0, status.Output);
        // Its workers spread over both silos, so silo-to-silo traffic went over TLS too.
        Assert.Contains("tls-job: completed step 10/10", status.Output, StringComparison.Ordinal);
        Assert.Contains("silos 2", status.Output, StringComparison.Ordinal);

        // Refused, each with one error and exit 4: no TLS at all, a certificate the silos do not trust, a client that does not trust the silos.
        var refusals = await Task.WhenAll(
            RunAsync(["status", "--cluster", address], RefusalBound),
            RunAsync(["status", "--cluster", address, "--tls-cert", Path("intruder.pem"), "--tls-key", Path("intruder.key"), "--tls-ca", Path("ca.pem")], RefusalBound),
            RunAsync(["status", "--cluster", address, "--tls-cert", Path("client.pem"), "--tls-key", Path("client.key"), "--tls-ca", Path("rogue-ca.pem")], RefusalBound));
        foreach (var refused in refusals)
        {
            Assert.True(refused.ExitCode == 4, $"exit {refused.ExitCode}:\n{refused.Output}");
            Assert.Single(refused.Output.Split('\n'), l => l.StartsWith("error: --cluster ", StringComparison.Ordinal));
            Assert.DoesNotContain("   at ", refused.Output, StringComparison.Ordinal);
        }

        Assert.Contains("the gateways closed", refusals[0].Output, StringComparison.Ordinal);
        Assert.Contains("give --tls-cert and --tls-ca", refusals[0].Output, StringComparison.Ordinal);
        Assert.Contains("the silos may have refused this client's certificate", refusals[1].Output, StringComparison.Ordinal);
        Assert.Contains("TLS refused the cluster's certificate: certificate 'CN=silo-", refusals[2].Output, StringComparison.Ordinal);
        Assert.False(siloA.HasExited || siloB.HasExited, $"a silo stopped:\n{siloA.Output}\n{siloB.Output}");
    }

    public void Dispose()
    {
        foreach (var process in processes)
        {
            process.Dispose();
        }

        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The metrics listener is on 127.0.0.1 unless --metrics-host says otherwise: this machine's other addresses refuse it.</summary>
    private static void AssertMetricsOnLoopbackOnly(string output)
    {
        var match = MetricsLine().Match(output);
        Assert.True(match.Success, output);
        Assert.Equal("127.0.0.1", match.Groups[1].Value);
        var port = int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
        var external = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));
        if (external is null)
        {
            return;
        }

        using var tcp = new TcpClient();
        var refused = Assert.ThrowsAny<SocketException>(() => tcp.Connect(external, port));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    private string Path(string name) => System.IO.Path.Combine(directory, name);

    private static string Free() => ChildProcess.FreePort().ToString(CultureInfo.InvariantCulture);

    private ChildProcess Start(string file, string[] arguments)
    {
        var process = ChildProcess.Start(file, arguments);
        processes.Add(process);
        return process;
    }

    private ChildProcess StartClusterConv(string[] arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var process = ChildProcess.StartClusterConv(arguments, environment);
        processes.Add(process);
        return process;
    }

    private async Task<(int ExitCode, string Output)> RunAsync(string[] arguments, TimeSpan bound, IReadOnlyDictionary<string, string>? environment = null)
    {
        var env = new Dictionary<string, string> { ["NO_COLOR"] = "1" };
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            env[k] = v;
        }

        var process = StartClusterConv(arguments, env);
        // WaitForExitAsync also waits for the end of the redirected output, so Output is whole here.
        Assert.True(await process.WaitForExitAsync(bound), $"{arguments[0]} did not finish within {bound.TotalSeconds} s (a hang):\n{process.Output}");
        return (process.ExitCode, process.Output);
    }

    [GeneratedRegex(@"metrics on http://([^:/]+):(\d+)/metrics")]
    private static partial Regex MetricsLine();
}
