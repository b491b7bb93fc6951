namespace ClusterConv.Engine.Tests;

public sealed class ComputePoolTests
{
    [Fact]
    public async Task RunAsync_runs_work_on_the_pools_own_thread_in_the_order_it_was_submitted()
    {
        using var pool = new ComputePool(2);
        var order = new List<int>();
        var threads = new HashSet<int>();
        var calls = Enumerable.Range(0, 20).Select(i => pool.RunAsync(() =>
        {
            // Not a thread-pool thread: long work here must not make the shared pool add threads.
            Assert.False(Thread.CurrentThread.IsThreadPoolThread);
            lock (order)
            {
                order.Add(i);
                threads.Add(Environment.CurrentManagedThreadId);
            }

            return i * i;
        })).ToArray();

        var results = await Task.WhenAll(calls);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => i * i), results);
        Assert.Equal(Enumerable.Range(0, 20), order);
        Assert.Single(threads);
    }

    [Fact]
    public async Task RunAsync_work_can_run_parallel_loops_on_the_helpers_and_reports_its_exception()
    {
        using var pool = new ComputePool(3);
        var sums = await pool.RunAsync(() =>
        {
            var parts = new int[8];
            pool.For(parts.Length, p => parts[p] = p + 1);
            return parts.Sum();
        });
        Assert.Equal(36, sums);

        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => pool.RunAsync<int>(() => throw new InvalidOperationException("bad step")));
        Assert.Equal("bad step", failure.Message);
        Assert.Equal(1, await pool.RunAsync(() => 1));
    }

    [Fact]
    public async Task Work_queued_behind_a_running_call_fails_as_disposed_when_the_pool_is_disposed()
    {
        var pool = new ComputePool(1);
        using var release = new ManualResetEventSlim();
        var started = new TaskCompletionSource();
        var running = pool.RunAsync(() =>
        {
            started.SetResult();
            release.Wait();
            return 1;
        });
        await started.Task;
        var queued = pool.RunAsync(() => 2);
        pool.Dispose();
        release.Set();

        Assert.Equal(1, await running);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => queued);

        // Refused at the call, not through a task that never runs.
        Assert.IsType<ObjectDisposedException>(Record.Exception(() => SubmitLate(pool)));

        static void SubmitLate(ComputePool disposed) => _ = disposed.RunAsync(() => 3);
    }
}
