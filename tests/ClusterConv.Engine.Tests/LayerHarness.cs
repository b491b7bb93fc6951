using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Tests;

/// <summary>Small helpers for the non-convolution layer tests: build a layer, fill tensors, run it.</summary>
internal static class LayerHarness
{
    public static TLayer Built<TLayer>(TLayer layer, SampleShape input, int index = 3)
        where TLayer : Layer
    {
        layer.Index = index;
        layer.Build(input);
        var random = new DeterministicRandom(11);
        layer.Initialize(ref random);
        return layer;
    }

    public static Tensor Random(int n, SampleShape shape, ulong seed, float scale = 1f)
    {
        var t = new Tensor(n, shape);
        var random = new DeterministicRandom(seed);
        var span = t.Span;
        for (var i = 0; i < span.Length; i++)
        {
            span[i] = ((random.NextFloat() * 2f) - 1f) * scale;
        }

        return t;
    }

    public static float[] RandomArray(int length, ulong seed, float scale = 1f)
    {
        var values = new float[length];
        var random = new DeterministicRandom(seed);
        for (var i = 0; i < length; i++)
        {
            values[i] = ((random.NextFloat() * 2f) - 1f) * scale;
        }

        return values;
    }

    /// <summary>Distinct values in (-1, 1) with gaps of 2/length, no two close: keeps max pooling clear of ties for finite differences.</summary>
    public static Func<int, float> Distinct(int length) => i => ((((i * 7919L) + 13) % length) + 0.5f) / length * 2f - 1f;

    /// <summary>Values at least 0.05 away from 0, to keep clear of relu's kink.</summary>
    public static float AwayFromZero(int i) => ((((i * 37) % 19) - 9) / 10f) + 0.05f;

    /// <summary>Forward then backward with dOutput = R (seeded); returns (output, dInput).</summary>
    public static (Tensor Output, Tensor DInput) Run(Layer layer, Tensor input, StepContext context, ulong seed = 5)
    {
        var output = new Tensor(input.N, layer.OutputShape);
        layer.Forward(output, input, context);
        var dOutput = Random(input.N, layer.OutputShape, seed);
        var dInput = new Tensor(input.N, layer.InputShape);
        layer.Backward(dInput, dOutput, input, output, context);
        return (output, dInput);
    }
}
