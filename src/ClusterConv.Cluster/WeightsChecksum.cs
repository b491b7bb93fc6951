using System.Runtime.InteropServices;

namespace ClusterConv.Cluster;

/// <summary>A cheap 64-bit checksum of float values (their bits), the same on a worker and on a parameter-server shard.</summary>
public static class WeightsChecksum
{
    public static ulong Of(ReadOnlySpan<float> values)
    {
        // FNV-1a over 64-bit words in four independent lanes (a single chain waits on each multiply), then mixed;
        // never 0, so 0 can mean "no checksum" on the wire.
        const ulong Prime = 1099511628211UL;
        var bytes = MemoryMarshal.AsBytes(values);
        var words = MemoryMarshal.Cast<byte, ulong>(bytes);
        ulong a = 14695981039346656037UL, b = a ^ 1, c = a ^ 2, d = a ^ 3;
        var i = 0;
        for (; i + 4 <= words.Length; i += 4)
        {
            a = (a ^ words[i]) * Prime;
            b = (b ^ words[i + 1]) * Prime;
            c = (c ^ words[i + 2]) * Prime;
            d = (d ^ words[i + 3]) * Prime;
        }

        for (; i < words.Length; i++)
        {
            a = (a ^ words[i]) * Prime;
        }

        for (var k = words.Length * 8; k < bytes.Length; k++)
        {
            b = (b ^ bytes[k]) * Prime;
        }

        var hash = (((((a * Prime) ^ b) * Prime) ^ c) * Prime) ^ d ^ (ulong)bytes.Length;
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        return hash == 0 ? 1 : hash;
    }
}
