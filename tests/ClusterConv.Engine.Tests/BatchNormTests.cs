using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Tests;

public class BatchNormTests
{
    private static readonly StepContext Training = new(true, ComputePool.Serial);
    private static readonly StepContext Inference = new(false, ComputePool.Serial);

    private static BatchNorm Layer(SampleShape shape, float momentum = 0.99f, bool center = true, bool scale = true) =>
        LayerHarness.Built(new BatchNorm(new BatchNormSpec("batch_normalization", momentum, 1e-3f, center, scale)), shape);

    private static float[] Forward(BatchNorm layer, Tensor input, StepContext context)
    {
        var output = new Tensor(input.N, layer.OutputShape);
        layer.Forward(output, input, context);
        return output.Span.ToArray();
    }

    private static void SetGammaBeta(BatchNorm layer)
    {
        var c = layer.InputShape.C;
        for (var i = 0; i < c; i++)
        {
            layer.Parameters[0].Value[i] = 0.5f + (0.25f * i);
            layer.Parameters[1].Value[i] = -0.3f + (0.1f * i);
        }
    }

    [Theory]
    [InlineData(3, 5, 5, 2)]
    [InlineData(2, 3, 4, 1)]
    [InlineData(7, 1, 1, 5)]
    public void Training_gradient_matches_finite_differences(int c, int h, int w, int batch)
    {
        var layer = Layer(new SampleShape(c, h, w));
        SetGammaBeta(layer);
        var error = GradientCheck.MaxRelativeError(layer, batch, epsilon: 1e-2f);
        Assert.True(error < 2e-3, $"relative error {error}");
    }

    [Theory]
    [InlineData(3, 5, 5, 2)]
    [InlineData(7, 1, 1, 1)]
    public void Inference_gradient_matches_finite_differences(int c, int h, int w, int batch)
    {
        var layer = Layer(new SampleShape(c, h, w));
        SetGammaBeta(layer);
        layer.MovingMean.Value.AsSpan().Fill(0.2f);
        layer.MovingVariance.Value.AsSpan().Fill(0.7f);
        var error = GradientCheck.MaxRelativeError(layer, batch, training: false);
        Assert.True(error < 1e-3, $"relative error {error}");
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(false, false)]
    public void Gradient_without_center_or_scale_matches_finite_differences(bool center, bool scale)
    {
        var layer = Layer(new SampleShape(3, 4, 3), center: center, scale: scale);
        Assert.True(GradientCheck.MaxRelativeError(layer, 2) < 2e-3);
    }

    [Fact]
    public void Parameters_are_gamma_beta_moving_mean_moving_variance_initialized_as_keras_does()
    {
        var layer = Layer(new SampleShape(4, 3, 3));
        Assert.Equal(["gamma", "beta", "moving_mean", "moving_variance"], layer.Parameters.Select(p => p.Name));
        Assert.Equal([true, true, false, false], layer.Parameters.Select(p => p.Trainable));
        Assert.All(layer.Parameters, p => Assert.Equal([4], p.Shape));
        Assert.All(layer.Parameters[0].Value, v => Assert.Equal(1f, v));
        Assert.All(layer.Parameters[1].Value, v => Assert.Equal(0f, v));
        Assert.All(layer.Parameters[2].Value, v => Assert.Equal(0f, v));
        Assert.All(layer.Parameters[3].Value, v => Assert.Equal(1f, v));
        Assert.Equal(layer.Spec.ParameterCount(layer.InputShape), layer.Parameters.Sum(p => p.Length));
    }

    [Fact]
    public void Without_center_and_scale_only_the_moving_statistics_remain()
    {
        var layer = Layer(new SampleShape(4, 1, 1), center: false, scale: false);
        Assert.Equal(["moving_mean", "moving_variance"], layer.Parameters.Select(p => p.Name));
    }

    [Fact]
    public void Inference_normalizes_with_the_moving_statistics()
    {
        var layer = Layer(new SampleShape(2, 2, 2));
        SetGammaBeta(layer);
        layer.MovingMean.Value[0] = 1f;
        layer.MovingMean.Value[1] = -2f;
        layer.MovingVariance.Value[0] = 4f;
        layer.MovingVariance.Value[1] = 0.25f;
        var input = LayerHarness.Random(3, layer.InputShape, 2, 3f);
        var output = Forward(layer, input, Inference);
        for (var i = 0; i < input.Length; i++)
        {
            var c = (i / 4) % 2;
            var expected = ((input.Data[i] - layer.MovingMean.Value[c]) / Math.Sqrt(layer.MovingVariance.Value[c] + 1e-3) * layer.Parameters[0].Value[c]) + layer.Parameters[1].Value[c];
            Assert.Equal(expected, output[i], 5);
        }

        Assert.Equal([1f, -2f], layer.MovingMean.Value);
        Assert.Equal([4f, 0.25f], layer.MovingVariance.Value);
    }

    [Fact]
    public void Training_normalizes_with_the_biased_batch_variance()
    {
        var layer = Layer(new SampleShape(1, 1, 1));
        var input = new Tensor(4, layer.InputShape);
        float[] values = [1, 2, 3, 4]; // mean 2.5, biased variance 1.25
        values.CopyTo(input.Data, 0);
        var output = Forward(layer, input, Training);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal((values[i] - 2.5) / Math.Sqrt(1.25 + 1e-3), output[i], 5);
        }
    }

    [Fact]
    public void Training_updates_the_moving_statistics_as_keras_3_does()
    {
        // keras-team/keras#10443's example: momentum 0 gives exactly the batch statistics, and Keras 3
        // stores the biased variance 1.25 (tf.keras 2's fused kernel stored 1.667, Bessel-corrected).
        var layer = Layer(SampleShape.Vector(1), momentum: 0f);
        var input = new Tensor(4, layer.InputShape);
        float[] values = [1, 2, 3, 4];
        values.CopyTo(input.Data, 0);
        Forward(layer, input, Training);
        Assert.Equal(2.5f, layer.MovingMean.Value[0], 6);
        Assert.Equal(1.25f, layer.MovingVariance.Value[0], 6);

        // momentum 0.9 from (0, 1): moving = moving·0.9 + batch·0.1, per step.
        layer = Layer(SampleShape.Vector(1), momentum: 0.9f);
        Forward(layer, input, Training);
        Assert.Equal(0.25f, layer.MovingMean.Value[0], 6);
        Assert.Equal(0.9f + 0.125f, layer.MovingVariance.Value[0], 6);
        Forward(layer, input, Training);
        Assert.Equal((0.25f * 0.9f) + 0.25f, layer.MovingMean.Value[0], 6);
        Assert.Equal((1.025f * 0.9f) + 0.125f, layer.MovingVariance.Value[0], 6);
    }

    [Fact]
    public void Statistics_are_per_channel_over_batch_and_space()
    {
        var layer = Layer(new SampleShape(2, 3, 3), momentum: 0f);
        var input = LayerHarness.Random(5, layer.InputShape, 3, 2f);
        for (var c = 0; c < 2; c++)
        {
            for (var n = 0; n < 5; n++)
            {
                for (var k = 0; k < 9; k++)
                {
                    input.Data[(((n * 2) + c) * 9) + k] += 10f * c; // channel 1 shifted by 10
                }
            }
        }

        Forward(layer, input, Training);
        for (var c = 0; c < 2; c++)
        {
            var values = Enumerable.Range(0, 5).SelectMany(n => input.Data.Skip(((n * 2) + c) * 9).Take(9)).Select(v => (double)v).ToArray();
            var mean = values.Average();
            var variance = values.Select(v => (v - mean) * (v - mean)).Average();
            Assert.Equal(mean, layer.MovingMean.Value[c], 5);
            Assert.Equal(variance, layer.MovingVariance.Value[c], 5);
        }
    }
}
