using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;

// The CLI tests redirect Console.Out; one test at a time keeps that safe (and two cores gain little from more).
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace ClusterConv.Onnx.Tests;

/// <summary>The real Fashion-MNIST files (installed by test.sh), loaded once, and helpers to turn them into inputs.</summary>
internal static class TestData
{
    private static readonly Lazy<DataSplits> Splits = new(() =>
        new DataLocator(new DataDiscoveryOptions { ExplicitDirectory = FashionMnist.SystemDirectory, AllowDownload = false }).LoadAsync().GetAwaiter().GetResult());

    public static Dataset Test => Splits.Value.Test;

    public static Dataset Train => Splits.Value.Train;

    /// <summary>Test images [start, start+count) as pixel values byte/255, (count, 1, 28, 28).</summary>
    public static float[] Pixels(int start, int count)
    {
        var bytes = Test.Pixels.Span.Slice(start * Test.ImageSize, count * Test.ImageSize);
        var pixels = new float[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
        {
            pixels[i] = bytes[i] / 255f;
        }

        return pixels;
    }

    /// <summary>A checkpoint of the model with seeded initial weights and small random biases (so no parameter is trivially zero).</summary>
    public static ModelCheckpoint Initialized(Engine.Specs.ModelSpec spec, ulong seed = 7, InputNormalization? normalization = null)
    {
        var model = new Model(spec);
        model.Initialize(seed);
        var random = new DeterministicRandom(seed + 1);
        foreach (var p in model.Parameters)
        {
            switch (p.Name)
            {
                case "bias" or "beta" or "moving_mean":
                    Fill(p.Value, ref random, -0.2f, 0.2f);
                    break;
                case "gamma" or "moving_variance":
                    Fill(p.Value, ref random, 0.5f, 1.5f);
                    break;
            }
        }

        return ModelCheckpoint.Capture(model, 0, 0, normalization ?? InputNormalization.Scale);
    }

    public static float MaxAbsDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        var max = 0f;
        for (var i = 0; i < a.Length; i++)
        {
            max = MathF.Max(max, MathF.Abs(a[i] - b[i]));
        }

        return max;
    }

    public static int[] ArgMax(ReadOnlySpan<float> logits, int classes)
    {
        var result = new int[logits.Length / classes];
        for (var n = 0; n < result.Length; n++)
        {
            var row = logits.Slice(n * classes, classes);
            var best = 0;
            for (var c = 1; c < classes; c++)
            {
                if (row[c] > row[best])
                {
                    best = c;
                }
            }

            result[n] = best;
        }

        return result;
    }

    private static void Fill(float[] values, ref DeterministicRandom random, float low, float high)
    {
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = low + ((high - low) * random.NextFloat());
        }
    }
}

/// <summary>A fresh folder under the system temp folder, deleted on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "clusterconv-onnx-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
