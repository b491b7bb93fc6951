using ClusterConv.Engine;
using ClusterConv.Engine.Kernels;

namespace ClusterConv.Benchmarks;

/// <summary>
/// One GEMM workload as an engine layer issues it: <see cref="Count"/> products of m x n x k,
/// each on its own operands, either one pooled GEMM (Count = 1) or per-sample serial GEMMs spread
/// over the pool's threads (Conv2D), accumulated <see cref="Accumulate"/> at a time into one C per
/// chunk (the weight gradient).
/// </summary>
public sealed record GemmShape(string Name, GemmTranspose Transpose, int M, int N, int K, int Count = 1, int Accumulate = 1)
{
    public long Flops => Gemm.Flops(M, N, K) * Count;

    public override string ToString() => Name;
}

/// <summary>
/// The GEMMs of keras-cnn at batch 64. Conv2D works per sample in NCHW: forward pre (K, PQ) =
/// W (K, CRS) · col (CRS, PQ); weight gradient dWᵀ (CRS, K) += col · dPreᵀ over chunks of 8
/// samples; input gradient dCol (CRS, PQ) = Wᵀ · dPre. Dense runs whole-batch GEMMs.
/// </summary>
public static class GemmShapes
{
    public static IReadOnlyList<GemmShape> KerasCnn { get; } =
    [
        new("conv1 forward     32x676x9   x64", GemmTranspose.None, 32, 676, 9, 64),
        new("conv1 weight grad 9x32x676   x64", GemmTranspose.B, 9, 32, 676, 64, 8),
        new("conv1 input grad  9x676x32   x64", GemmTranspose.A, 9, 676, 32, 64),
        new("conv2 forward     64x121x288 x64", GemmTranspose.None, 64, 121, 288, 64),
        new("conv2 weight grad 288x64x121 x64", GemmTranspose.B, 288, 64, 121, 64, 8),
        new("conv2 input grad  288x121x64 x64", GemmTranspose.A, 288, 121, 64, 64),
        new("dense1 forward    64x128x1600", GemmTranspose.B, 64, 128, 1600),
        new("dense1 weight grad 128x1600x64", GemmTranspose.A, 128, 1600, 64),
        new("dense1 input grad 64x1600x128", GemmTranspose.None, 64, 1600, 128),
        new("square 512", GemmTranspose.None, 512, 512, 512),
        new("conv2 fwd as one GEMM 7744x64x288", GemmTranspose.B, 7744, 64, 288),
        new("conv2 wgrad as one GEMM 288x64x7744", GemmTranspose.A, 288, 64, 7744),
    ];
}

/// <summary>Random operands of one workload, reused across runs.</summary>
public sealed unsafe class GemmOperands
{
    private readonly GemmShape shape;
    private readonly float[] a;
    private readonly float[] b;
    private readonly float[] c;
    private readonly Action<int> part;

    public GemmOperands(GemmShape shape)
    {
        this.shape = shape;
        var random = new DeterministicRandom(1);

        // The shared operand (the conv kernel W) is A for forward and input gradient; per-sample
        // operands (col, dPre) get their own copies so caches see what the layer sees.
        var perSample = shape.Count > 1;
        a = Fill(shape.M * shape.K * (perSample && shape.Transpose == GemmTranspose.B ? shape.Count : 1), ref random);
        b = Fill(shape.K * shape.N * shape.Count, ref random);
        c = new float[shape.M * shape.N * (shape.Count / shape.Accumulate)];
        part = RunPart;
    }

    public void Run(ComputePool pool)
    {
        if (shape.Count == 1)
        {
            var lda = shape.Transpose == GemmTranspose.A ? shape.M : shape.K;
            var ldb = shape.Transpose == GemmTranspose.B ? shape.K : shape.N;
            Gemm.Compute(pool, shape.Transpose, shape.M, shape.N, shape.K, a, lda, b, ldb, c, shape.N);
            return;
        }

        pool.For(shape.Count / shape.Accumulate, part);
    }

    private void RunPart(int part)
    {
        var (m, n, k) = (shape.M, shape.N, shape.K);
        fixed (float* pa = a, pb = b, pc = c)
        {
            for (var i = 0; i < shape.Accumulate; i++)
            {
                var sample = (part * shape.Accumulate) + i;
                var cPart = pc + ((nint)part * m * n);
                if (shape.Transpose == GemmTranspose.B)
                {
                    // dWᵀ (CRS, K) += col (CRS, PQ) · dPre (K, PQ)ᵀ
                    Gemm.ComputeSerial(GemmTranspose.B, m, n, k, pa + ((nint)sample * m * k), k, pb + ((nint)sample * n * k), k, cPart, n, accumulate: i > 0);
                }
                else
                {
                    // forward W (K, CRS) · col (CRS, PQ); input gradient W (K, CRS)ᵀ · dPre (K, PQ)
                    var lda = shape.Transpose == GemmTranspose.A ? m : k;
                    Gemm.ComputeSerial(shape.Transpose, m, n, k, pa, lda, pb + ((nint)sample * k * n), n, pc + ((nint)sample * m * n), n);
                }
            }
        }
    }

    private static float[] Fill(int length, ref DeterministicRandom random)
    {
        var values = new float[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = random.NextFloat() - 0.5f;
        }

        return values;
    }
}
