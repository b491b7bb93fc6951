using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace ClusterConv.Cluster;

/// <summary>A cheap 64-bit checksum of float values (their bits), the same on a worker and on a parameter-server shard.</summary>
public static class WeightsChecksum
{
    public static ulong Of(ReadOnlySpan<float> values)
    {
        // XXH3 runs at memory speed (about 3x the four-lane FNV-1a it replaced); never 0, so 0 can mean "no checksum" on the wire.
        var hash = XxHash3.HashToUInt64(MemoryMarshal.AsBytes(values));
        return hash == 0 ? 1 : hash;
    }
}
