using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Tests;

public class Pool2DTests
{
    private static readonly StepContext Inference = new(false, ComputePool.Serial);

    // (kind, pool, stride, padding, input shape) covering odd sizes, stride 2, overlap and same padding.
    public static TheoryData<PoolKind, int, int, int, int, Padding, int, int, int> Configurations => new()
    {
        { PoolKind.Max, 2, 2, 2, 2, Padding.Valid, 2, 6, 6 },
        { PoolKind.Max, 2, 2, 2, 2, Padding.Valid, 2, 9, 26 }, // the AVX 2x2 path: 8 outputs per step and a tail
        { PoolKind.Max, 2, 2, 2, 2, Padding.Valid, 1, 4, 35 },
        { PoolKind.Max, 2, 2, 2, 2, Padding.Valid, 2, 11, 11 }, // 4-wide steps, the last overlapping; odd row and column
        { PoolKind.Max, 2, 2, 2, 2, Padding.Valid, 1, 8, 9 },
        { PoolKind.Max, 2, 2, 2, 2, Padding.Valid, 1, 7, 15 },
        { PoolKind.Max, 3, 3, 2, 2, Padding.Same, 2, 7, 5 },
        { PoolKind.Max, 3, 3, 1, 1, Padding.Same, 1, 5, 5 },
        { PoolKind.Max, 2, 3, 1, 2, Padding.Valid, 3, 5, 7 },
        { PoolKind.Average, 2, 2, 2, 2, Padding.Valid, 2, 6, 6 },
        { PoolKind.Average, 3, 3, 2, 2, Padding.Same, 2, 7, 5 },
        { PoolKind.Average, 3, 3, 1, 1, Padding.Same, 1, 5, 5 },
        { PoolKind.Average, 2, 3, 1, 2, Padding.Valid, 3, 5, 7 },
    };

    private static Pool2D Layer(PoolKind kind, int ph, int pw, int sh, int sw, Padding padding, SampleShape shape) =>
        LayerHarness.Built(new Pool2D(new Pool2DSpec("pool", kind, ph, pw, sh, sw, padding)), shape);

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Gradient_matches_finite_differences(PoolKind kind, int ph, int pw, int sh, int sw, Padding padding, int c, int h, int w)
    {
        var shape = new SampleShape(c, h, w);
        foreach (var batch in new[] { 1, 3 })
        {
            var layer = Layer(kind, ph, pw, sh, sw, padding, shape);
            var error = GradientCheck.MaxRelativeError(layer, batch, epsilon: 1e-3f, inputInit: LayerHarness.Distinct(batch * shape.Size));
            Assert.True(error < 1e-3, $"batch {batch}: relative error {error}");
        }
    }

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Forward_and_backward_equal_the_plain_reference(PoolKind kind, int ph, int pw, int sh, int sw, Padding padding, int c, int h, int w)
    {
        var shape = new SampleShape(c, h, w);
        var layer = Layer(kind, ph, pw, sh, sw, padding, shape);
        var input = LayerHarness.Random(4, shape, 21);
        var (output, dInput) = LayerHarness.Run(layer, input, Inference, seed: 22);
        var expected = new float[output.Length];
        Pool2D.ForwardReference(layer.Spec, expected, input.Span, 4, shape);
        ActivationFunctionTests.AssertClose(expected, output.Span.ToArray(), 0f, "forward");
        var dOutput = LayerHarness.Random(4, layer.OutputShape, 22);
        var expectedDInput = new float[input.Length];
        Pool2D.BackwardReference(layer.Spec, expectedDInput, dOutput.Span, input.Span, 4, shape);
        ActivationFunctionTests.AssertClose(expectedDInput, dInput.Span.ToArray(), 0f, "backward");
    }

    [Fact]
    public void Max_pooling_takes_the_largest_value_of_each_window()
    {
        var layer = Layer(PoolKind.Max, 2, 2, 2, 2, Padding.Valid, new SampleShape(1, 4, 4));
        var input = new Tensor(1, 1, 4, 4);
        float[] values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        values.CopyTo(input.Data, 0);
        var output = new Tensor(1, layer.OutputShape);
        layer.Forward(output, input, Inference);
        Assert.Equal([6f, 8f, 14f, 16f], output.Span.ToArray());
    }

    [Fact]
    public void Average_pooling_with_same_padding_divides_by_the_count_of_real_inputs()
    {
        // 3x3 input 1..9, pool 2x2 stride 2 same: windows rows {0,1},{2} and cols {0,1},{2}, nothing padded before.
        var layer = Layer(PoolKind.Average, 2, 2, 2, 2, Padding.Same, new SampleShape(1, 3, 3));
        var input = new Tensor(1, 1, 3, 3);
        float[] values = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        values.CopyTo(input.Data, 0);
        var output = new Tensor(1, layer.OutputShape);
        layer.Forward(output, input, Inference);
        Assert.Equal([3f, 4.5f, 7.5f, 9f], output.Span.ToArray());
    }

    [Fact]
    public void Same_padding_puts_the_smaller_half_of_the_padding_before_as_tensorflow_does()
    {
        // Width 4, pool 4, stride 1, same: 3 padded columns, 1 before and 2 after. Row of 1, 10, 100, 1000:
        // window 0 covers columns [-1, 3) = 1 + 10 + 100 over 3 real inputs.
        var layer = Layer(PoolKind.Average, 1, 4, 1, 1, Padding.Same, new SampleShape(1, 1, 4));
        var input = new Tensor(1, 1, 1, 4);
        float[] values = [1, 10, 100, 1000];
        values.CopyTo(input.Data, 0);
        var output = new Tensor(1, layer.OutputShape);
        layer.Forward(output, input, Inference);
        Assert.Equal([111f / 3, 1111f / 4, 1110f / 3, 1100f / 2], output.Span.ToArray());
    }

    [Fact]
    public void Max_backward_routes_the_gradient_to_the_first_maximum_on_ties()
    {
        var layer = Layer(PoolKind.Max, 2, 2, 2, 2, Padding.Valid, new SampleShape(1, 2, 2));
        var input = new Tensor(1, 1, 2, 2);
        float[] values = [1, 3, 3, 3];
        values.CopyTo(input.Data, 0);
        var output = new Tensor(1, layer.OutputShape);
        layer.Forward(output, input, Inference);
        var dOutput = new Tensor(1, layer.OutputShape);
        dOutput.Data[0] = 5f;
        var dInput = new Tensor(1, layer.InputShape);
        layer.Backward(dInput, dOutput, input, output, Inference);
        Assert.Equal([0f, 5f, 0f, 0f], dInput.Span.ToArray());
    }

    [Theory]
    [InlineData(37)] // 8-wide steps
    [InlineData(11)] // 4-wide steps
    public void The_vector_2x2_path_treats_ties_signed_zeros_and_nan_as_the_reference_does(int width)
    {
        var shape = new SampleShape(3, 7, width);
        var layer = Layer(PoolKind.Max, 2, 2, 2, 2, Padding.Valid, shape);
        var input = new Tensor(2, shape);
        var random = new DeterministicRandom(17);
        float[] specials = [float.NaN, 0f, -0f, 1f, 1f, -1f, float.PositiveInfinity, float.NegativeInfinity];
        foreach (ref var v in input.Span)
        {
            v = specials[random.NextInt(specials.Length)];
        }

        var (output, dInput) = LayerHarness.Run(layer, input, Inference, seed: 5);
        var expected = new float[output.Length];
        Pool2D.ForwardReference(layer.Spec, expected, input.Span, 2, shape);
        ActivationFunctionTests.AssertClose(expected, output.Span.ToArray(), 0f, "forward");
        var expectedDInput = new float[input.Length];
        Pool2D.BackwardReference(layer.Spec, expectedDInput, LayerHarness.Random(2, layer.OutputShape, 5).Span, input.Span, 2, shape);
        ActivationFunctionTests.AssertClose(expectedDInput, dInput.Span.ToArray(), 0f, "backward");
    }

    [Fact]
    public void Max_pooling_treats_ties_signed_zeros_and_nan_as_the_reference_does()
    {
        var shape = new SampleShape(1, 4, 6);
        var layer = Layer(PoolKind.Max, 2, 2, 2, 2, Padding.Valid, shape);
        var input = new Tensor(1, shape);
        float[] values =
        [
            float.NaN, 1, -0f, 0f, 2, 2,
            3, 2, 0f, -0f, 2, 2,
            1, float.NaN, -1, -1, 5, float.NaN,
            0.5f, 1, -1, -2, float.NaN, 5,
        ];
        values.CopyTo(input.Data, 0);
        var (output, dInput) = LayerHarness.Run(layer, input, Inference, seed: 3);
        var expected = new float[output.Length];
        Pool2D.ForwardReference(layer.Spec, expected, input.Span, 1, shape);
        ActivationFunctionTests.AssertClose(expected, output.Span.ToArray(), 0f, "forward");
        var expectedDInput = new float[input.Length];
        Pool2D.BackwardReference(layer.Spec, expectedDInput, LayerHarness.Random(1, layer.OutputShape, 3).Span, input.Span, 1, shape);
        ActivationFunctionTests.AssertClose(expectedDInput, dInput.Span.ToArray(), 0f, "backward");
    }

    [Fact]
    public void Batch_size_can_change_between_calls()
    {
        var shape = new SampleShape(2, 6, 6);
        var layer = Layer(PoolKind.Max, 2, 2, 2, 2, Padding.Valid, shape);
        var output = new Tensor(5, layer.OutputShape);
        var big = LayerHarness.Random(5, shape, 1);
        layer.Forward(output, big, Inference);
        var small = LayerHarness.Random(2, shape, 2);
        layer.Forward(output, small, Inference);
        Assert.Equal(2, output.N);
        var expected = new float[output.Length];
        Pool2D.ForwardReference(layer.Spec, expected, small.Span, 2, shape);
        Assert.Equal(expected, output.Span.ToArray());
    }
}
