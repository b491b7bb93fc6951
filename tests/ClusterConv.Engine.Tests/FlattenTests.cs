using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Tests;

public class FlattenTests
{
    [Fact]
    public void Flatten_keeps_channel_major_order_and_outputs_a_vector()
    {
        var layer = LayerHarness.Built(new Flatten(new FlattenSpec("flatten")), new SampleShape(2, 3, 2));
        Assert.Equal(SampleShape.Vector(12), layer.OutputShape);
        var input = LayerHarness.Random(3, layer.InputShape, 4);
        var (output, dInput) = LayerHarness.Run(layer, input, new StepContext(true, ComputePool.Serial));
        Assert.Equal(input.Span.ToArray(), output.Span.ToArray());
        Assert.Equal(LayerHarness.Random(3, layer.OutputShape, 5).Span.ToArray(), dInput.Span.ToArray());
    }

    [Fact]
    public void Flatten_gradient_matches_finite_differences()
    {
        var layer = LayerHarness.Built(new Flatten(new FlattenSpec("flatten")), new SampleShape(3, 5, 5));
        Assert.True(GradientCheck.MaxRelativeError(layer, 2) < 1e-3);
    }
}
