using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;
using static ClusterConv.Engine.Tests.Layers.LayerTestData;

namespace ClusterConv.Engine.Tests.Layers;

/// <summary>Dense against plain loops in double (tolerance 2e-5 of the largest magnitude), finite differences, thread counts.</summary>
public sealed class DenseTests
{
    [Theory]
    [InlineData("linear", true, 1)]
    [InlineData("relu", true, 7)]
    [InlineData("sigmoid", false, 64)]
    [InlineData("gelu", true, 3)]
    public void Forward_and_backward_match_plain_loops(string activationName, bool useBias, int batch)
    {
        const int inputs = 37, units = 21;
        var layer = Build(new DenseSpec("dense", units, useBias, ParseActivation(activationName)), inputs, seed: 4);
        if (useBias)
        {
            Random(units, seed: 5).CopyTo(layer.Parameters[1].Value, 0);
        }

        var input = RandomTensor(batch, layer.InputShape, seed: 6);
        var output = new Tensor(batch, layer.OutputShape);
        using var pool = new ComputePool(2);
        var context = new StepContext(true, pool);
        layer.Forward(output, input, context);

        var w = layer.Parameters[0].Value;
        var pre = new float[batch * units];
        for (var n = 0; n < batch; n++)
        {
            for (var u = 0; u < units; u++)
            {
                double sum = useBias ? layer.Parameters[1].Value[u] : 0;
                for (var i = 0; i < inputs; i++)
                {
                    sum += (double)input.Span[(n * inputs) + i] * w[(u * inputs) + i];
                }

                pre[(n * units) + u] = (float)sum;
            }
        }

        var expected = ActivationReference(layer.Activation, pre);
        AssertClose(expected, output.Span, "output");

        var dOutput = RandomTensor(batch, layer.OutputShape, seed: 7);
        var dInput = new Tensor(batch, layer.InputShape);
        layer.Backward(dInput, dOutput, input, output, context);
        var dPre = new float[pre.Length];
        ActivationFunctions.BackwardReference(layer.Activation, dPre, dOutput.Span, pre, expected);
        var dInputExpected = new float[batch * inputs];
        var dWeightExpected = new float[units * inputs];
        var dBiasExpected = new float[units];
        for (var n = 0; n < batch; n++)
        {
            for (var u = 0; u < units; u++)
            {
                var d = dPre[(n * units) + u];
                dBiasExpected[u] += d;
                for (var i = 0; i < inputs; i++)
                {
                    dInputExpected[(n * inputs) + i] += d * w[(u * inputs) + i];
                    dWeightExpected[(u * inputs) + i] += d * input.Span[(n * inputs) + i];
                }
            }
        }

        AssertClose(dInputExpected, dInput.Span, "dInput");
        AssertClose(dWeightExpected, layer.Parameters[0].Gradient, "dKernel");
        if (useBias)
        {
            AssertClose(dBiasExpected, layer.Parameters[1].Gradient, "dBias");
        }
    }

    [Theory]
    [InlineData("linear", 1)]
    [InlineData("relu", 4)]
    [InlineData("leaky_relu", 3)]
    [InlineData("elu", 2)]
    [InlineData("gelu", 2)]
    [InlineData("tanh", 5)]
    [InlineData("sigmoid", 1)]
    public void Gradients_match_finite_differences(string activationName, int batch)
    {
        var layer = Build(new DenseSpec("dense", 7, true, ParseActivation(activationName)), 13, seed: 1);
        QuantizeParameters(layer);
        Assert.InRange(GradientCheck.MaxRelativeError(layer, batch, inputInit: QuantizedInput), 0, 2e-3);
    }

    [Fact]
    public void Results_are_bitwise_identical_for_one_two_and_three_threads()
    {
        List<float[]> Run(int threads)
        {
            using var pool = new ComputePool(threads);
            var layer = Build(new DenseSpec("dense", 128, true, Activation.Relu), 1600, seed: 2);
            var input = RandomTensor(64, layer.InputShape, seed: 3);
            var output = new Tensor(64, layer.OutputShape);
            var context = new StepContext(true, pool);
            layer.Forward(output, input, context);
            var dOutput = RandomTensor(64, layer.OutputShape, seed: 4);
            var dInput = new Tensor(64, layer.InputShape);
            layer.Backward(dInput, dOutput, input, output, context);
            return [output.Span.ToArray(), dInput.Span.ToArray(), .. layer.Parameters.Select(p => p.Gradient.ToArray())];
        }

        var one = Run(1);
        var two = Run(2);
        var three = Run(3);
        for (var i = 0; i < one.Count; i++)
        {
            Assert.Equal(one[i], two[i]);
            Assert.Equal(one[i], three[i]);
        }
    }

    [Fact]
    public void Parameters_have_keras_shapes_and_initialization()
    {
        var layer = Build(new DenseSpec("dense", 10, KernelInitializer: Initializer.HeUniform), 50, seed: 1);
        Assert.Equal([10, 50], layer.Parameters[0].Shape);
        Assert.Equal([10], layer.Parameters[1].Shape);
        var limit = Math.Sqrt(6.0 / 50);
        Assert.All(layer.Parameters[0].Value, v => Assert.InRange(Math.Abs(v), 0, limit));
        Assert.All(layer.Parameters[1].Value, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void A_non_vector_input_is_rejected_naming_the_layer()
    {
        var layer = new Dense(new DenseSpec("dense_7", 10));
        var error = Assert.Throws<ModelException>(() => layer.Build(new SampleShape(3, 4, 4)));
        Assert.Contains("dense_7", error.Message, StringComparison.Ordinal);
    }

    private static Dense Build(DenseSpec spec, int inputs, int seed)
    {
        var layer = new Dense(spec);
        layer.Build(SampleShape.Vector(inputs));
        var random = new DeterministicRandom((ulong)seed);
        layer.Initialize(ref random);
        return layer;
    }
}
