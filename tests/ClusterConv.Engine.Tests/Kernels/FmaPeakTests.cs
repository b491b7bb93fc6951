using ClusterConv.Engine.Kernels;

namespace ClusterConv.Engine.Tests.Kernels;

public sealed class FmaPeakTests
{
    [Fact]
    public void Peak_is_a_positive_rate_measured_on_every_pool_thread()
    {
        using var pool = new ComputePool(2);
        var gflops = FmaPeak.MeasureGflops(pool, TimeSpan.FromMilliseconds(30));
        Assert.InRange(gflops, 0.5, 10_000);
    }
}
