using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace ClusterConv.Engine;

/// <summary>
/// Opt-in time counters for the phases of a training step (im2col, GEMM, activation, ...), used by
/// `clusterconv bench` to show where a step goes. Phases inside parallel parts add the time of every
/// thread, so a phase's total is CPU time, not wall time. Off by default: then each probe is one
/// static bool test and no clock read.
/// </summary>
public static class StepProfile
{
    private static readonly ConcurrentDictionary<string, StrongBox<long>> Totals = new();

    /// <summary>Whether probes record; set only while no step runs.</summary>
    public static bool Enabled { get; set; }

    /// <summary>A start mark: the current timestamp when enabled, else 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Start() => Enabled ? Stopwatch.GetTimestamp() : 0;

    /// <summary>Adds the time since <paramref name="start"/> to <paramref name="phase"/>; returns a new start mark.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Lap(string phase, long start)
    {
        if (start == 0)
        {
            return 0;
        }

        var now = Stopwatch.GetTimestamp();
        Interlocked.Add(ref Totals.GetOrAdd(phase, static _ => new StrongBox<long>()).Value, now - start);
        return now;
    }

    /// <summary>The totals so far in milliseconds, by phase name, and clears them.</summary>
    public static IReadOnlyDictionary<string, double> Take()
    {
        var result = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var (phase, box) in Totals)
        {
            result[phase] = Interlocked.Exchange(ref box.Value, 0) * 1e3 / Stopwatch.Frequency;
        }

        return result;
    }
}
