using System.Diagnostics;
using ClusterConv.Engine;
using ClusterConv.Engine.Kernels;

namespace ClusterConv.Benchmarks;

/// <summary>A Stopwatch table (run `quick`): GFLOP/s of the keras-cnn GEMMs on 1 and 2 threads beside the FMA peak.</summary>
internal static class QuickBench
{
    private const int Rounds = 4;

    public static void Run(TimeSpan perCase, bool gemms = true)
    {
        using var one = new ComputePool(1);
        using var two = new ComputePool(2);
        var peak1 = FmaPeak.MeasureGflops(one, TimeSpan.FromSeconds(1));
        var peak2 = FmaPeak.MeasureGflops(two, TimeSpan.FromSeconds(1));
        Console.WriteLine($"FMA peak: {peak1:F1} GFLOP/s on 1 thread, {peak2:F1} on 2");
        Console.WriteLine($"{"GEMM (as the layer issues it)",-38} {"1 thr",7} {"%",4} {"2 thr",7} {"%",4}");
        foreach (var shape in gemms ? GemmShapes.KerasCnn : [])
        {
            // Rounds alternate 1 and 2 threads; the best of each, as the cores are shared.
            double g1 = 0, g2 = 0;
            for (var round = 0; round < Rounds; round++)
            {
                g1 = Math.Max(g1, Measure(one, shape, perCase / Rounds));
                g2 = Math.Max(g2, Measure(two, shape, perCase / Rounds));
            }

            Console.WriteLine($"{shape.Name,-38} {g1,7:F1} {100 * g1 / peak1,4:F0} {g2,7:F1} {100 * g2 / peak2,4:F0}");
        }

        Console.WriteLine();
        Console.WriteLine($"{"layer (batch 64), ms and GFLOP/s",-34} {"fwd 1",7} {"bwd 1",7} {"fwd 2",7} {"bwd 2",7} {"GF/s f2",8} {"GF/s b2",8}");
        double total1 = 0, total2 = 0;
        foreach (var layer in LayerCase.KerasCnn(64))
        {
            var c1 = new StepContext(true, one);
            var c2 = new StepContext(true, two);
            double f1 = double.MaxValue, b1 = double.MaxValue, f2 = double.MaxValue, b2 = double.MaxValue;
            for (var round = 0; round < Rounds; round++)
            {
                f1 = Math.Min(f1, LayerCase.Best(() => layer.Forward(c1), perCase / Rounds));
                b1 = Math.Min(b1, LayerCase.Best(() => layer.Backward(c1), perCase / Rounds));
                f2 = Math.Min(f2, LayerCase.Best(() => layer.Forward(c2), perCase / Rounds));
                b2 = Math.Min(b2, LayerCase.Best(() => layer.Backward(c2), perCase / Rounds));
            }

            total1 += f1 + b1;
            total2 += f2 + b2;
            Console.WriteLine($"{layer.Name,-34} {f1 * 1e3,7:F3} {b1 * 1e3,7:F3} {f2 * 1e3,7:F3} {b2 * 1e3,7:F3} {layer.ForwardFlops / f2 / 1e9,8:F1} {layer.BackwardFlops / b2 / 1e9,8:F1}");
        }

        Console.WriteLine($"{"conv + dense total",-34} {total1 * 1e3,7:F3} ms on 1 thread, {total2 * 1e3:F3} ms on 2 threads");
        Console.WriteLine();
        StepBench.Run(perCase * 2);
    }

    public static double Measure(ComputePool pool, GemmShape shape, TimeSpan duration)
    {
        var operands = new GemmOperands(shape);
        operands.Run(pool);
        var best = double.MaxValue;
        var total = Stopwatch.StartNew();
        while (total.Elapsed < duration)
        {
            var clock = Stopwatch.StartNew();
            operands.Run(pool);
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }

        return shape.Flops / best / 1e9;
    }
}
