using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace ClusterConv.Cluster;

/// <summary>A cheap 64-bit checksum of float values (their bits), the same on a worker and on a parameter-server shard.</summary>
public static class WeightsChecksum
{
    // XXH3 runs at memory speed (about 3x the four-lane FNV-1a it replaced); never 0, so 0 can mean "no checksum" on the wire.
    public static ulong Of(ReadOnlySpan<float> values) => Final(XxHash3.HashToUInt64(MemoryMarshal.AsBytes(values)));

    /// <summary>The checksum of the values appended to <paramref name="hash"/> (their bytes, in order), as <see cref="Of"/> gives it.</summary>
    public static ulong Of(XxHash3 hash)
    {
        ArgumentNullException.ThrowIfNull(hash);
        return Final(hash.GetCurrentHashAsUInt64());
    }

    private static ulong Final(ulong hash) => hash == 0 ? 1 : hash;
}
