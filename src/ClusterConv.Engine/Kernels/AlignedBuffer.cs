using System.Runtime.CompilerServices;

namespace ClusterConv.Engine.Kernels;

/// <summary>
/// A growable float buffer on the pinned object heap, its start aligned to 64 bytes (one cache line),
/// so kernels can hold a raw pointer to it. It only grows: reusing it across calls and batch sizes
/// keeps large allocations out of the training step. Contents are unspecified after a growth.
/// </summary>
internal sealed unsafe class AlignedBuffer
{
    private const int AlignFloats = 16;
    private float[] array = [];
    private float* pointer;

    public int Capacity { get; private set; }

    /// <summary>Start of the buffer; valid until the next <see cref="Ensure"/> that grows it.</summary>
    public float* Pointer => pointer;

    /// <summary>Makes room for at least <paramref name="length"/> floats and returns the start.</summary>
    public float* Ensure(long length)
    {
        if (length > Capacity)
        {
            var capacity = checked((int)Math.Max(length, Capacity + (Capacity / 2L)));
            array = GC.AllocateArray<float>(capacity + AlignFloats, pinned: true);
            var start = (float*)Unsafe.AsPointer(ref array[0]);
            var misalignment = (int)(((nuint)start / sizeof(float)) % AlignFloats);
            pointer = start + ((AlignFloats - misalignment) % AlignFloats);
            Capacity = capacity;
        }

        return pointer;
    }

    public Span<float> AsSpan(int length)
    {
        if (length > Capacity)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "beyond the buffer's capacity");
        }

        return new Span<float>(pointer, length);
    }
}
