using ClusterConv.Engine;

namespace ClusterConv.Data;

/// <summary>
/// A generated stand-in for Fashion-MNIST: single-channel square images of ten kinds of oriented structure — bars at
/// 0°, 45°, 90° and 135°, step edges bright towards the top, bottom, left or right, and "+" and "x" crosses — each with
/// a random centre offset, thickness, background, contrast and noise. A small CNN learns it to high accuracy within a
/// few hundred steps. Sample i of a split depends only on (seed, split, i), so it is identical on every machine and does
/// not change when more samples are requested. Labels cycle 0..9, so every class has ⌊n/10⌋ or ⌈n/10⌉ samples.
/// The classes are orientation-defined: a horizontal flip maps some onto others, so do not augment them with flips.
/// </summary>
public static class SyntheticDataset
{
    private const ulong Stream = 0x5359_4E54_4845_5449UL;

    public static IReadOnlyList<string> ClassNames { get; } =
        ["bar-0", "bar-45", "bar-90", "bar-135", "edge-top", "edge-bottom", "edge-left", "edge-right", "cross-plus", "cross-x"];

    /// <summary>Train and test splits generated from <paramref name="seed"/>.</summary>
    /// <param name="seed">Seed; the same seed gives the same images everywhere.</param>
    /// <param name="trainCount">Training images.</param>
    /// <param name="testCount">Test images.</param>
    /// <param name="size">Height and width in pixels (at least 8).</param>
    public static DataSplits Generate(ulong seed, int trainCount, int testCount, int size = 28)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(trainCount);
        ArgumentOutOfRangeException.ThrowIfNegative(testCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 8);
        var name = $"synthetic-bars(seed={seed})";
        return new DataSplits(
            Split(seed, 0, trainCount, size, $"{name} train"),
            Split(seed, 1, testCount, size, $"{name} test"),
            $"synthetic oriented bars and edges, seed {seed}, {size}x{size}");
    }

    private static Dataset Split(ulong seed, int split, int count, int size, string name)
    {
        var pixels = new byte[checked(count * size * size)];
        var labels = new byte[count];
        for (var i = 0; i < count; i++)
        {
            labels[i] = (byte)(i % ClassNames.Count);
            var random = new DeterministicRandom(DeterministicRandom.Mix(seed, (ulong)split, (ulong)i, Stream));
            Draw(pixels.AsSpan(i * size * size, size * size), size, labels[i], ref random);
        }

        return new Dataset(name, pixels, labels, size, size, ClassNames);
    }

    /// <summary>Renders one image of class <paramref name="label"/> (antialiased by distance to a line; basic IEEE arithmetic only, so bit-identical everywhere).</summary>
    private static void Draw(Span<byte> image, int size, int label, ref DeterministicRandom random)
    {
        var spread = 0.18 * size;
        var cx = ((size - 1) / 2.0) + (((2 * random.NextDouble()) - 1) * spread);
        var cy = ((size - 1) / 2.0) + (((2 * random.NextDouble()) - 1) * spread);
        var halfWidth = (0.035 + (0.055 * random.NextDouble())) * size; // 1 to 2.5 px at 28
        var background = 5 + (40 * random.NextDouble());
        var contrast = 50 + (150 * random.NextDouble());
        var noise = 5 + (40 * random.NextDouble());
        var d = Math.Sqrt(0.5);

        for (var y = 0; y < size; y++)
        {
            for (var x = 0; x < size; x++)
            {
                var u = x - cx;
                var v = y - cy;
                var value = label switch
                {
                    0 => Bar(v, halfWidth),
                    1 => Bar((u + v) * d, halfWidth),
                    2 => Bar(u, halfWidth),
                    3 => Bar((u - v) * d, halfWidth),
                    4 => Edge(-v),
                    5 => Edge(v),
                    6 => Edge(-u),
                    7 => Edge(u),
                    8 => Math.Max(Bar(v, halfWidth), Bar(u, halfWidth)),
                    _ => Math.Max(Bar((u + v) * d, halfWidth), Bar((u - v) * d, halfWidth)),
                };

                // Irwin–Hall noise (sum of four uniforms): near-Gaussian without transcendental functions.
                var n = random.NextDouble() + random.NextDouble() + random.NextDouble() + random.NextDouble() - 2.0;
                var pixel = background + (contrast * value) + (noise * n);
                image[(y * size) + x] = (byte)Math.Clamp(Math.Round(pixel), 0, 255);
            }
        }
    }

    /// <summary>1 on a line of half-width <paramref name="halfWidth"/> at signed distance <paramref name="distance"/>, fading over one pixel.</summary>
    private static double Bar(double distance, double halfWidth) => Math.Clamp(halfWidth + 0.5 - Math.Abs(distance), 0, 1);

    /// <summary>1 on the positive side of a line, fading over one pixel.</summary>
    private static double Edge(double distance) => Math.Clamp(distance + 0.5, 0, 1);
}
