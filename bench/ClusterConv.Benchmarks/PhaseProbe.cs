using System.Runtime.InteropServices;
using ClusterConv.Engine;
using ClusterConv.Engine.Kernels;

namespace ClusterConv.Benchmarks;

internal static unsafe class PhaseProbe
{
    public static void Run()
    {
        const int K = 288;
        var a = (float*)NativeMemory.AlignedAlloc(64 * K * 4, 64);
        var b = (float*)NativeMemory.AlignedAlloc(K * 16 * 16 * 4, 64);
        var c = (float*)NativeMemory.AlignedAlloc(64 * 256 * 4, 64);
        for (var i = 0; i < 64 * K; i++) a[i] = 1e-3f;
        for (var i = 0; i < K * 256; i++) b[i] = 1e-3f;
        for (var rep = 0; rep < 3; rep++)
        {
            foreach (var (panels, width) in new[] { (1, 16), (8, 16), (8, 9) })
            {
                var best = double.MaxValue;
                for (var i = 0; i < 100; i++)
                {
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    for (var j = 0; j < 10; j++)
                    {
                        for (var s = 0; s < 10; s++)
                        {
                            Fma256TileKernel.Strip<Rows6>(K, a + (s * 6 * K), K, 1, b, (nint)K * 16, c + (s * 6 * 256), 256, ((panels - 1) * 16) + width, TileInit.Zero, null);
                        }
                    }

                    best = Math.Min(best, clock.Elapsed.TotalSeconds / 10);
                }

                Console.Write($"60x{panels * 16}x{K} (last width {width}) kernel only: {Gemm.Flops(60, panels * 16, K) / best / 1e9:F1}  ");
            }

            Console.WriteLine();
        }
    }
}
