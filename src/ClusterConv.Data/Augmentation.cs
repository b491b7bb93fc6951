using ClusterConv.Engine;

namespace ClusterConv.Data;

/// <summary>
/// Optional random transforms of training images: a horizontal flip (probability ½) and a shift by up to
/// <see cref="MaxShift"/> pixels in each direction, the uncovered border filled with pixel value 0. Each sample's
/// transform comes from its own random stream, derived from (seed, epoch, global sample index), so a sample is
/// transformed the same way whichever worker, batch or position processes it.
/// </summary>
/// <remarks>
/// A flip changes the class of mirror-asymmetric sets: do not flip digits (MNIST) or the synthetic oriented bars.
/// </remarks>
public sealed record Augmentation(int MaxShift = 0, bool HorizontalFlip = false)
{
    /// <summary>Distinguishes the augmentation stream from a layer's per-sample stream (StepContext.SampleRandom uses the layer index there).</summary>
    private const ulong Stream = 0x4155_474D_454E_5421UL;

    public static Augmentation None { get; } = new();

    public bool IsNone => MaxShift == 0 && !HorizontalFlip;

    /// <summary>The transform of one sample in one epoch.</summary>
    public SampleTransform For(ulong seed, int epoch, int globalIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(MaxShift);
        if (IsNone)
        {
            return default;
        }

        // Always three draws in this order, so a setting never shifts another's stream.
        var random = new DeterministicRandom(DeterministicRandom.Mix(seed, (ulong)(uint)epoch, (ulong)(uint)globalIndex, Stream));
        var flip = random.NextInt(2) == 1;
        var dx = random.NextInt((2 * MaxShift) + 1) - MaxShift;
        var dy = random.NextInt((2 * MaxShift) + 1) - MaxShift;
        return new SampleTransform(HorizontalFlip && flip, dx, dy);
    }

    public override string ToString() => IsNone ? "none" : $"shift<={MaxShift}{(HorizontalFlip ? "+flip" : string.Empty)}";
}

/// <summary>One sample's transform: mirror left-right first, then move by (Dx, Dy) pixels (right and down positive).</summary>
public readonly record struct SampleTransform(bool Flip, int Dx, int Dy)
{
    public bool IsIdentity => !Flip && Dx == 0 && Dy == 0;

    /// <summary>
    /// Writes the transformed image: output(y, x) = source(y − Dy, x' − Dx) with x' mirrored when flipping, and
    /// <paramref name="table"/>[0] where that falls outside the image. Every pixel passes through <paramref name="table"/>.
    /// </summary>
    /// <param name="destination">Height·Width values.</param>
    /// <param name="source">Height·Width bytes, row-major.</param>
    /// <param name="height">Rows.</param>
    /// <param name="width">Columns.</param>
    /// <param name="table">Value of each byte (see <see cref="Normalization.Table"/>).</param>
    public void Apply(Span<float> destination, ReadOnlySpan<byte> source, int height, int width, ReadOnlySpan<float> table)
    {
        var size = height * width;
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, size);
        ArgumentOutOfRangeException.ThrowIfLessThan(source.Length, size);
        ArgumentOutOfRangeException.ThrowIfLessThan(table.Length, 256);
        var fill = table[0];
        for (var y = 0; y < height; y++)
        {
            var row = destination.Slice(y * width, width);
            var sy = y - Dy;
            if ((uint)sy >= (uint)height)
            {
                row.Fill(fill);
                continue;
            }

            var sourceRow = source.Slice(sy * width, width);
            for (var x = 0; x < width; x++)
            {
                var sx = x - Dx;
                row[x] = (uint)sx >= (uint)width ? fill : table[sourceRow[Flip ? width - 1 - sx : sx]];
            }
        }
    }
}
