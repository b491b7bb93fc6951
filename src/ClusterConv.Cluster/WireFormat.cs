using System.Runtime.InteropServices;

namespace ClusterConv.Cluster;

/// <summary>
/// Floats on the wire: little-endian float32 bytes (Orleans copies a byte[] as one block but a float[] element by
/// element), or fp16/bf16 halves for compressed gradients; cut into chunks well below the message size limit.
/// </summary>
public static class WireFormat
{
    /// <summary>Largest payload of one message: 4 MiB, far below Orleans' 100 MB limit.</summary>
    public const int DefaultChunkBytes = 4 << 20;

    public static int BytesPerValue(GradientCompression encoding) => encoding == GradientCompression.None ? 4 : 2;

    /// <summary>The chunks [offset, count) of a run of <paramref name="length"/> values.</summary>
    public static IEnumerable<(int Offset, int Count)> Chunks(int length, int bytesPerValue, int chunkBytes = DefaultChunkBytes)
    {
        var per = Math.Max(1, chunkBytes / bytesPerValue);
        for (var offset = 0; offset < length; offset += per)
        {
            yield return (offset, Math.Min(per, length - offset));
        }

        if (length == 0)
        {
            yield return (0, 0);
        }
    }

    /// <summary>Floats per segment of a weights copy: 64 KiB, under the runtime's 85,000-byte large-object threshold.</summary>
    public const int SegmentFloats = 16_384;

    /// <summary>
    /// The values as little-endian bytes in segments of <see cref="SegmentFloats"/> floats (the last one shorter),
    /// written into <paramref name="reuse"/> when it is a set of segments of the same length (no longer read by anyone).
    /// </summary>
    public static byte[][] ToSegments(ReadOnlySpan<float> values, byte[][]? reuse = null)
    {
        EnsureLittleEndian();
        var count = (values.Length + SegmentFloats - 1) / SegmentFloats;
        var fits = reuse is not null && reuse.Length == count && (count == 0 || reuse[^1].Length == (values.Length - ((count - 1) * SegmentFloats)) * sizeof(float));
        var segments = fits ? reuse! : new byte[count][];
        for (var i = 0; i < segments.Length; i++)
        {
            var start = i * SegmentFloats;
            var run = values.Slice(start, Math.Min(SegmentFloats, values.Length - start));
            if (fits)
            {
                MemoryMarshal.AsBytes(run).CopyTo(segments[i]);
            }
            else
            {
                segments[i] = ToBytes(run);
            }
        }

        return segments;
    }

    /// <summary>
    /// The segments of <see cref="ToSegments"/> that hold floats [offset, offset + count): a chunk of <see cref="Chunks"/>
    /// (its size a multiple of <see cref="SegmentFloats"/>) starts and ends on segment boundaries.
    /// </summary>
    public static byte[][] SegmentsOf(byte[][] segments, int offset, int count)
    {
        ArgumentNullException.ThrowIfNull(segments);
        if (offset % SegmentFloats != 0)
        {
            throw new ArgumentException($"offset {offset} is not on a segment boundary", nameof(offset));
        }

        var first = offset / SegmentFloats;
        var end = Math.Min(segments.Length, (offset + count + SegmentFloats - 1) / SegmentFloats);
        return first == 0 && end == segments.Length ? segments : segments[first..end];
    }

    public static byte[] ToBytes(ReadOnlySpan<float> values)
    {
        EnsureLittleEndian();
        var source = MemoryMarshal.AsBytes(values);
        // Every byte is written at once: no need to have the runtime zero it first.
        var bytes = GC.AllocateUninitializedArray<byte>(source.Length);
        source.CopyTo(bytes);
        return bytes;
    }

    /// <summary>Little-endian float bytes read in place as floats (a whole number of them).</summary>
    public static ReadOnlySpan<float> AsFloats(ReadOnlySpan<byte> bytes)
    {
        EnsureLittleEndian();
        if (bytes.Length % sizeof(float) != 0)
        {
            throw new ArgumentException($"{bytes.Length} bytes are not a whole number of floats", nameof(bytes));
        }

        return MemoryMarshal.Cast<byte, float>(bytes);
    }

    public static void FromBytes(ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        EnsureLittleEndian();
        MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination);
    }

    /// <summary>
    /// Encodes values as 16-bit floats with error feedback: what rounding lost is kept in <paramref name="residual"/>
    /// and added to the next step's values, so nothing is lost over time.
    /// </summary>
    public static byte[] Compress(ReadOnlySpan<float> values, Span<float> residual, GradientCompression encoding)
    {
        EnsureLittleEndian();
        var bytes = new byte[values.Length * 2];
        var halves = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
        for (var i = 0; i < values.Length; i++)
        {
            var v = values[i] + residual[i];
            ushort encoded;
            float decoded;
            if (encoding == GradientCompression.Fp16)
            {
                var h = (Half)v;
                encoded = BitConverter.HalfToUInt16Bits(h);
                decoded = (float)h;
            }
            else
            {
                // bf16: the top 16 bits of the float, rounded to nearest even.
                var bits = BitConverter.SingleToUInt32Bits(v);
                var rounded = bits + 0x7FFFu + ((bits >> 16) & 1u);
                encoded = (ushort)(rounded >> 16);
                decoded = BitConverter.UInt32BitsToSingle((uint)encoded << 16);
            }

            halves[i] = encoded;
            residual[i] = v - decoded;
        }

        return bytes;
    }

    public static void Decompress(ReadOnlySpan<byte> bytes, Span<float> destination, GradientCompression encoding)
    {
        EnsureLittleEndian();
        var halves = MemoryMarshal.Cast<byte, ushort>(bytes);
        for (var i = 0; i < halves.Length; i++)
        {
            destination[i] = encoding == GradientCompression.Fp16
                ? (float)BitConverter.UInt16BitsToHalf(halves[i])
                : BitConverter.UInt32BitsToSingle((uint)halves[i] << 16);
        }
    }

    private static void EnsureLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ClusterConv moves float32 values as little-endian bytes");
        }
    }
}

/// <summary>
/// The bytes of a float[] as memory, without a copy (little-endian float32, the wire format): a gradient pushed inside
/// a silo is passed as this very array; Orleans writes its bytes only when the message leaves the silo.
/// </summary>
public sealed unsafe class FloatBytes : System.Buffers.MemoryManager<byte>
{
    private readonly float[] values;

    public FloatBytes(float[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("the wire format is little-endian float32");
        }

        this.values = values;
    }

    /// <summary>Floats [offset, offset + count) of the array as bytes.</summary>
    public ReadOnlyMemory<byte> Slice(int offset, int count) => Memory.Slice(offset * sizeof(float), count * sizeof(float));

    public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(values.AsSpan());

    public override System.Buffers.MemoryHandle Pin(int elementIndex = 0)
    {
        var handle = GCHandle.Alloc(values, GCHandleType.Pinned);
        return new System.Buffers.MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle, this);
    }

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
    }
}
