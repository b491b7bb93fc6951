using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ClusterConv.Engine;

/// <summary>
/// Opt-in time counters for the phases of a training step (im2col, GEMM, activation, ...), used by
/// `clusterconv bench` to show where a step goes. Phases inside parallel parts add the time of every
/// thread. On Linux the clock is the calling thread's CPU time, so time a thread spends descheduled
/// on a loaded machine does not count; elsewhere it is wall time. Off by default: then each probe is
/// one static bool test and no clock read.
/// </summary>
public static partial class StepProfile
{
    private const int ClockThreadCpuTime = 3; // CLOCK_THREAD_CPUTIME_ID
    private static readonly ConcurrentDictionary<string, StrongBox<long>> Totals = new();

    /// <summary>Whether probes record; set only while no step runs.</summary>
    public static bool Enabled { get; set; }

    /// <summary>A start mark: the current timestamp when enabled, else 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Start() => Enabled ? Now() : 0;

    /// <summary>Adds the time since <paramref name="start"/> to <paramref name="phase"/>; returns a new start mark.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Lap(string phase, long start)
    {
        if (start == 0)
        {
            return 0;
        }

        var now = Now();
        Interlocked.Add(ref Totals.GetOrAdd(phase, static _ => new StrongBox<long>()).Value, now - start);
        return now;
    }

    /// <summary>The totals so far in milliseconds, by phase name, and clears them.</summary>
    public static IReadOnlyDictionary<string, double> Take()
    {
        var result = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var (phase, box) in Totals)
        {
            result[phase] = Interlocked.Exchange(ref box.Value, 0) * 1e3 / (OperatingSystem.IsLinux() ? 1e9 : Stopwatch.Frequency);
        }

        return result;
    }

    /// <summary>This thread's CPU time in nanoseconds (Linux), else the wall timestamp.</summary>
    public static long Now()
    {
        if (OperatingSystem.IsLinux() && ClockGetTime(ClockThreadCpuTime, out var time) == 0)
        {
            return (time.Seconds * 1_000_000_000) + time.Nanoseconds + 1; // never 0 (0 means "off")
        }

        return Stopwatch.GetTimestamp();
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}
