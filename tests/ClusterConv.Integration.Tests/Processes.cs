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
