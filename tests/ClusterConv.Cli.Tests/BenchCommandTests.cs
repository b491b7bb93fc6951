using System.Text.Json;

namespace ClusterConv.Cli.Tests;

public class BenchCommandTests
{
    [Fact]
    public void Json_bench_reports_throughput_beside_the_measured_peak()
    {
        var result = CliRunner.Run("bench", "--threads", "1", "--batch-size", "8", "--steps", "2", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        var r = JsonDocument.Parse(result.Stdout).RootElement;
        Assert.Equal(1, r.GetProperty("threads").GetInt32());
        Assert.Equal(8, r.GetProperty("batch_size").GetInt32());
        Assert.True(r.GetProperty("samples_per_second").GetDouble() > 0);
        var gflops = r.GetProperty("gflops").GetDouble();
        var peak = r.GetProperty("peak_gflops").GetDouble();
        Assert.True(gflops > 0 && peak > 0);
        Assert.Equal(7, r.GetProperty("layers").GetArrayLength());
    }
}
