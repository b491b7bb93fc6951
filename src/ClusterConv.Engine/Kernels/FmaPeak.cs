using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClusterConv.Engine.Kernels;

/// <summary>
/// The machine's measured floating-point ceiling: a loop of independent FMAs (12 Vector256
/// accumulators, enough to cover FMA latency on two pipes) on every thread of a pool. Kernel
/// GFLOP/s are reported as a fraction of this.
/// </summary>
public static class FmaPeak
{
    private const int Accumulators = 12;

    /// <summary>
    /// Runs the loop on all pool threads at once in slices of about 2 ms until
    /// <paramref name="duration"/> has passed; returns the best slice's GFLOP/s summed over threads.
    /// The best slice, not the mean, because the cores may be shared with other processes.
    /// </summary>
    public static double MeasureGflops(ComputePool pool, TimeSpan duration)
    {
        ArgumentNullException.ThrowIfNull(pool);
        var flopsPerIteration = Fma.IsSupported ? Accumulators * 2L * Vector256<float>.Count : Accumulators * 2L;
        var sinks = new float[pool.Threads];
        var iterations = 1 << 12;
        void Slice(int part) => sinks[part] += Fma.IsSupported ? FmaLoop(iterations) : ScalarLoop(iterations);

        // Size the slice: grow the iteration count until one slice takes about 2 ms.
        var clock = Stopwatch.StartNew();
        while (true)
        {
            clock.Restart();
            pool.For(pool.Threads, Slice);
            if (clock.Elapsed.TotalMilliseconds >= 2 || iterations >= 1 << 28)
            {
                break;
            }

            iterations *= 2;
        }

        var best = 0.0;
        var total = Stopwatch.StartNew();
        do
        {
            clock.Restart();
            pool.For(pool.Threads, Slice);
            var seconds = clock.Elapsed.TotalSeconds;
            best = Math.Max(best, pool.Threads * (double)iterations * flopsPerIteration / seconds / 1e9);
        }
        while (total.Elapsed < duration);
        GC.KeepAlive(sinks);
        return best;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static float FmaLoop(int iterations)
    {
        var m = Vector256.Create(0.9999f);
        var c = Vector256.Create(1e-4f);
        Vector256<float> x0 = Vector256.Create(1f), x1 = x0, x2 = x0, x3 = x0, x4 = x0, x5 = x0;
        Vector256<float> x6 = x0, x7 = x0, x8 = x0, x9 = x0, x10 = x0, x11 = x0;
        for (var i = 0; i < iterations; i++)
        {
            x0 = Fma.MultiplyAdd(x0, m, c);
            x1 = Fma.MultiplyAdd(x1, m, c);
            x2 = Fma.MultiplyAdd(x2, m, c);
            x3 = Fma.MultiplyAdd(x3, m, c);
            x4 = Fma.MultiplyAdd(x4, m, c);
            x5 = Fma.MultiplyAdd(x5, m, c);
            x6 = Fma.MultiplyAdd(x6, m, c);
            x7 = Fma.MultiplyAdd(x7, m, c);
            x8 = Fma.MultiplyAdd(x8, m, c);
            x9 = Fma.MultiplyAdd(x9, m, c);
            x10 = Fma.MultiplyAdd(x10, m, c);
            x11 = Fma.MultiplyAdd(x11, m, c);
        }

        var sum = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)) + ((x8 + x9) + (x10 + x11));
        return Vector256.Sum(sum);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static float ScalarLoop(int iterations)
    {
        float x0 = 1f, x1 = 1f, x2 = 1f, x3 = 1f, x4 = 1f, x5 = 1f, x6 = 1f, x7 = 1f, x8 = 1f, x9 = 1f, x10 = 1f, x11 = 1f;
        for (var i = 0; i < iterations; i++)
        {
            x0 = (x0 * 0.9999f) + 1e-4f;
            x1 = (x1 * 0.9999f) + 1e-4f;
            x2 = (x2 * 0.9999f) + 1e-4f;
            x3 = (x3 * 0.9999f) + 1e-4f;
            x4 = (x4 * 0.9999f) + 1e-4f;
            x5 = (x5 * 0.9999f) + 1e-4f;
            x6 = (x6 * 0.9999f) + 1e-4f;
            x7 = (x7 * 0.9999f) + 1e-4f;
            x8 = (x8 * 0.9999f) + 1e-4f;
            x9 = (x9 * 0.9999f) + 1e-4f;
            x10 = (x10 * 0.9999f) + 1e-4f;
            x11 = (x11 * 0.9999f) + 1e-4f;
        }

        return x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11;
    }
}
