using BenchmarkDotNet.Running;
using ClusterConv.Benchmarks;

if (args.Length > 0 && args[0] == "quick")
{
    QuickBench.Run(TimeSpan.FromSeconds(args.Length > 1 ? double.Parse(args[1]) : 0.5));
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
