namespace ClusterConv.Engine;

/// <summary>
/// A fixed set of persistent threads that run the parts of one parallel loop. Callers choose the
/// partition (how many parts and what each covers) independently of <see cref="Threads"/>, so
/// results do not depend on the thread count; the pool only decides which thread runs which part.
/// Persistent threads woken by an event cost far less per call than Parallel.For on small kernels.
/// </summary>
public sealed class ComputePool : IDisposable
{
    private readonly Thread[] helpers;
    private readonly SemaphoreSlim start;
    private readonly CountdownEvent finished;
    private readonly Lock gate = new();
    private Action<int>? body;
    private int partCount;
    private int nextPart;
    private Exception? failure;
    private volatile bool disposed;

    public ComputePool(int threads)
    {
        if (threads < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "threads must be at least 1");
        }

        Threads = threads;
        start = new SemaphoreSlim(0);
        finished = new CountdownEvent(1);
        helpers = new Thread[threads - 1];
        for (var i = 0; i < helpers.Length; i++)
        {
            helpers[i] = new Thread(HelperLoop) { IsBackground = true, Name = $"clusterconv-compute-{i + 1}" };
            helpers[i].Start();
        }
    }

    /// <summary>A single-threaded pool, for references and small work.</summary>
    public static ComputePool Serial { get; } = new(1);

    public int Threads { get; }

    /// <summary>Runs body(0) .. body(parts - 1), each exactly once, spread over the pool's threads; returns when all are done.</summary>
    public void For(int parts, Action<int> partBody)
    {
        ArgumentNullException.ThrowIfNull(partBody);
        if (parts <= 0)
        {
            return;
        }

        if (helpers.Length == 0 || parts == 1)
        {
            for (var i = 0; i < parts; i++)
            {
                partBody(i);
            }

            return;
        }

        // One loop at a time: nested or concurrent callers run serially instead of deadlocking.
        if (!gate.TryEnter())
        {
            for (var i = 0; i < parts; i++)
            {
                partBody(i);
            }

            return;
        }

        try
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            body = partBody;
            partCount = parts;
            nextPart = 0;
            failure = null;
            var wake = Math.Min(helpers.Length, parts - 1);
            finished.Reset(wake);
            start.Release(wake);
            RunParts();
            finished.Wait();
            body = null;
            if (failure is not null)
            {
                throw new AggregateException("a parallel part failed", failure);
            }
        }
        finally
        {
            gate.Exit();
        }
    }

    /// <summary>Splits [0, length) into parts of nearly equal size; part p covers [start, end).</summary>
    public static (int Start, int End) Range(int length, int parts, int part)
    {
        var quotient = length / parts;
        var remainder = length % parts;
        var begin = (part * quotient) + Math.Min(part, remainder);
        return (begin, begin + quotient + (part < remainder ? 1 : 0));
    }

    public void Dispose()
    {
        if (disposed || ReferenceEquals(this, Serial))
        {
            return;
        }

        disposed = true;
        if (helpers.Length > 0)
        {
            start.Release(helpers.Length);
        }

        foreach (var helper in helpers)
        {
            helper.Join();
        }

        start.Dispose();
        finished.Dispose();
    }

    private void HelperLoop()
    {
        while (true)
        {
            start.Wait();
            if (disposed)
            {
                return;
            }

            RunParts();
            finished.Signal();
        }
    }

    private void RunParts()
    {
        var current = body!;
        while (true)
        {
            var part = Interlocked.Increment(ref nextPart) - 1;
            if (part >= partCount)
            {
                return;
            }

            try
            {
                current(part);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Interlocked.CompareExchange(ref failure, ex, null);
            }
        }
    }
}
