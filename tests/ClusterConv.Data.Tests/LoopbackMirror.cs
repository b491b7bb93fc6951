using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace ClusterConv.Data.Tests;

/// <summary>
/// A real HTTP server on 127.0.0.1 and a free port (System.Net.HttpListener) serving in-memory files under /mirror/,
/// standing in for the dataset's mirror. Unknown paths get 404; files listed in <see cref="CutShort"/> are sent with
/// their full Content-Length but only half their bytes before the connection is aborted.
/// </summary>
public sealed class LoopbackMirror : IDisposable
{
    private readonly HttpListener listener;
    private readonly Task loop;

    public LoopbackMirror(IReadOnlyDictionary<string, byte[]> files)
    {
        Files = files;
        (listener, BaseUri) = StartListener();
        loop = Task.Run(ServeAsync);
    }

    public IReadOnlyDictionary<string, byte[]> Files { get; }

    /// <summary>Base URL ending in "/mirror/".</summary>
    public Uri BaseUri { get; }

    /// <summary>Paths requested so far, in order (file names relative to the base).</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    public ConcurrentDictionary<string, bool> CutShort { get; } = new();

    public void Dispose()
    {
        listener.Stop();
        listener.Close();
        try
        {
            loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
    }

    private static (HttpListener Listener, Uri BaseUri) StartListener()
    {
        for (var attempt = 0; ; attempt++)
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var prefix = $"http://127.0.0.1:{port}/mirror/";
            var candidate = new HttpListener();
            candidate.Prefixes.Add(prefix);
            try
            {
                candidate.Start();
                return (candidate, new Uri(prefix));
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                candidate.Close();
            }
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

            var name = context.Request.Url!.AbsolutePath["/mirror/".Length..];
            Requests.Enqueue(name);
            var response = context.Response;
            if (!Files.TryGetValue(name, out var content))
            {
                response.StatusCode = 404;
                response.Close();
                continue;
            }

            response.StatusCode = 200;
            response.ContentLength64 = content.Length;
            try
            {
                if (CutShort.ContainsKey(name))
                {
                    await response.OutputStream.WriteAsync(content.AsMemory(0, content.Length / 2));
                    await response.OutputStream.FlushAsync();
                    response.Abort();
                    continue;
                }

                await response.OutputStream.WriteAsync(content);
                response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or IOException)
            {
                response.Abort();
            }
        }
    }
}

/// <summary>Collects progress reports synchronously (Progress&lt;T&gt; would post them later, racing the assertions).</summary>
public sealed class RecordingProgress<T> : IProgress<T>
{
    public ConcurrentQueue<T> Reports { get; } = new();

    public void Report(T value) => Reports.Enqueue(value);
}
