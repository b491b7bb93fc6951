using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ClusterConv.Engine;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Benchmarks;

/// <summary>
/// A whole keras-cnn training step at batch 64 (forward, softmax cross-entropy, backward, SGD) to
/// estimate samples/s. Conv2D and Dense are the engine's; max pooling, flatten, the loss and the
/// update are simple stand-ins written here (the engine's own come from the layers work), each a
/// plain loop, parallel over samples where it matters.
/// </summary>
internal sealed class StepBench
{
    private const int Batch = 64;
    private readonly Conv2D conv1 = new(new Conv2DSpec("conv1", 32, 3, 3, Activation: Activation.Relu)) { ComputeInputGradient = false };
    private readonly Conv2D conv2 = new(new Conv2DSpec("conv2", 64, 3, 3, Activation: Activation.Relu));
    private readonly Dense dense1 = new(new DenseSpec("dense1", 128, Activation: Activation.Relu));
    private readonly Dense dense2 = new(new DenseSpec("dense2", 10));
    private readonly Tensor x = new(Batch, 1, 28, 28);
    private readonly Tensor a1 = new(Batch, 32, 26, 26);
    private readonly Tensor p1 = new(Batch, 32, 13, 13);
    private readonly Tensor a2 = new(Batch, 64, 11, 11);
    private readonly Tensor p2 = new(Batch, 64, 5, 5);
    private readonly Tensor f = new(Batch, 1600, 1, 1);
    private readonly Tensor h = new(Batch, 128, 1, 1);
    private readonly Tensor logits = new(Batch, 10, 1, 1);
    private readonly Tensor dLogits = new(Batch, 10, 1, 1);
    private readonly Tensor dH = new(Batch, 128, 1, 1);
    private readonly Tensor dF = new(Batch, 1600, 1, 1);
    private readonly Tensor dP2 = new(Batch, 64, 5, 5);
    private readonly Tensor dA2 = new(Batch, 64, 11, 11);
    private readonly Tensor dP1 = new(Batch, 32, 13, 13);
    private readonly Tensor dA1 = new(Batch, 32, 26, 26);
    private readonly Tensor dX = new(Batch, 1, 28, 28);
    private readonly int[] labels = new int[Batch];
    private readonly int[] argmax1 = new int[Batch * 32 * 13 * 13];
    private readonly int[] argmax2 = new int[Batch * 64 * 5 * 5];

    public StepBench()
    {
        var random = new DeterministicRandom(5);
        conv1.Build(new SampleShape(1, 28, 28));
        conv2.Build(new SampleShape(32, 13, 13));
        dense1.Build(SampleShape.Vector(1600));
        dense2.Build(SampleShape.Vector(128));
        foreach (var layer in Layers)
        {
            layer.Initialize(ref random);
        }

        var span = x.Span;
        for (var i = 0; i < span.Length; i++)
        {
            span[i] = random.NextFloat();
        }

        for (var i = 0; i < Batch; i++)
        {
            labels[i] = random.NextInt(10);
        }
    }

    private Layer[] Layers => [conv1, conv2, dense1, dense2];

    public static void Run(TimeSpan duration)
    {
        var step = new StepBench();
        foreach (var threads in new[] { 1, 2 })
        {
            using var pool = new ComputePool(threads);
            var context = new StepContext(true, pool);
            var best = LayerCase.Best(() => step.Step(context), duration);
            Console.WriteLine($"training step, batch {Batch}, {threads} thread(s): {best * 1e3:F2} ms = {Batch / best:F0} samples/s (pool, loss, SGD are stand-ins)");
        }
    }

    public void Step(StepContext context)
    {
        var pool = context.Compute;
        conv1.Forward(a1, x, context);
        MaxPoolForward(pool, a1, p1, argmax1);
        conv2.Forward(a2, p1, context);
        MaxPoolForward(pool, a2, p2, argmax2);
        p2.Span.CopyTo(f.Span);
        dense1.Forward(h, f, context);
        dense2.Forward(logits, h, context);
        SoftmaxCrossEntropyGradient();
        dense2.Backward(dH, dLogits, h, logits, context);
        dense1.Backward(dF, dH, f, h, context);
        dF.Span.CopyTo(dP2.Span);
        MaxPoolBackward(pool, dP2, dA2, argmax2);
        conv2.Backward(dP1, dA2, p1, a2, context);
        MaxPoolBackward(pool, dP1, dA1, argmax1);
        conv1.Backward(dX, dA1, x, a1, context);
        foreach (var layer in Layers)
        {
            foreach (var parameter in layer.Parameters)
            {
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(parameter.Gradient, -0.01f, parameter.Value, parameter.Value);
            }
        }
    }

    // output (N,C,H/2,W/2) <- 2x2 max of input; argmax holds the winning input index
    private static void MaxPoolForward(ComputePool pool, Tensor input, Tensor output, int[] argmax)
    {
        var (c, hi, wi, ho, wo) = (input.C, input.H, input.W, output.H, output.W);
        var src = input.Data;
        var dst = output.Data;
        pool.For(input.N, n =>
        {
            for (var plane = n * c; plane < (n + 1) * c; plane++)
            {
                for (var p = 0; p < ho; p++)
                {
                    var o = (plane * ho * wo) + (p * wo);
                    var i0 = (plane * hi * wi) + (2 * p * wi);
                    for (var q = 0; q < wo; q++, o++, i0 += 2)
                    {
                        // Branch-free (maxss, setcc): the comparisons are unpredictable on real data.
                        var (x0, x1, x2, x3) = (src[i0], src[i0 + 1], src[i0 + wi], src[i0 + wi + 1]);
                        var top = Max(x0, x1);
                        var bottom = Max(x2, x3);
                        var topIndex = i0 + (x1 > x0 ? 1 : 0);
                        var bottomIndex = i0 + wi + (x3 > x2 ? 1 : 0);
                        var useBottom = bottom > top ? 1 : 0;
                        dst[o] = Max(top, bottom);
                        argmax[o] = topIndex + (useBottom * (bottomIndex - topIndex));
                    }
                }
            }
        });
    }

    private static float Max(float a, float b) =>
        Sse.MaxScalar(Vector128.CreateScalarUnsafe(a), Vector128.CreateScalarUnsafe(b)).ToScalar();

    // dInput <- dOutput routed to the winning inputs
    private static void MaxPoolBackward(ComputePool pool, Tensor dOutput, Tensor dInput, int[] argmax)
    {
        var perSample = dOutput.Shape.Size;
        var src = dOutput.Data;
        var dst = dInput.Data;
        pool.For(dOutput.N, n =>
        {
            dInput.Sample(n).Clear();
            for (var i = n * perSample; i < (n + 1) * perSample; i++)
            {
                dst[argmax[i]] += src[i];
            }
        });
    }

    // dLogits <- (softmax(logits) - onehot(label)) / N
    private void SoftmaxCrossEntropyGradient()
    {
        for (var n = 0; n < Batch; n++)
        {
            var z = logits.Sample(n);
            var d = dLogits.Sample(n);
            var max = System.Numerics.Tensors.TensorPrimitives.Max(z);
            var sum = 0f;
            for (var k = 0; k < z.Length; k++)
            {
                d[k] = MathF.Exp(z[k] - max);
                sum += d[k];
            }

            for (var k = 0; k < z.Length; k++)
            {
                d[k] = ((d[k] / sum) - (k == labels[n] ? 1f : 0f)) / Batch;
            }
        }
    }
}
