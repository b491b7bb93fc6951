using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using ClusterConv.Engine;
using ClusterConv.Engine.Kernels;

namespace ClusterConv.Benchmarks;

/// <summary>A short job (the machine has 2 shared cores) and a GFLOP/s column.</summary>
public sealed class ShortConfig : ManualConfig
{
    public ShortConfig()
    {
        AddJob(Job.ShortRun.WithWarmupCount(3).WithIterationCount(5));
        AddColumn(new GflopsColumn());
        SummaryStyle = SummaryStyle.Default.WithRatioStyle(RatioStyle.Trend);
    }
}

/// <summary>GFLOP/s from the benchmark's Flops property and its mean time.</summary>
public sealed class GflopsColumn : IColumn
{
    public string Id => "Gflops";

    public string ColumnName => "GFLOP/s";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Floating-point operations per second, 1e9";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is null || Activator.CreateInstance(benchmarkCase.Descriptor.Type) is not IFlopCount instance)
        {
            return "-";
        }

        foreach (var parameter in benchmarkCase.Parameters.Items)
        {
            benchmarkCase.Descriptor.Type.GetProperty(parameter.Name)?.SetValue(instance, parameter.Value);
        }

        return (instance.Flops(benchmarkCase.Descriptor.WorkloadMethod.Name) / report.ResultStatistics.Mean).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
    }

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}

/// <summary>Implemented by benchmarks that know their floating-point work per invocation.</summary>
public interface IFlopCount
{
    long Flops(string method);
}

/// <summary>The keras-cnn GEMMs at batch 64 as the layers issue them, on 1 and 2 threads.</summary>
[Config(typeof(ShortConfig))]
public class GemmBenchmarks : IFlopCount, IDisposable
{
    private ComputePool? pool;
    private GemmOperands? operands;

    public static IEnumerable<GemmShape> Shapes => GemmShapes.KerasCnn;

    [ParamsSource(nameof(Shapes))]
    public GemmShape Shape { get; set; } = GemmShapes.KerasCnn[0];

    [Params(1, 2)]
    public int Threads { get; set; } = 1;

    [GlobalSetup]
    public void Setup()
    {
        pool = new ComputePool(Threads);
        operands = new GemmOperands(Shape);
    }

    [GlobalCleanup]
    public void Cleanup() => Dispose();

    [Benchmark]
    public void Gemm() => operands!.Run(pool!);

    public long Flops(string method) => Shape.Flops;

    public void Dispose()
    {
        pool?.Dispose();
        pool = null;
        GC.SuppressFinalize(this);
    }
}

/// <summary>The FMA ceiling the GEMM numbers are compared with.</summary>
[Config(typeof(ShortConfig))]
public class FmaPeakBenchmark
{
    [Params(1, 2)]
    public int Threads { get; set; } = 1;

    [Benchmark]
    public double PeakGflops()
    {
        using var pool = new ComputePool(Threads);
        return FmaPeak.MeasureGflops(pool, TimeSpan.FromMilliseconds(200));
    }
}
