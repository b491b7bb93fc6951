using ClusterConv.Engine;
using ClusterConv.Engine.Kernels;

namespace ClusterConv.Benchmarks;

public sealed record GemmShape(string Name, GemmTranspose Transpose, int M, int N, int K)
{
    public override string ToString() => Name;
}

/// <summary>
/// The GEMMs of keras-cnn at batch 64, as Conv2D and Dense issue them. Conv2D works on im2col rows
/// in NHWC order: forward preT (NPQ, K) = colT (NPQ, RSC) · Wᵀ; weight gradient dW (K, RSC) =
/// dPreTᵀ · colT; input gradient dColT (NPQ, RSC) = dPreT · W.
/// </summary>
public static class GemmShapes
{
    public static IReadOnlyList<GemmShape> KerasCnn { get; } =
    [
        new("conv1 forward", GemmTranspose.B, 43264, 32, 9),
        new("conv1 weight grad", GemmTranspose.A, 32, 9, 43264),
        new("conv1 weight grad (RSC rows)", GemmTranspose.A, 9, 32, 43264),
        new("conv1 input grad", GemmTranspose.None, 43264, 9, 32),
        new("conv2 forward", GemmTranspose.B, 7744, 64, 288),
        new("conv2 weight grad", GemmTranspose.A, 64, 288, 7744),
        new("conv2 weight grad (RSC rows)", GemmTranspose.A, 288, 64, 7744),
        new("conv2 input grad", GemmTranspose.None, 7744, 288, 64),
        new("dense1 forward", GemmTranspose.B, 64, 128, 1600),
        new("dense1 weight grad", GemmTranspose.A, 128, 1600, 64),
        new("dense1 input grad", GemmTranspose.None, 64, 1600, 128),
        new("square 512", GemmTranspose.None, 512, 512, 512),
    ];
}

/// <summary>Random operands of one shape, reused across runs.</summary>
public sealed class GemmOperands
{
    private readonly GemmShape shape;
    private readonly float[] a;
    private readonly float[] b;
    private readonly float[] c;

    public GemmOperands(GemmShape shape)
    {
        this.shape = shape;
        var random = new DeterministicRandom(1);
        a = Fill(shape.M * shape.K, ref random);
        b = Fill(shape.K * shape.N, ref random);
        c = new float[shape.M * shape.N];
    }

    public void Run(ComputePool pool)
    {
        var lda = shape.Transpose == GemmTranspose.A ? shape.M : shape.K;
        var ldb = shape.Transpose == GemmTranspose.B ? shape.K : shape.N;
        Gemm.Compute(pool, shape.Transpose, shape.M, shape.N, shape.K, a, lda, b, ldb, c, shape.N);
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
