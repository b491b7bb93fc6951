using System.Globalization;
using BenchmarkDotNet.Running;
using ClusterConv.Benchmarks;

// quick [seconds per case] [layers]: Stopwatch tables (best of repeated runs); anything else: BenchmarkDotNet.
if (args.Length > 0 && args[0] == "quick")
{
    var seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 0.5;
    QuickBench.Run(TimeSpan.FromSeconds(seconds), gemms: !args.Contains("layers"));
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
