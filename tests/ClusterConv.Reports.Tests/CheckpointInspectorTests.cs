using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Reports.Tests;

public sealed class CheckpointInspectorTests
{
    [Fact]
    public void Feature_maps_are_taken_before_and_after_the_activation_also_when_a_batch_norm_stands_between()
    {
        var spec = new ModelSpec("bn-cnn", new SampleShape(1, 28, 28),
        [
            new Conv2DSpec("conv2d", 4, 3, 3),
            new BatchNormSpec("batch_normalization"),
            new ActivationSpec("re_lu", Activation.Relu, "ReLU"),
            new Conv2DSpec("conv2d_1", 4, 3, 3, Activation: Activation.Relu),
            new FlattenSpec("flatten"),
            new DenseSpec("dense", 10),
        ]);
        var model = new Model(spec);
        model.Initialize(1);
        var checkpoint = ModelCheckpoint.Capture(model, 0, 0, InputNormalization.Scale);
        var test = SyntheticDataset.Generate(1, 0, 20).Test;
        var trace = Assert.Single(CheckpointInspector.Trace(checkpoint, test, [3]));

        Assert.Equal(["conv2d", "conv2d_1"], trace.Layers.Select(l => l.Layer));
        Assert.Equal("relu (after BatchNormalization)", trace.Layers[0].Activation);
        Assert.Equal("relu", trace.Layers[1].Activation);
        foreach (var maps in trace.Layers)
        {
            Assert.NotNull(maps.After);
            Assert.Contains(maps.Before, v => v < 0);
            Assert.DoesNotContain(maps.After!, v => v < 0);
        }

        // The fused activation split into its own layer: after = relu(before), exactly.
        var second = trace.Layers[1];
        Assert.Equal(second.Before.Select(v => Math.Max(v, 0f)), second.After!);
    }
}
