using System.Runtime.InteropServices;

namespace ClusterConv.Cluster;

/// <summary>
/// Test-only fault injection into a worker's step: internal, so only the cluster tests (InternalsVisibleTo) can
/// register one in a silo's services; no option of the command line or job spec reaches it.
/// </summary>
internal interface IWorkerFaults
{
    /// <summary>After the weights of <paramref name="step"/> are in the worker's copy, before it computes on them.</summary>
    void OnWeights(string job, int worker, long step, float[] weights);

    /// <summary>After the worker's gradient of <paramref name="step"/> is reduced (one array per tree node), before it is pushed.</summary>
    void OnGradient(string job, int worker, long step, IReadOnlyList<float[]> nodes);
}

/// <summary>A cheap 64-bit checksum of float values (their bits), the same on a worker and on a parameter-server shard.</summary>
public static class WeightsChecksum
{
    public static ulong Of(ReadOnlySpan<float> values)
    {
        // FNV-1a over 64-bit words with a final mix; never 0, so 0 can mean "no checksum" on the wire.
        var hash = 14695981039346656037UL;
        var bytes = MemoryMarshal.AsBytes(values);
        var words = MemoryMarshal.Cast<byte, ulong>(bytes);
        foreach (var w in words)
        {
            hash = (hash ^ w) * 1099511628211UL;
        }

        for (var i = words.Length * 8; i < bytes.Length; i++)
        {
            hash = (hash ^ bytes[i]) * 1099511628211UL;
        }

        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        return hash == 0 ? 1 : hash;
    }
}
