using System.Diagnostics;
using ClusterConv.Engine;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Benchmarks;

/// <summary>One keras-cnn layer with its batch-64 tensors, ready to run forward and backward.</summary>
public sealed class LayerCase
{
    private readonly Tensor input;
    private readonly Tensor output;
    private readonly Tensor dOutput;
    private readonly Tensor dInput;

    public LayerCase(string name, Layer layer, SampleShape inputShape, int batch)
    {
        Name = name;
        Layer = layer;
        Batch = batch;
        layer.Build(inputShape);
        var random = new DeterministicRandom(3);
        layer.Initialize(ref random);
        input = Fill(new Tensor(batch, inputShape), ref random);
        output = new Tensor(batch, layer.OutputShape);
        dOutput = Fill(new Tensor(batch, layer.OutputShape), ref random);
        dInput = new Tensor(batch, inputShape);
    }

    public string Name { get; }

    public Layer Layer { get; }

    public int Batch { get; }

    public long ForwardFlops => Layer switch
    {
        Conv2D conv => conv.ForwardFlops(Batch),
        Dense dense => dense.ForwardFlops(Batch),
        _ => 0,
    };

    public long BackwardFlops => Layer switch
    {
        Conv2D conv => conv.BackwardFlops(Batch),
        Dense dense => dense.BackwardFlops(Batch),
        _ => 0,
    };

    /// <summary>keras-cnn's Conv2D and Dense layers at one batch size; the first conv skips its input gradient as a model would.</summary>
    public static IReadOnlyList<LayerCase> KerasCnn(int batch) =>
    [
        new("conv1 32@3x3 relu", new Conv2D(new Conv2DSpec("conv1", 32, 3, 3, Activation: Activation.Relu)) { ComputeInputGradient = false }, new SampleShape(1, 28, 28), batch),
        new("conv2 64@3x3 relu", new Conv2D(new Conv2DSpec("conv2", 64, 3, 3, Activation: Activation.Relu)), new SampleShape(32, 13, 13), batch),
        new("dense1 128 relu", new Dense(new DenseSpec("dense1", 128, Activation: Activation.Relu)), SampleShape.Vector(1600), batch),
        new("dense2 10", new Dense(new DenseSpec("dense2", 10)), SampleShape.Vector(128), batch),
    ];

    public void Forward(StepContext context) => Layer.Forward(output, input, context);

    public void Backward(StepContext context) => Layer.Backward(dInput, dOutput, input, output, context);

    /// <summary>Best time of an action repeated for about <paramref name="duration"/>, in seconds.</summary>
    public static double Best(Action action, TimeSpan duration)
    {
        action();
        var best = double.MaxValue;
        var total = Stopwatch.StartNew();
        var clock = new Stopwatch();
        do
        {
            clock.Restart();
            action();
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        while (total.Elapsed < duration);
        return best;
    }

    private static Tensor Fill(Tensor tensor, ref DeterministicRandom random)
    {
        var span = tensor.Span;
        for (var i = 0; i < span.Length; i++)
        {
            span[i] = random.NextFloat() - 0.5f;
        }

        return tensor;
    }
}
