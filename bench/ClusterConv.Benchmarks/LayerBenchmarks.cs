using BenchmarkDotNet.Attributes;
using ClusterConv.Engine;

namespace ClusterConv.Benchmarks;

/// <summary>keras-cnn's Conv2D and Dense layers at batch 64, forward and backward, end to end (im2col, bias, activation included).</summary>
[Config(typeof(ShortConfig))]
public class LayerBenchmarks : IFlopCount, IDisposable
{
    private ComputePool? pool;
    private LayerCase? layer;
    private StepContext? context;

    public static IEnumerable<string> Layers => LayerCase.KerasCnn(1).Select(l => l.Name);

    [ParamsSource(nameof(Layers))]
    public string Layer { get; set; } = "";

    [Params(1, 2)]
    public int Threads { get; set; } = 1;

    [GlobalSetup]
    public void Setup()
    {
        pool = new ComputePool(Threads);
        context = new StepContext(true, pool);
        layer = LayerCase.KerasCnn(64).Single(l => l.Name == Layer);
        layer.Forward(context);
    }

    [GlobalCleanup]
    public void Cleanup() => Dispose();

    [Benchmark]
    public void Forward() => layer!.Forward(context!);

    [Benchmark]
    public void Backward() => layer!.Backward(context!);

    public long Flops(string method)
    {
        var l = LayerCase.KerasCnn(64).Single(c => c.Name == Layer);
        return method == nameof(Backward) ? l.BackwardFlops : l.ForwardFlops;
    }

    public void Dispose()
    {
        pool?.Dispose();
        pool = null;
        GC.SuppressFinalize(this);
    }
}
