using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ClusterConv.Integration.Tests;

/// <summary>A child process whose output lines are kept, stopped by its own pid.</summary>
public sealed class ChildProcess : IDisposable
{
    private readonly Process process;
    private readonly ConcurrentQueue<string> lines = new();
    private bool disposed;

    private ChildProcess(Process process)
    {
        this.process = process;
    }

    public int Id => process.Id;

    public bool HasExited => process.HasExited;

    public int ExitCode => process.ExitCode;

    public string Output => string.Join('\n', lines);

    public static ChildProcess Start(string file, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        var process = new Process { StartInfo = info };
        var child = new ChildProcess(process);
        process.OutputDataReceived += (_, e) => child.Add(e.Data);
        process.ErrorDataReceived += (_, e) => child.Add(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The clusterconv executable built next to the tests.</summary>
    public static ChildProcess StartClusterConv(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null) =>
        Start("dotnet", new[] { Path.Combine(AppContext.BaseDirectory, "clusterconv.dll") }.Concat(arguments), environment);

    public async Task WaitForLineAsync(string contains, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!lines.Any(l => l.Contains(contains, StringComparison.Ordinal)))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"process {process.Id} exited with {process.ExitCode} before printing '{contains}':\n{Output}");
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"process {process.Id} did not print '{contains}' in {timeout}:\n{Output}");
            }

            await Task.Delay(100);
        }
    }

    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>SIGTERM to this process only (a silo then leaves the cluster gracefully).</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>A signal (STOP, CONT, TERM, ...) to this process only.</summary>
    public void Signal(string name)
    {
        using var kill = Process.Start("kill", ["-" + name, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>SIGKILL to this process only.</summary>
    public void Kill()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: false);
        }
    }

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        Kill();
        process.Dispose();
    }

    private void Add(string? line)
    {
        if (line is not null)
        {
            lines.Enqueue(line);
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>True once a Redis server answers PING on the port (after AUTH when it has a password).</summary>
    public static async Task WaitForRedisAsync(int port, TimeSpan timeout, string? password = null)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                var stream = client.GetStream();
                await stream.WriteAsync(Encoding.ASCII.GetBytes(password is null ? "PING\r\n" : $"AUTH {password}\r\nPING\r\n"));
                var answer = string.Empty;
                var buffer = new byte[64];
                int n;
                while (!answer.Contains("PONG", StringComparison.Ordinal) && !answer.Contains('-', StringComparison.Ordinal) && (n = await stream.ReadAsync(buffer)) > 0)
                {
                    answer += Encoding.ASCII.GetString(buffer, 0, n);
                }

                if (answer.Contains("+PONG", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (SocketException) when (clock.Elapsed < timeout)
            {
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"redis-server did not answer on port {port}");
            }

            await Task.Delay(100);
        }
    }
}

/// <summary>A real redis-server and one `clusterconv silo` process on free loopback ports, with a temporary folder; all stopped and deleted on dispose.</summary>
public sealed class SingleSiloCluster : IDisposable
{
    private readonly ChildProcess redis;

    private SingleSiloCluster(ChildProcess redis, int redisPort, string directory)
    {
        this.redis = redis;
        RedisPort = redisPort;
        Directory = directory;
    }

    public int RedisPort { get; }

    /// <summary>redis://127.0.0.1:PORT, as `--cluster` takes it.</summary>
    public string Address => $"redis://127.0.0.1:{RedisPort}";

    public string Directory { get; }

    public ChildProcess? Silo { get; private set; }

    /// <summary>SIGKILL to the redis-server.</summary>
    /// <summary>SIGKILL to the redis-server; returns once it has exited, so its port refuses connections.</summary>
    public async Task KillRedisAsync()
    {
        redis.Kill();
        Assert.True(await redis.WaitForExitAsync(TimeSpan.FromSeconds(20)), "redis-server did not exit after SIGKILL");
    }

    public static async Task<SingleSiloCluster> StartAsync(string name)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory($"clusterconv-{name}-").FullName;
        var redisPort = ChildProcess.FreePort();
        var port = redisPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var cluster = new SingleSiloCluster(ChildProcess.Start("redis-server", ["--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]), redisPort, directory);
        try
        {
            await ChildProcess.WaitForRedisAsync(redisPort, TimeSpan.FromSeconds(20));
            cluster.Silo = ChildProcess.StartClusterConv(
                ["silo", "--redis", $"127.0.0.1:{port}", "--silo-port", Free(), "--gateway-port", Free(), "--name", name]);
            await cluster.Silo.WaitForLineAsync("running", TimeSpan.FromSeconds(60));
            return cluster;
        }
        catch
        {
            cluster.Dispose();
            throw;
        }

        static string Free() => ChildProcess.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        Silo?.Dispose();
        redis.Kill();
        redis.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
