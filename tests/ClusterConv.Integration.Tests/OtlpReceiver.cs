using System.Collections.Concurrent;
using System.Net;
using System.Text;

namespace ClusterConv.Integration.Tests;

/// <summary>
/// Stands in for an OpenTelemetry Collector's OTLP/HTTP receiver (http/protobuf): answers 200 to every POST and keeps the
/// bodies by path (/v1/metrics, /v1/traces). No collector runs on this machine; the protobuf bodies carry names as UTF-8.
/// </summary>
public sealed class OtlpReceiver : IDisposable
{
    private readonly HttpListener listener = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<byte[]>> bodies = new();
    private readonly Task loop;

    public OtlpReceiver()
    {
        Port = ChildProcess.FreePort();
        listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        listener.Start();
        loop = Task.Run(ServeAsync);
    }

    public int Port { get; }

    public string Endpoint => $"http://127.0.0.1:{Port}";

    /// <summary>True when a body posted to <paramref name="path"/> holds <paramref name="text"/>.</summary>
    public bool Received(string path, string text)
    {
        var needle = Encoding.UTF8.GetBytes(text);
        return bodies.TryGetValue(path, out var posted) && posted.Any(b => b.AsSpan().IndexOf(needle) >= 0);
    }

    public string Summary => string.Join(", ", bodies.Select(kv => $"{kv.Key}: {kv.Value.Count} posts"));

    public void Dispose()
    {
        listener.Close();
        try
        {
            loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
    }

    private async Task ServeAsync()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            bodies.GetOrAdd(context.Request.Url?.AbsolutePath ?? "/", _ => new ConcurrentQueue<byte[]>()).Enqueue(body.ToArray());
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/x-protobuf";
            context.Response.Close();
        }
    }
}
