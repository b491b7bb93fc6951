using System.Globalization;

namespace ClusterConv.Data;

/// <summary>
/// How a pixel byte p becomes a network input: x = (p/255 − Mean) / Std. Chosen and recorded by <see cref="Name"/>:
/// "scale" (Mean 0, Std 1: x = p/255, the default, as in the reference PyTorch and Keras scripts) or "standardize"
/// (Mean and Std of the training set's pixels in 0..1 units). The values travel with the name so every worker applies
/// the same transform, whatever shard it holds.
/// </summary>
public sealed record Normalization(string Name, float Mean, float Std)
{
    public const string ScaleName = "scale";
    public const string StandardizeName = "standardize";

    /// <summary>x = p/255.</summary>
    public static Normalization Scale { get; } = new(ScaleName, 0f, 1f);

    /// <summary>The names <see cref="Parse"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = [ScaleName, StandardizeName];

    /// <summary>
    /// Mean and standard deviation over every pixel of <paramref name="train"/>, in 0..1 units. Computed from integer
    /// sums, so the result is the same on every machine.
    /// </summary>
    public static Normalization Standardize(Dataset train)
    {
        ArgumentNullException.ThrowIfNull(train);
        Span<long> histogram = stackalloc long[256];
        foreach (var p in train.Pixels.Span)
        {
            histogram[p]++;
        }

        long n = 0, sum = 0;
        UInt128 sumSquares = 0;
        for (var v = 0; v < 256; v++)
        {
            n += histogram[v];
            sum += histogram[v] * v;
            sumSquares += (UInt128)(ulong)histogram[v] * (ulong)(v * v);
        }

        if (n == 0)
        {
            throw new ArgumentException("Cannot standardize with an empty data set.", nameof(train));
        }

        var mean = (double)sum / n;
        var variance = Math.Max(0.0, ((double)sumSquares / n) - (mean * mean));
        var std = Math.Sqrt(variance) / 255.0;
        return new Normalization(StandardizeName, (float)(mean / 255.0), (float)Math.Max(std, 1e-6));
    }

    /// <summary>The normalization called <paramref name="name"/>; "standardize" measures <paramref name="train"/>.</summary>
    public static Normalization Parse(string name, Dataset train)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            ScaleName => Scale,
            StandardizeName => Standardize(train),
            _ => throw new ArgumentException($"Unknown normalization '{name}': expected one of {string.Join(", ", Names)}.", nameof(name)),
        };
    }

    /// <summary>The input value of pixel byte <paramref name="pixel"/>.</summary>
    public float Apply(byte pixel) => ((pixel / 255f) - Mean) / Std;

    /// <summary>The input value of every byte 0..255, for table lookup.</summary>
    public float[] Table()
    {
        var table = new float[256];
        for (var p = 0; p < table.Length; p++)
        {
            table[p] = Apply((byte)p);
        }

        return table;
    }

    /// <summary>E.g. "scale" or "standardize(mean=0.28604, std=0.35302)".</summary>
    public override string ToString() =>
        Name == ScaleName ? Name : string.Create(CultureInfo.InvariantCulture, $"{Name}(mean={Mean:0.#####}, std={Std:0.#####})");
}
