using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;

namespace ClusterConv.Reports.Tests;

/// <summary>
/// Debian's chromium, headless, driven over the DevTools protocol (a BCL WebSocket on a free loopback port): opens a
/// page, collects console errors, uncaught exceptions and log errors, evaluates JavaScript and takes screenshots.
/// Stopped by its process id.
/// </summary>
public sealed class HeadlessChromium : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly Process process;
    private readonly ClientWebSocket socket = new();
    private readonly List<string> errors = [];
    private readonly Dictionary<int, TaskCompletionSource<JsonObject>> pending = [];
    private readonly List<(string Method, TaskCompletionSource<JsonObject> Done)> waiters = [];
    private readonly CancellationTokenSource stop = new();
    private Task? receiving;
    private int nextId;

    private HeadlessChromium(Process process) => this.process = process;

    public static string? Executable => new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);

    /// <summary>Console errors, uncaught exceptions and error log entries seen so far.</summary>
    public IReadOnlyList<string> Errors
    {
        get
        {
            lock (errors)
            {
                return errors.ToArray();
            }
        }
    }

    public static async Task<HeadlessChromium> StartAsync(string profileDirectory, int width = 1280, int height = 1600)
    {
        var executable = Executable ?? throw new InvalidOperationException("chromium is not installed (Debian package chromium; test.sh installs it)");
        var port = FreePort();
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars",
            $"--user-data-dir={profileDirectory}", "--remote-debugging-address=127.0.0.1", $"--remote-debugging-port={port}",
            $"--window-size={width},{height}", "about:blank",
        })
        {
            start.ArgumentList.Add(a);
        }

        var process = Process.Start(start)!;
        process.ErrorDataReceived += (_, _) => { };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var browser = new HeadlessChromium(process);
        try
        {
            await browser.ConnectAsync(port);
        }
        catch
        {
            await browser.DisposeAsync();
            throw;
        }

        return browser;
    }

    /// <summary>Navigates to the file and waits for its load event.</summary>
    public async Task OpenAsync(string path)
    {
        var loaded = WaitFor("Page.loadEventFired");
        await SendAsync("Page.navigate", new JsonObject { ["url"] = new Uri(path).AbsoluteUri });
        await loaded.WaitAsync(Timeout);
    }

    /// <summary>Evaluates an expression in the page and returns its value (JSON).</summary>
    public async Task<JsonNode?> EvaluateAsync(string expression)
    {
        var result = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true, ["awaitPromise"] = true });
        if (result["exceptionDetails"] is { } exception)
        {
            throw new InvalidOperationException("page script failed: " + exception.ToJsonString());
        }

        return result["result"]?["value"]?.DeepClone();
    }

    /// <summary>A PNG of the whole page, width × full height.</summary>
    public async Task<byte[]> ScreenshotAsync()
    {
        var metrics = await SendAsync("Page.getLayoutMetrics", []);
        var size = metrics["cssContentSize"] ?? metrics["contentSize"];
        var clip = new JsonObject
        {
            ["x"] = 0,
            ["y"] = 0,
            ["width"] = size!["width"]!.GetValue<double>(),
            ["height"] = Math.Min(size["height"]!.GetValue<double>(), 16000),
            ["scale"] = 1,
        };
        var shot = await SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png", ["captureBeyondViewport"] = true, ["clip"] = clip });
        return Convert.FromBase64String(shot["data"]!.GetValue<string>());
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        socket.Abort();
        socket.Dispose();
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        if (receiving is not null)
        {
            await receiving.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        process.Dispose();
        stop.Dispose();
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private async Task ConnectAsync(int port)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + Timeout;
        string? url = null;
        while (url is null)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"chromium exited with code {process.ExitCode} before it listened");
            }

            try
            {
                var list = JsonNode.Parse(await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/json/list"))) as JsonArray;
                url = list?.FirstOrDefault(t => t?["type"]?.GetValue<string>() == "page")?["webSocketDebuggerUrl"]?.GetValue<string>();
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            if (url is null)
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException("chromium did not offer a page to debug within 30 s");
                }

                await Task.Delay(100);
            }
        }

        await socket.ConnectAsync(new Uri(url), CancellationToken.None);
        receiving = Task.Run(ReceiveAsync);
        await SendAsync("Runtime.enable", []);
        await SendAsync("Log.enable", []);
        await SendAsync("Page.enable", []);
    }

    private Task<JsonObject> WaitFor(string method)
    {
        var done = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (waiters)
        {
            waiters.Add((method, done));
        }

        return done.Task;
    }

    private async Task<JsonObject> SendAsync(string method, JsonObject parameters)
    {
        var id = Interlocked.Increment(ref nextId);
        var done = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (pending)
        {
            pending[id] = done;
        }

        var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters };
        await socket.SendAsync(Encoding.UTF8.GetBytes(message.ToJsonString()), WebSocketMessageType.Text, true, stop.Token);
        var reply = await done.Task.WaitAsync(Timeout);
        if (reply["error"] is { } error)
        {
            throw new InvalidOperationException($"{method}: {error.ToJsonString()}");
        }

        return reply["result"] as JsonObject ?? [];
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[1 << 16];
        using var message = new MemoryStream();
        while (!stop.IsCancellationRequested && socket.State == WebSocketState.Open)
        {
            WebSocketReceiveResult part;
            try
            {
                part = await socket.ReceiveAsync(buffer, stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException or ObjectDisposedException)
            {
                return;
            }

            message.Write(buffer, 0, part.Count);
            if (!part.EndOfMessage)
            {
                continue;
            }

            var node = JsonNode.Parse(message.ToArray()) as JsonObject;
            message.SetLength(0);
            if (node is null)
            {
                continue;
            }

            if (node["id"] is { } id)
            {
                TaskCompletionSource<JsonObject>? done;
                lock (pending)
                {
                    pending.Remove(id.GetValue<int>(), out done);
                }

                done?.TrySetResult(node);
                continue;
            }

            var method = node["method"]?.GetValue<string>() ?? string.Empty;
            var p = node["params"];
            var error = method switch
            {
                "Runtime.consoleAPICalled" when p?["type"]?.GetValue<string>() is "error" or "assert" => "console: " + p!["args"]?.ToJsonString(),
                "Runtime.exceptionThrown" => "exception: " + p?["exceptionDetails"]?.ToJsonString(),
                "Log.entryAdded" when p?["entry"]?["level"]?.GetValue<string>() == "error" => "log: " + p!["entry"]!["text"]?.GetValue<string>(),
                _ => null,
            };
            if (error is not null)
            {
                lock (errors)
                {
                    errors.Add(error);
                }
            }

            lock (waiters)
            {
                foreach (var w in waiters.Where(w => w.Method == method).ToArray())
                {
                    w.Done.TrySetResult(node);
                    waiters.Remove(w);
                }
            }
        }
    }
}
