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

    // RunAsync's work, run in order on the pool's own runner thread (made on first use).
    private readonly Queue<(Action Run, Action<Exception> Fail)> submitted = new();
    private Thread? runner;

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

    /// <summary>
    /// Runs <paramref name="work"/> on this pool's own runner thread (one call at a time, in order), which leads its
    /// parallel loops with the helpers. Long computations queued on the shared thread pool instead block its threads,
    /// so it adds more, and the extra threads preempt the computations on a machine with few cores.
    /// </summary>
    public Task<T> RunAsync<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (submitted)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            submitted.Enqueue((
                () =>
                {
                    try
                    {
                        done.SetResult(work());
                    }
                    catch (Exception ex) when (ex is not OutOfMemoryException)
                    {
                        done.SetException(ex);
                    }
                },
                ex => done.TrySetException(ex)));
            if (runner is null)
            {
                runner = new Thread(RunnerLoop) { IsBackground = true, Name = "clusterconv-compute-0" };
                runner.Start();
            }

            Monitor.Pulse(submitted);
        }

        return done.Task;
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

        lock (submitted)
        {
            disposed = true;
            Monitor.Pulse(submitted);
        }

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

    /// <summary>Runs submitted work until the pool is disposed; work still queued then fails as disposed (not joined: it may be mid-step).</summary>
    private void RunnerLoop()
    {
        while (true)
        {
            (Action Run, Action<Exception> Fail) next;
            lock (submitted)
            {
                while (submitted.Count == 0 && !disposed)
                {
                    Monitor.Wait(submitted);
                }

                if (disposed)
                {
                    break;
                }

                next = submitted.Dequeue();
            }

            next.Run();
        }

        lock (submitted)
        {
            while (submitted.TryDequeue(out var abandoned))
            {
                abandoned.Fail(new ObjectDisposedException(nameof(ComputePool), "the compute pool was disposed before this work ran"));
            }
        }
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
