using ClusterConv.Engine;

namespace ClusterConv.Benchmarks;

internal static class PhaseProbe
{
    public static void Run()
    {
        var step = new StepBench();

        var context = new StepContext(true, ComputePool.Serial);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var count = 0;
        while (clock.Elapsed.TotalSeconds < 5)
        {
            step.Step(context);
            count++;
        }

        Console.WriteLine($"{clock.Elapsed.TotalMilliseconds / count:F2} ms per step");
    }
}
