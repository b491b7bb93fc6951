using ClusterConv.Engine;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;
using ClusterConv.Engine.Statistics;

namespace ClusterConv.Engine.Tests;

public class ModelTests
{
    private static ModelSpec SmallCnn(Activation activation) => new(
        "small",
        new SampleShape(1, 12, 12),
        [
            new Conv2DSpec("conv2d", 8, 3, 3, Activation: activation, KernelInitializer: Initializer.HeUniform),
            new Pool2DSpec("max_pooling2d", PoolKind.Max, 2, 2, 2, 2),
            new FlattenSpec("flatten"),
            new DenseSpec("dense", 10),
        ]);

    private static Tensor RandomInput(int n, SampleShape shape, ulong seed)
    {
        var t = new Tensor(n, shape);
        var random = new DeterministicRandom(seed);
        foreach (ref var v in t.Span)
        {
            v = random.NextFloat();
        }

        return t;
    }

    private static (string Sha, float[] Gradients) OneStep(int threads)
    {
        using var pool = new ComputePool(threads);
        var model = new Model(SmallCnn(Activation.Relu));
        model.Initialize(42);
        var input = RandomInput(9, model.InputShape, 5);
        var context = new StepContext(true, pool, 42);
        var logits = model.Forward(input, context);
        var dLogits = logits.Span.ToArray();
        model.Backward(dLogits, context);
        var gradients = new float[model.TrainableParameterCount];
        model.CopyGradientsTo(gradients);
        return (model.WeightsSha256(), gradients);
    }

    [Fact]
    public void Forward_and_backward_are_bitwise_identical_for_any_thread_count()
    {
        var (sha1, g1) = OneStep(1);
        var (sha2, g2) = OneStep(2);
        var (sha3, g3) = OneStep(3);
        Assert.Equal(sha1, sha2);
        Assert.Equal(sha1, sha3);
        Assert.Equal(g1, g2);
        Assert.Equal(g1, g3);
    }

    [Fact]
    public void Gradients_bound_to_a_flat_vector_are_written_there_as_copied_and_unbound_again()
    {
        var (_, copied) = OneStep(2);
        using var pool = new ComputePool(2);
        var model = new Model(SmallCnn(Activation.Relu));
        model.Initialize(42);
        var input = RandomInput(9, model.InputShape, 5);
        var context = new StepContext(true, pool, 42);
        var dLogits = model.Forward(input, context).Span.ToArray();

        // Room after the gradients (a worker's leaf also holds moving statistics there): left alone.
        var flat = new float[model.TrainableParameterCount + 3];
        flat.AsSpan(model.TrainableParameterCount).Fill(7f);
        model.BindGradients(flat);
        model.Backward(dLogits, context);
        Assert.Equal(copied, flat[..model.TrainableParameterCount]);
        Assert.All(flat[model.TrainableParameterCount..], v => Assert.Equal(7f, v));

        // Unbound, backward writes the parameters' own buffers and leaves the flat vector as it was.
        model.BindGradients(null);
        flat.AsSpan().Clear();
        model.Backward(dLogits, context);
        Assert.All(flat, v => Assert.Equal(0f, v));
        var own = new float[model.TrainableParameterCount];
        model.CopyGradientsTo(own);
        Assert.Equal(copied, own);
        Assert.Throws<ArgumentException>(() => model.BindGradients(new float[model.TrainableParameterCount - 1]));
    }

    [Theory]
    [InlineData(20)] // pooled widths 9 (8-wide steps, the last overlapping) and 3 (scalar)
    [InlineData(14)] // 6 (4-wide steps) and 2
    public void Conv_relu_and_max_pooling_fused_give_the_unfused_outputs_and_gradients_bitwise(int size)
    {
        var spec = new ModelSpec(
            "fused",
            new SampleShape(2, size, size),
            [
                new Conv2DSpec("conv2d", 6, 3, 3, Activation: Activation.Relu),
                new Pool2DSpec("max_pooling2d", PoolKind.Max, 2, 2, 2, 2),
                new Conv2DSpec("conv2d_1", 5, 3, 3, Activation: Activation.Relu),
                new Pool2DSpec("max_pooling2d_1", PoolKind.Max, 2, 2, 2, 2),
                new FlattenSpec("flatten"),
                new DenseSpec("dense", 4),
            ]);
        var fused = new Model(spec);
        var plain = new Model(spec);
        Assert.True(((Conv2D)fused.Layers[0]).GradientArrivesMasked && ((Pool2D)fused.Layers[1]).MasksByPositiveMax);
        Assert.True(((Conv2D)fused.Layers[2]).GradientArrivesMasked && ((Pool2D)fused.Layers[3]).MasksByPositiveMax);
        foreach (var i in new[] { 0, 2 })
        {
            ((Conv2D)plain.Layers[i]).GradientArrivesMasked = false;
            ((Pool2D)plain.Layers[i + 1]).MasksByPositiveMax = false;
        }

        var forwardOutputs = new List<float[]>();

        // layerByLayer: each layer's own Backward with the model's flags (the pooling masks, the
        // convolution skips its relu backward) instead of Model.Backward's fused pair.
        float[] Gradients(Model model, bool layerByLayer = false, bool withoutCodes = false)
        {
            model.Initialize(7);
            var context = new StepContext(true, ComputePool.Serial);
            var input = RandomInput(3, spec.Input, 8);
            foreach (ref var v in input.Span)
            {
                v -= 0.5f; // many negative pre-activations: relu zeros and all-zero windows
            }

            var logits = model.Forward(input, context);
            forwardOutputs.Add(logits.Span.ToArray());
            if (withoutCodes)
            {
                // a plain pooling forward (same values) drops the window codes: the fused backward rereads the input
                foreach (var i in new[] { 1, 3 })
                {
                    model.Layers[i].Forward(model.LayerOutput(i), model.LayerOutput(i - 1), context);
                }
            }

            if (layerByLayer)
            {
                var dOutput = new Tensor(3, logits.Shape);
                logits.Span.CopyTo(dOutput.Span);
                for (var i = model.Layers.Count - 1; i >= 0; i--)
                {
                    var dInput = new Tensor(3, model.Layers[i].InputShape);
                    model.Layers[i].Backward(dInput, dOutput, i == 0 ? input : model.LayerOutput(i - 1), model.LayerOutput(i), context);
                    dOutput = dInput;
                }
            }
            else
            {
                model.Backward(logits.Span.ToArray(), context);
            }

            var gradients = new float[model.TrainableParameterCount];
            model.CopyGradientsTo(gradients);
            return gradients;
        }

        var expected = Gradients(plain);
        Assert.Contains(expected, g => g != 0f);
        Assert.Equal(expected, Gradients(fused));
        Assert.Equal(expected, Gradients(fused, layerByLayer: true));
        Assert.Equal(expected, Gradients(fused, withoutCodes: true));
        Assert.Equal(forwardOutputs[0], forwardOutputs[1]); // the forward pooled inside the convolution
        Assert.Equal(plain.LayerOutput(1).Span.ToArray(), fused.LayerOutput(1).Span.ToArray());
    }

    [Fact]
    public void The_same_seed_gives_the_same_weights_and_another_seed_different_ones()
    {
        var a = new Model(SmallCnn(Activation.Relu));
        var b = new Model(SmallCnn(Activation.Relu));
        var c = new Model(SmallCnn(Activation.Relu));
        a.Initialize(1);
        b.Initialize(1);
        c.Initialize(2);
        Assert.Equal(a.WeightsSha256(), b.WeightsSha256());
        Assert.NotEqual(a.WeightsSha256(), c.WeightsSha256());
    }

    [Fact]
    public void Parameters_round_trip_through_a_flat_vector_in_model_order()
    {
        var model = new Model(SmallCnn(Activation.Relu));
        model.Initialize(3);
        var flat = new float[model.ParameterCount];
        model.CopyParametersTo(flat);
        Assert.Equal(model.Parameters[0].Value[0], flat[0]);
        Assert.Equal(model.Parameters[^1].Value[^1], flat[^1]);
        var other = new Model(SmallCnn(Activation.Relu));
        other.LoadParameters(flat);
        Assert.Equal(model.WeightsSha256(), other.WeightsSha256());
    }

    [Fact]
    public void Relu_sparsity_at_initialization_is_near_one_half()
    {
        var model = new Model(SmallCnn(Activation.Relu));
        model.Initialize(11);
        var collector = new FilterStatisticsCollector(model, deadWindow: 5);
        // Zero-mean inputs: with zero biases each filter's pre-activation is symmetric around zero.
        var input = RandomInput(32, model.InputShape, 8);
        foreach (ref var v in input.Span)
        {
            v -= 0.5f;
        }

        model.Forward(input, new StepContext(true, ComputePool.Serial));
        collector.ObserveActivations(0);
        collector.BeforeUpdate();
        var conv = collector.Complete()[0];
        Assert.Equal("sparsity", conv.SparsityMetric);
        Assert.InRange(conv.Sparsity.Average(), 0.35, 0.65);
        Assert.Empty(conv.DeadFilters);
    }

    [Fact]
    public void A_filter_forced_negative_is_fully_sparse_and_reported_dead_after_the_window()
    {
        var model = new Model(SmallCnn(Activation.Relu));
        model.Initialize(11);
        var kernel = model.Layers[0].Parameters[0];
        var perFilter = kernel.Length / kernel.Rows;
        kernel.Value.AsSpan(3 * perFilter, perFilter).Fill(-1f); // inputs are >= 0, so filter 3 never fires
        var collector = new FilterStatisticsCollector(model, deadWindow: 3);
        var context = new StepContext(true, ComputePool.Serial);
        for (var step = 0; step < 3; step++)
        {
            model.Forward(RandomInput(4, model.InputShape, (ulong)step), context);
            collector.ObserveActivations(step, countAll: step == 2); // cheap checks, then a full count
        }

        collector.BeforeUpdate();
        var conv = collector.Complete()[0];
        Assert.Equal(1f, conv.Sparsity[3]);
        Assert.Equal([3], conv.DeadFilters);
        Assert.Equal(0, collector.DeadSince("conv2d")[3]);
    }

    [Fact]
    public void Statistics_of_other_activations_count_non_positive_outputs_under_their_own_name()
    {
        var model = new Model(SmallCnn(new Activation(ActivationKind.Tanh)));
        model.Initialize(2);
        var collector = new FilterStatisticsCollector(model);
        model.Forward(RandomInput(4, model.InputShape, 1), new StepContext(true, ComputePool.Serial));
        collector.ObserveActivations(0);
        collector.BeforeUpdate();
        var stats = collector.Complete();
        Assert.Equal("nonpositive_fraction", stats[0].SparsityMetric);
        Assert.Equal("tanh", stats[0].Activation);
        Assert.Equal(["conv2d", "dense"], stats.Select(s => s.Layer));
    }

    [Fact]
    public void Update_ratio_is_the_relative_change_of_each_filter()
    {
        var model = new Model(SmallCnn(Activation.Relu));
        model.Initialize(4);
        var collector = new FilterStatisticsCollector(model);
        model.Forward(RandomInput(2, model.InputShape, 1), new StepContext(true, ComputePool.Serial));
        collector.ObserveActivations(0);
        collector.BeforeUpdate();
        var kernel = model.Layers[0].Parameters[0];
        var perFilter = kernel.Length / kernel.Rows;
        for (var i = 0; i < perFilter; i++)
        {
            kernel.Value[i] *= 1.1f; // filter 0 grows by 10 %, the others stay
        }

        var conv = collector.Complete()[0];
        Assert.Equal(0.1f, conv.UpdateRatio[0], 4);
        Assert.Equal(0f, conv.UpdateRatio[1]);
    }
}
