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

/// <summary>
/// Random operands of one workload, reused across runs. Per-sample workloads use the buffers the
/// way Conv2D does: the kernel W is shared, the per-sample im2col matrix and activation gradient
/// live in one per-thread scratch (rebuilt for each sample, so L2-resident), and the per-sample
/// outputs (pre-activations, weight-gradient chunk sums) are distinct.
/// </summary>
public sealed unsafe class GemmOperands
{
    [ThreadStatic]
    private static float[]? threadOperand;

    private readonly GemmShape shape;
    private readonly float[] a;
    private readonly float[] b;
    private readonly float[] c;
    private readonly Action<int> part;

    public GemmOperands(GemmShape shape)
    {
        this.shape = shape;
        var random = new DeterministicRandom(1);
        var perSample = shape.Count > 1;
        a = Fill(shape.M * shape.K, ref random);
        b = Fill(shape.K * shape.N, ref random);
        c = new float[shape.M * shape.N * (perSample ? shape.Count / shape.Accumulate : 1)];
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

        // The thread's scratch: [b | a, or room for C]: col (forward), dPre and col (weight
        // gradient), dPre and dCol (input gradient).
        var length = b.Length + Math.Max(a.Length, m * n);
        if (threadOperand is null || threadOperand.Length != length)
        {
            threadOperand = new float[length];
            b.CopyTo(threadOperand, 0);
            a.CopyTo(threadOperand, b.Length);
        }

        fixed (float* pa = a, pb = b, pc = c, scratch = threadOperand)
        {
            for (var i = 0; i < shape.Accumulate; i++)
            {
                var sample = (part * shape.Accumulate) + i;
                switch (shape.Transpose)
                {
                    case GemmTranspose.None:
                        // forward: pre_n (K, PQ) = W (K, CRS) · col (CRS, PQ)
                        Gemm.ComputeSerial(GemmTranspose.None, m, n, k, pa, k, scratch, n, pc + ((nint)sample * m * n), n);
                        break;
                    case GemmTranspose.B:
                        // weight gradient: chunk dWᵀ (CRS, K) += col (CRS, PQ) · dPre (K, PQ)ᵀ
                        Gemm.ComputeSerial(GemmTranspose.B, m, n, k, scratch + b.Length, k, scratch, k, pc + ((nint)part * m * n), n, accumulate: i > 0);
                        break;
                    default:
                        // input gradient: dCol (CRS, PQ) = W (K, CRS)ᵀ · dPre (K, PQ), into the thread's scratch
                        Gemm.ComputeSerial(GemmTranspose.A, m, n, k, pa, m, scratch, n, scratch + b.Length, n);
                        break;
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
