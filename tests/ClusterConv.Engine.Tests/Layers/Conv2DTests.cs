using ClusterConv.Engine.Kernels;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;
using static ClusterConv.Engine.Tests.Layers.LayerTestData;

namespace ClusterConv.Engine.Tests.Layers;

/// <summary>
/// Conv2D against the direct-loop <see cref="ConvReference"/> (tolerance 2e-5 of the largest
/// reference magnitude of each tensor), against finite differences, and across thread counts.
/// </summary>
public sealed class Conv2DTests
{
    public static TheoryData<int, int, int, Padding, bool, int> ReferenceCases()
    {
        var data = new TheoryData<int, int, int, Padding, bool, int>();
        (int R, int S)[] kernels = [(1, 1), (3, 3), (5, 5), (7, 7), (2, 3)];
        foreach (var (r, s) in kernels)
        {
            foreach (var stride in new[] { 1, 2, 3 })
            {
                foreach (var padding in new[] { Padding.Valid, Padding.Same })
                {
                    // Bias and batch alternate so every kernel/stride/padding sees both of each.
                    var useBias = (r + stride + (int)padding) % 2 == 0;
                    data.Add(r, s, stride, padding, useBias, 1);
                    data.Add(r, s, stride, padding, !useBias, 5);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ReferenceCases))]
    public void Forward_and_backward_match_the_direct_reference(int r, int s, int stride, Padding padding, bool useBias, int batch)
    {
        var input = new SampleShape(3, 11, 9);
        var layer = Build(new Conv2DSpec("conv", 4, r, s, stride, stride, padding, useBias), input, seed: r + s + stride);
        if (useBias)
        {
            Random(4, seed: 9).CopyTo(layer.Parameters[1].Value, 0);
        }

        AssertMatchesReference(layer, batch, ComputePool.Serial);
    }

    [Fact]
    public void Rectangular_strides_and_many_channels_match_the_direct_reference()
    {
        var spec = new Conv2DSpec("conv", 19, 3, 2, 2, 1, Padding.Same, true, Activation.Linear);
        var layer = Build(spec, new SampleShape(17, 10, 13), seed: 3);
        Random(19, seed: 4).CopyTo(layer.Parameters[1].Value, 0);
        using var pool = new ComputePool(2);
        AssertMatchesReference(layer, 3, pool);
    }

    [Theory]
    [InlineData("relu")]
    [InlineData("tanh")]
    [InlineData("gelu")]
    public void Fused_activation_matches_the_reference_activation_applied_after_the_convolution(string activationName)
    {
        var activation = ParseActivation(activationName);
        var spec = new Conv2DSpec("conv", 6, 3, 3, 1, 1, Padding.Same, true, activation);
        var layer = Build(spec, new SampleShape(2, 8, 7), seed: 5);
        Random(6, seed: 6).CopyTo(layer.Parameters[1].Value, 0);
        AssertMatchesReference(layer, 2, ComputePool.Serial);
    }

    [Fact]
    public void Batch_size_may_change_between_calls()
    {
        var layer = Build(new Conv2DSpec("conv", 5, 3, 3, 1, 1, Padding.Same, true, Activation.Relu), new SampleShape(2, 6, 6), seed: 8);
        foreach (var batch in new[] { 4, 1, 7, 3 })
        {
            AssertMatchesReference(layer, batch, ComputePool.Serial);
        }
    }

    [Theory]
    [InlineData(32, 13, 13, 3, 3)] // keras-cnn's conv2: Q = 11
    [InlineData(2, 10, 16, 3, 3)]  // W = 16, Q = 14
    [InlineData(3, 12, 9, 2, 2)]   // Q = 8
    [InlineData(2, 20, 20, 3, 3)]  // Q = 18: three copies per run; W = 20: col2im's general path only
    [InlineData(2, 9, 8, 3, 3)]    // Q = 6: col2im only
    public unsafe void Dense_window_im2col_and_col2im_equal_the_general_paths_bitwise(int c, int h, int w, int r, int s)
    {
        var layer = Build(new Conv2DSpec("conv", 4, r, s), new SampleShape(c, h, w), seed: 1);
        var (p, q) = (h - r + 1, w - s + 1);
        var input = Random(c * h * w, seed: 2);
        var guard = Conv2D.ColumnGuard;
        var dCol = Random((c * r * s * p * q) + (2 * guard), seed: 3); // dense col2im reads the guards, never uses them
        var (colGeneral, colDense) = (new float[dCol.Length - (2 * guard)], new float[dCol.Length - (2 * guard)]);
        var (dInputGeneral, dInputDense) = (new float[input.Length], Random(input.Length, seed: 4)); // dense overwrites every value
        fixed (float* pInput = input, pDCol = dCol, pColGeneral = colGeneral, pColDense = colDense, pDInputGeneral = dInputGeneral, pDInputDense = dInputDense)
        {
            if (q >= 8)
            {
                layer.Im2ColGeneral(pInput, pColGeneral);
                layer.Im2ColDense(pInput, pColDense);
                Assert.Equal(colGeneral, colDense);
            }

            if (w is >= 8 and <= 16)
            {
                layer.Col2ImGeneral(pDCol + guard, pDInputGeneral);
                layer.Col2ImDense(pDCol + guard, pDInputDense);
            }
            else
            {
                dInputDense.AsSpan().Clear();
            }
        }

        Assert.Equal(dInputGeneral, dInputDense);
    }

    [Fact]
    public void The_dense_window_paths_match_the_direct_reference_and_do_not_depend_on_threads()
    {
        var spec = new Conv2DSpec("conv", 7, 3, 3, Activation: Activation.Relu);
        var shape = new SampleShape(5, 13, 13);
        var layer = Build(spec, shape, seed: 11);
        Random(7, seed: 12).CopyTo(layer.Parameters[1].Value, 0);
        using var pool = new ComputePool(2);
        AssertMatchesReference(layer, 3, pool);
        var one = RunTraining(spec, shape, batch: 9, threads: 1);
        var two = RunTraining(spec, shape, batch: 9, threads: 2);
        for (var i = 0; i < one.Count; i++)
        {
            Assert.Equal(one[i], two[i]);
        }
    }

    [Fact]
    public void Results_are_bitwise_identical_for_one_two_and_three_threads()
    {
        var spec = new Conv2DSpec("conv", 24, 3, 3, 1, 1, Padding.Same, true, Activation.Relu);
        var shape = new SampleShape(16, 13, 13);
        var one = RunTraining(spec, shape, batch: 9, threads: 1);
        var two = RunTraining(spec, shape, batch: 9, threads: 2);
        var three = RunTraining(spec, shape, batch: 9, threads: 3);
        for (var i = 0; i < one.Count; i++)
        {
            Assert.Equal(one[i], two[i]);
            Assert.Equal(one[i], three[i]);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    public void Weight_gradients_summed_over_chunks_of_samples_match_the_reference_for_any_chunk_size(int chunkSamples)
    {
        var spec = new Conv2DSpec("conv", 7, 3, 3, 2, 2, Padding.Same, true, ParseActivation("elu"));
        var layer = Build(spec, new SampleShape(3, 12, 11), seed: 3);
        layer.OverrideChunkSamples(chunkSamples);
        using var pool = new ComputePool(2);
        AssertMatchesReference(layer, 5, pool);
    }

    [Fact]
    public void Weight_gradient_chunks_depend_only_on_the_batch_size()
    {
        var layer = Build(new Conv2DSpec("conv", 4, 3, 3), new SampleShape(1, 5, 5), seed: 1);
        Assert.Equal(1, layer.ChunkSamples(5));
        Assert.Equal(8, layer.ChunkSamples(64));
        Assert.Equal(9, layer.ChunkSamples(65));
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("relu")]
    [InlineData("leaky_relu")]
    [InlineData("elu")]
    [InlineData("gelu")]
    [InlineData("tanh")]
    [InlineData("sigmoid")]
    public void Gradients_match_finite_differences_for_each_fused_activation(string activationName)
    {
        var spec = new Conv2DSpec("conv", 3, 3, 3, 1, 1, Padding.Same, true, ParseActivation(activationName));
        var layer = Build(spec, new SampleShape(2, 6, 5), seed: 1);
        QuantizeParameters(layer);
        Assert.InRange(GradientCheck.MaxRelativeError(layer, batch: 2, inputInit: QuantizedInput), 0, 2e-3);
    }

    [Theory]
    [InlineData(3, 3, 2, Padding.Same, 1)]
    [InlineData(3, 3, 2, Padding.Same, 4)]
    [InlineData(5, 5, 2, Padding.Valid, 3)]
    [InlineData(2, 3, 3, Padding.Same, 2)]
    [InlineData(1, 1, 1, Padding.Valid, 3)]
    public void Gradients_match_finite_differences_for_strided_and_padded_shapes(int r, int s, int stride, Padding padding, int batch)
    {
        var spec = new Conv2DSpec("conv", 4, r, s, stride, stride, padding, true, Activation.Relu);
        var layer = Build(spec, new SampleShape(3, 9, 8), seed: 2);
        QuantizeParameters(layer);
        Assert.InRange(GradientCheck.MaxRelativeError(layer, batch, inputInit: QuantizedInput), 0, 2e-3);
    }

    [Fact]
    public void An_empty_batch_gives_zero_gradients()
    {
        var layer = Build(new Conv2DSpec("conv", 4, 3, 3, UseBias: true), new SampleShape(2, 6, 6), seed: 1);
        layer.Parameters[0].Gradient.Fill(5f);
        layer.Parameters[1].Gradient.Fill(5f);
        var input = new Tensor(0, layer.InputShape);
        var output = new Tensor(0, layer.OutputShape);
        var context = new StepContext(true, ComputePool.Serial);
        layer.Forward(output, input, context);
        layer.Backward(new Tensor(0, layer.InputShape), new Tensor(0, layer.OutputShape), input, output, context);
        Assert.All(layer.Parameters, p => Assert.All(p.Gradient.ToArray(), v => Assert.Equal(0f, v)));
    }

    [Fact]
    public void Parameters_have_keras_shapes_and_initialization()
    {
        var layer = Build(new Conv2DSpec("conv", 8, 3, 5, UseBias: true), new SampleShape(4, 10, 10), seed: 1);
        Assert.Equal(["kernel", "bias"], layer.Parameters.Select(p => p.Name));
        Assert.Equal([8, 4, 3, 5], layer.Parameters[0].Shape);
        Assert.Equal([8], layer.Parameters[1].Shape);
        var limit = Math.Sqrt(6.0 / ((4 * 3 * 5) + (8 * 3 * 5))); // Glorot uniform, fanIn = C·R·S, fanOut = K·R·S
        Assert.All(layer.Parameters[0].Value, v => Assert.InRange(Math.Abs(v), 0, limit));
        Assert.True(layer.Parameters[0].Value.Max() > 0.9 * limit);
        Assert.All(layer.Parameters[1].Value, v => Assert.Equal(0f, v));
        Assert.Equal(new SampleShape(8, 8, 6), layer.OutputShape);
    }

    [Fact]
    public void Skipping_the_input_gradient_leaves_dinput_untouched_and_weight_gradients_unchanged()
    {
        var spec = new Conv2DSpec("conv", 6, 3, 3, 1, 1, Padding.Valid, true, Activation.Relu);
        var shape = new SampleShape(1, 9, 9);
        var full = RunTraining(spec, shape, batch: 3, threads: 1);
        var layer = Build(spec, shape, seed: 1);
        Random(spec.Filters, seed: 7).CopyTo(layer.Parameters[^1].Value, 0);
        layer.ComputeInputGradient = false;
        var input = RandomTensor(3, shape, seed: 2);
        var output = new Tensor(3, layer.OutputShape);
        var context = new StepContext(true, ComputePool.Serial);
        layer.Forward(output, input, context);
        var dOutput = RandomTensor(3, layer.OutputShape, seed: 3);
        var dInput = new Tensor(3, shape);
        dInput.Span.Fill(42f);
        layer.Backward(dInput, dOutput, input, output, context);
        Assert.All(dInput.Data, v => Assert.Equal(42f, v));
        Assert.Equal(full[2], layer.Parameters[0].Gradient.ToArray());
        Assert.Equal(full[3], layer.Parameters[1].Gradient.ToArray());
    }

    private static Conv2D Build(Conv2DSpec spec, SampleShape input, int seed)
    {
        var layer = new Conv2D(spec);
        layer.Build(input);
        var random = new DeterministicRandom((ulong)seed);
        layer.Initialize(ref random);
        return layer;
    }

    // output, dInput, dKernel, dBias of one forward and backward
    private static List<float[]> RunTraining(Conv2DSpec spec, SampleShape shape, int batch, int threads)
    {
        using var pool = new ComputePool(threads);
        var layer = Build(spec, shape, seed: 1);
        Random(spec.Filters, seed: 7).CopyTo(layer.Parameters[^1].Value, 0);
        var input = RandomTensor(batch, shape, seed: 2);
        var output = new Tensor(batch, layer.OutputShape);
        var context = new StepContext(true, pool);
        layer.Forward(output, input, context);
        var dOutput = RandomTensor(batch, layer.OutputShape, seed: 3);
        var dInput = new Tensor(batch, shape);
        layer.Backward(dInput, dOutput, input, output, context);
        return [output.Span.ToArray(), dInput.Span.ToArray(), .. layer.Parameters.Select(p => p.Gradient.ToArray())];
    }

    private static void AssertMatchesReference(Conv2D layer, int batch, ComputePool pool)
    {
        var g = ConvProblem.Create(layer.Spec, layer.InputShape, batch);
        var input = RandomTensor(batch, layer.InputShape, seed: batch + 17);
        var output = new Tensor(batch, layer.OutputShape);
        var context = new StepContext(true, pool);
        layer.Forward(output, input, context);

        var weight = layer.Parameters[0].Value;
        var bias = layer.Spec.UseBias ? layer.Parameters[1].Value : [];
        var pre = new float[output.Length];
        ConvReference.Forward(g, input.Span, weight, bias, pre);
        var expected = ActivationReference(layer.Activation, pre);
        AssertClose(expected, output.Span, "output");

        var dOutput = RandomTensor(batch, layer.OutputShape, seed: batch + 23);
        var dInput = new Tensor(batch, layer.InputShape);
        layer.Backward(dInput, dOutput, input, output, context);

        var dPre = new float[pre.Length];
        ActivationFunctions.BackwardReference(layer.Activation, dPre, dOutput.Span, pre, expected);
        var dInputExpected = new float[input.Length];
        ConvReference.BackwardInput(g, dPre, weight, dInputExpected);
        AssertClose(dInputExpected, dInput.Span, "dInput");
        var dWeightExpected = new float[weight.Length];
        ConvReference.BackwardWeight(g, dPre, input.Span, dWeightExpected);
        AssertClose(dWeightExpected, layer.Parameters[0].Gradient, "dKernel");
        if (layer.Spec.UseBias)
        {
            var dBiasExpected = new float[g.K];
            ConvReference.BackwardBias(g, dPre, dBiasExpected);
            AssertClose(dBiasExpected, layer.Parameters[1].Gradient, "dBias");
        }
    }
}
