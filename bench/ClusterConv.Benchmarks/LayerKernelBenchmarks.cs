using BenchmarkDotNet.Attributes;
using ClusterConv.Engine;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Optimizers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Benchmarks;

/// <summary>Fast activation kernels against their scalar references, one million floats.</summary>
public class ActivationBenchmarks
{
    private float[] x = [];
    private float[] y = [];
    private float[] dy = [];
    private float[] dx = [];
    private Activation activation;

    [Params("relu", "leaky_relu", "tanh", "sigmoid")]
    public string Name { get; set; } = "relu";

    [GlobalSetup]
    public void Setup()
    {
        activation = Activation.TryParse(Name)!.Value;
        var random = new DeterministicRandom(1);
        x = new float[1 << 20];
        dy = new float[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            x[i] = (random.NextFloat() * 2f) - 1f;
            dy[i] = random.NextFloat();
        }

        y = new float[x.Length];
        dx = new float[x.Length];
        ActivationFunctions.ForwardReference(activation, y, x);
    }

    [Benchmark(Baseline = true)]
    public void ForwardReference() => ActivationFunctions.ForwardReference(activation, y, x);

    [Benchmark]
    public void Forward() => ActivationFunctions.Forward(activation, y, x);

    [Benchmark]
    public void BackwardReference() => ActivationFunctions.BackwardReference(activation, dx, dy, x, y);

    [Benchmark]
    public void Backward() => ActivationFunctions.Backward(activation, dx, dy, x, y);
}

/// <summary>Pool2D (one thread) against its plain reference: batch 64 of 32 x 28 x 28, pool 2x2 stride 2.</summary>
public class PoolingBenchmarks
{
    private static readonly SampleShape Shape = new(32, 28, 28);
    private readonly StepContext context = new(true, ComputePool.Serial);
    private Pool2D layer = null!;
    private Tensor input = null!;
    private Tensor output = null!;
    private Tensor dInput = null!;

    [Params(PoolKind.Max, PoolKind.Average)]
    public PoolKind Kind { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        layer = new Pool2D(new Pool2DSpec("pool", Kind, 2, 2, 2, 2));
        layer.Build(Shape);
        input = new Tensor(64, Shape);
        var random = new DeterministicRandom(1);
        for (var i = 0; i < input.Length; i++)
        {
            input.Data[i] = random.NextFloat();
        }

        output = new Tensor(64, layer.OutputShape);
        dInput = new Tensor(64, Shape);
        layer.Forward(output, input, context);
    }

    [Benchmark(Baseline = true)]
    public void ForwardReference() => Pool2D.ForwardReference(layer.Spec, output.Span, input.Span, 64, Shape);

    [Benchmark]
    public void Forward() => layer.Forward(output, input, context);

    [Benchmark]
    public void BackwardReference() => Pool2D.BackwardReference(layer.Spec, dInput.Span, output.Span, input.Span, 64, Shape);

    [Benchmark]
    public void Backward() => layer.Backward(dInput, output, input, output, context);
}

/// <summary>Optimizer steps over one million parameters, against a plain scalar Adam loop.</summary>
public class OptimizerBenchmarks
{
    private readonly IOptimizer adam = new Adam();
    private readonly IOptimizer momentum = new Sgd(momentum: 0.9f);
    private float[] weights = [];
    private float[] gradients = [];
    private float[] state = [];
    private long step;

    [GlobalSetup]
    public void Setup()
    {
        weights = new float[1 << 20];
        gradients = new float[weights.Length];
        state = new float[2 * weights.Length];
        var random = new DeterministicRandom(1);
        for (var i = 0; i < weights.Length; i++)
        {
            weights[i] = random.NextFloat();
            gradients[i] = random.NextFloat() - 0.5f;
        }
    }

    [Benchmark(Baseline = true)]
    public void AdamScalarLoop()
    {
        var t = ++step;
        var alpha = (float)(1e-3 * Math.Sqrt(1 - Math.Pow(0.999, t)) / (1 - Math.Pow(0.9, t)));
        var n = weights.Length;
        for (var i = 0; i < n; i++)
        {
            var g = gradients[i];
            ref var m = ref state[i];
            ref var v = ref state[n + i];
            m += (g - m) * 0.1f;
            v += ((g * g) - v) * 0.001f;
            weights[i] -= alpha * m / (MathF.Sqrt(v) + 1e-7f);
        }
    }

    [Benchmark]
    public void Adam() => adam.Step(weights, gradients, state, ++step, 1e-3f, decay: true);

    [Benchmark]
    public void SgdMomentum() => momentum.Step(weights, gradients, state.AsSpan(0, weights.Length), ++step, 1e-3f, decay: true);
}
