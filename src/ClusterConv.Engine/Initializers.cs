using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine;

/// <summary>Keras-style weight initializers, driven by a seeded generator so initial weights are reproducible.</summary>
public static class Initializers
{
    // Keras' normal initializers draw from a normal truncated at 2 standard deviations; this factor
    // restores the intended variance after truncation (stddev of N(0,1) truncated to [-2, 2]).
    private const double TruncatedStdCorrection = 0.87962566103423978;

    public static void Fill(Span<float> values, Initializer initializer, int fanIn, int fanOut, ref DeterministicRandom random)
    {
        switch (initializer)
        {
            case Initializer.Zeros:
                values.Clear();
                break;
            case Initializer.Ones:
                values.Fill(1f);
                break;
            case Initializer.GlorotUniform:
                Uniform(values, Math.Sqrt(6.0 / (fanIn + fanOut)), ref random);
                break;
            case Initializer.HeUniform:
                Uniform(values, Math.Sqrt(6.0 / fanIn), ref random);
                break;
            case Initializer.GlorotNormal:
                TruncatedNormal(values, Math.Sqrt(2.0 / (fanIn + fanOut)) / TruncatedStdCorrection, ref random);
                break;
            case Initializer.HeNormal:
                TruncatedNormal(values, Math.Sqrt(2.0 / fanIn) / TruncatedStdCorrection, ref random);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(initializer), initializer, "unknown initializer");
        }
    }

    private static void Uniform(Span<float> values, double limit, ref DeterministicRandom random)
    {
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)(((random.NextDouble() * 2.0) - 1.0) * limit);
        }
    }

    private static void TruncatedNormal(Span<float> values, double stddev, ref DeterministicRandom random)
    {
        for (var i = 0; i < values.Length; i++)
        {
            double z;
            do
            {
                z = random.NextGaussian();
            }
            while (Math.Abs(z) > 2.0);
            values[i] = (float)(z * stddev);
        }
    }
}
