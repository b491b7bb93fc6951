using ClusterConv.Engine;
using ClusterConv.Engine.Kernels;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Benchmarks;

internal static unsafe class PhaseProbe
{
    public static void Loop(string what, double seconds)
    {
        var ctx = new StepContext(true, ComputePool.Serial);
        var lc = new LayerCase("conv2", new Conv2D(new Conv2DSpec("c2", 64, 3, 3, Activation: Activation.Relu)), new SampleShape(32, 13, 13), 64);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        lc.Forward(ctx);
        var count = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            if (what == "fwd") lc.Forward(ctx); else lc.Backward(ctx);
            count++;
        }

        Console.WriteLine($"{what}: {clock.Elapsed.TotalMilliseconds / count:F3} ms per call");
    }

    public static void Run()
    {

        var d = TimeSpan.FromSeconds(0.5);
        var ctx = new StepContext(true, ComputePool.Serial);
        foreach (var act in new[] { Activation.Linear, Activation.Relu })
        {
            var lc = new LayerCase("conv2", new Conv2D(new Conv2DSpec("c2", 64, 3, 3, Activation: act)), new SampleShape(32, 13, 13), 64);
            Console.WriteLine($"conv2 {act.KerasName}: fwd {LayerCase.Best(() => lc.Forward(ctx), d) * 1e3:F3} ms, bwd {LayerCase.Best(() => lc.Backward(ctx), d) * 1e3:F3} ms");
        }

        {
            var conv = new Conv2D(new Conv2DSpec("c2", 64, 3, 3));
            conv.Build(new SampleShape(32, 13, 13));
            var x = new float[64 * 32 * 169];
            var cb = new float[288 * 121];
            fixed (float* px = x, pc = cb)
            {
                var (xx, cc) = ((nint)px, (nint)pc);
                var t1 = LayerCase.Best(() => { for (var n = 0; n < 64; n++) conv.Im2Col((float*)xx + (n * 32 * 169), (float*)cc); }, d);
                var t2 = LayerCase.Best(() => { for (var n = 0; n < 64; n++) conv.Col2Im((float*)cc, (float*)xx + (n * 32 * 169)); }, d);
                Console.WriteLine($"conv2 im2col x64: {t1 * 1e3:F3} ms, col2im x64: {t2 * 1e3:F3} ms");
            }
        }

        var data = new float[64 * 32 * 676];
        for (var i = 0; i < data.Length; i++) data[i] = (i % 13) - 6f;
        var outp = new float[data.Length];
        var tt = LayerCase.Best(() => ActivationFunctions.Forward(Activation.Relu, outp, data), d);
        Console.WriteLine($"relu fwd {data.Length}: {tt * 1e3:F3} ms");
        tt = LayerCase.Best(() => ActivationFunctions.Backward(Activation.Relu, outp, data, data, data), d);
        Console.WriteLine($"relu bwd {data.Length}: {tt * 1e3:F3} ms");

        // one sample's GEMMs, serial, 64 times
        var w = new float[64 * 288];
        var col = new float[288 * 121];
        var o = new float[64 * 121];
        var dw = new float[288 * 64];
        var dcol = new float[288 * 121];
        new Random(1).NextBytes(new byte[1]);
        for (var i = 0; i < w.Length; i++) w[i] = (i % 7) * 0.1f;
        for (var i = 0; i < col.Length; i++) col[i] = (i % 5) * 0.1f;
        fixed (float* pw = w, pcol = col, po = o, pdw = dw, pdcol = dcol)
        {
            var (a, b, c, e, f) = ((nint)pw, (nint)pcol, (nint)po, (nint)pdw, (nint)pdcol);
            var t = LayerCase.Best(() => { for (var n = 0; n < 64; n++) Gemm.ComputeSerial(GemmTranspose.None, 64, 121, 288, (float*)a, 288, (float*)b, 121, (float*)c, 121); }, d);
            Console.WriteLine($"fwd GEMM 64x121x288 x64: {t * 1e3:F3} ms = {64 * Gemm.Flops(64, 121, 288) / t / 1e9:F1} GF/s");
            t = LayerCase.Best(() => { for (var n = 0; n < 64; n++) Gemm.ComputeSerial(GemmTranspose.None, 64, 128, 288, (float*)a, 288, (float*)b, 128, (float*)c, 128); }, d);
            Console.WriteLine($"fwd GEMM 64x128x288 x64 (no edge): {t * 1e3:F3} ms = {64 * Gemm.Flops(64, 128, 288) / t / 1e9:F1} GF/s");
            t = LayerCase.Best(() => { for (var n = 0; n < 64; n++) Gemm.ComputeSerial(GemmTranspose.B, 288, 64, 121, (float*)b, 121, (float*)c, 121, (float*)e, 64, accumulate: n > 0); }, d);
            Console.WriteLine($"wgrad GEMM 288x64x121 x64: {t * 1e3:F3} ms = {64 * Gemm.Flops(288, 64, 121) / t / 1e9:F1} GF/s");
            t = LayerCase.Best(() => { for (var n = 0; n < 64; n++) Gemm.ComputeSerial(GemmTranspose.A, 288, 121, 64, (float*)a, 288, (float*)c, 121, (float*)f, 121); }, d);
            Console.WriteLine($"igrad GEMM 288x121x64 x64: {t * 1e3:F3} ms = {64 * Gemm.Flops(288, 121, 64) / t / 1e9:F1} GF/s");
        }
    }
}
