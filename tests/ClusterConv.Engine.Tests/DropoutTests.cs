using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Tests;

public class DropoutTests
{
    private static readonly SampleShape Shape = new(4, 5, 5);

    private static Dropout Layer(float rate) => LayerHarness.Built(new Dropout(new DropoutSpec("dropout", rate)), Shape, index: 6);

    private static float[] Forward(Dropout layer, Tensor input, StepContext context)
    {
        var output = new Tensor(input.N, layer.OutputShape);
        layer.Forward(output, input, context);
        return output.Span.ToArray();
    }

    [Fact]
    public void Mask_is_reproducible_from_seed_epoch_and_sample_index()
    {
        var layer = Layer(0.5f);
        var input = LayerHarness.Random(3, Shape, 1);
        var context = new StepContext(true, ComputePool.Serial, Seed: 42, Epoch: 2, SampleIndices: [10, 11, 12]);
        var first = Forward(layer, input, context);
        Assert.Equal(first, Forward(layer, input, context with { }));
        Assert.NotEqual(first, Forward(layer, input, context with { Epoch = 3 }));
        Assert.NotEqual(first, Forward(layer, input, context with { Seed = 43 }));
    }

    [Fact]
    public void Mask_of_a_sample_does_not_depend_on_its_position_in_the_batch()
    {
        var layer = Layer(0.5f);
        var ones = new Tensor(3, Shape);
        ones.Span.Fill(1f);
        var a = Forward(layer, ones, new StepContext(true, ComputePool.Serial, Seed: 9, SampleIndices: [5, 9, 2]));
        var b = Forward(layer, ones, new StepContext(true, ComputePool.Serial, Seed: 9, SampleIndices: [9, 2, 5]));
        var size = Shape.Size;
        Assert.Equal(a.AsSpan(0, size).ToArray(), b.AsSpan(2 * size, size).ToArray()); // sample 5
        Assert.Equal(a.AsSpan(size, size).ToArray(), b.AsSpan(0, size).ToArray()); // sample 9
    }

    [Fact]
    public void Training_drops_the_rate_of_elements_and_scales_the_rest()
    {
        const float Rate = 0.3f;
        var layer = Layer(Rate);
        var ones = new Tensor(2000, Shape);
        ones.Span.Fill(1f);
        var output = Forward(layer, ones, new StepContext(true, ComputePool.Serial, Seed: 1));
        var dropped = output.Count(v => v == 0f);
        Assert.InRange(dropped / (double)output.Length, Rate - 0.005, Rate + 0.005); // 200k draws: sd 0.001
        Assert.All(output.Where(v => v != 0f), v => Assert.Equal(1f / (1f - Rate), v));
    }

    [Fact]
    public void Inference_is_the_identity()
    {
        var layer = Layer(0.5f);
        var input = LayerHarness.Random(3, Shape, 1);
        var (output, dInput) = LayerHarness.Run(layer, input, new StepContext(false, ComputePool.Serial, Seed: 3), seed: 8);
        Assert.Equal(input.Span.ToArray(), output.Span.ToArray());
        Assert.Equal(LayerHarness.Random(3, Shape, 8).Span.ToArray(), dInput.Span.ToArray());
    }

    [Fact]
    public void Backward_applies_the_forward_mask_and_scale()
    {
        var layer = Layer(0.25f);
        var ones = new Tensor(4, Shape);
        ones.Span.Fill(1f);
        var context = new StepContext(true, ComputePool.Serial, Seed: 5);
        var (output, dInput) = LayerHarness.Run(layer, ones, context, seed: 6);
        var dOutput = LayerHarness.Random(4, Shape, 6);
        for (var i = 0; i < output.Length; i++)
        {
            Assert.Equal(output.Data[i] * dOutput.Data[i], dInput.Data[i]);
        }
    }

    [Fact]
    public void Dropout_gradient_matches_finite_differences()
    {
        foreach (var batch in new[] { 1, 3 })
        {
            Assert.True(GradientCheck.MaxRelativeError(Layer(0.4f), batch) < 1e-3);
        }
    }
}
