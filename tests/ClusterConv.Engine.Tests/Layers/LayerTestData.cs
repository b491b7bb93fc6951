using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Tests.Layers;

/// <summary>Inputs, weights and helpers shared by the Conv2D and Dense tests.</summary>
internal static class LayerTestData
{
    public static readonly string[] ActivationNames = ["linear", "relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"];

    public static Activation ParseActivation(string name) => Activation.TryParse(name) ?? throw new ArgumentException(name);

    public static float[] Random(int length, int seed, float scale = 1f)
    {
        var random = new DeterministicRandom((ulong)seed);
        var values = new float[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = ((random.NextFloat() * 2f) - 1f) * scale;
        }

        return values;
    }

    public static Tensor RandomTensor(int n, SampleShape shape, int seed)
    {
        var tensor = new Tensor(n, shape);
        Random(tensor.Length, seed).CopyTo(tensor.Span);
        return tensor;
    }

    /// <summary>
    /// A multiple of 1/4 in [-1, 1]. With kernels on multiples of 1/8 in [-1/2, 1/2] and every bias
    /// 1/64, each pre-activation is exact and at least 1/64 from zero, farther than a finite-difference
    /// step of 1e-2 can move it: the check never straddles ReLU's kink.
    /// </summary>
    public static float QuantizedInput(int i) => ((((i * 37) + 11) % 9) - 4) / 4f;

    public static void QuantizeParameters(Layer layer)
    {
        foreach (var parameter in layer.Parameters)
        {
            var values = parameter.Value;
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = parameter.Name == "bias" ? 1f / 64 : ((((i * 29) + 5) % 9) - 4) / 8f;
            }
        }
    }

    /// <summary>output = f(pre) and dPre = dOutput · f'(pre), by the scalar reference.</summary>
    public static float[] ActivationReference(Activation activation, float[] pre)
    {
        var output = new float[pre.Length];
        ActivationFunctions.ForwardReference(activation, output, pre);
        return output;
    }

    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what, double relative = 2e-5)
    {
        Assert.Equal(expected.Length, actual.Length);
        double largest = 0;
        foreach (var value in expected)
        {
            largest = Math.Max(largest, Math.Abs(value));
        }

        var tolerance = (relative * largest) + 1e-6;
        for (var i = 0; i < expected.Length; i++)
        {
            var difference = Math.Abs(expected[i] - actual[i]);
            Assert.True(difference <= tolerance, $"{what}[{i}]: expected {expected[i]}, got {actual[i]} (tolerance {tolerance:G3})");
        }
    }
}
