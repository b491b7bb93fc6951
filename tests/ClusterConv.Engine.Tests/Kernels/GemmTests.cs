using ClusterConv.Engine.Kernels;

namespace ClusterConv.Engine.Tests.Kernels;

/// <summary>
/// The fast GEMM against <see cref="GemmReference"/>. Tolerance: for each element,
/// |fast - reference| &lt;= 2.5e-7 * (k + 2) * (|C0| + |bias| + sum_p |A_ip * B_pj|), about four times
/// the worst-case float rounding of a k-term FMA chain (unit roundoff 6e-8).
/// </summary>
public sealed class GemmTests
{
    // Odd sizes and the edges of the 6x16 tile, a K above the K block (384), parallel sizes.
    private static readonly (int M, int N, int K)[] Shapes =
    [
        (1, 1, 1), (1, 16, 5), (5, 15, 3), (6, 16, 8), (7, 17, 9), (12, 32, 31), (13, 33, 2),
        (11, 1, 40), (2, 47, 17), (18, 48, 385), (97, 100, 70), (64, 130, 800), (300, 20, 64), (30, 410, 50),
    ];

    public static TheoryData<GemmTranspose, bool> Variants => new()
    {
        { GemmTranspose.None, false },
        { GemmTranspose.None, true },
        { GemmTranspose.A, false },
        { GemmTranspose.A, true },
        { GemmTranspose.B, false },
        { GemmTranspose.B, true },
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void Fast_gemm_matches_the_reference_over_many_shapes(GemmTranspose transpose, bool accumulate)
    {
        using var pool = new ComputePool(2);
        foreach (var (m, n, k) in Shapes)
        {
            AssertMatchesReference(pool, transpose, m, n, k, accumulate, bias: false, Gemm.BestIsa);
        }
    }

    [Theory]
    [InlineData(GemmTranspose.None)]
    [InlineData(GemmTranspose.A)]
    [InlineData(GemmTranspose.B)]
    public void Column_bias_is_added_to_every_row(GemmTranspose transpose)
    {
        foreach (var (m, n, k) in Shapes)
        {
            AssertMatchesReference(ComputePool.Serial, transpose, m, n, k, accumulate: false, bias: true, Gemm.BestIsa);
        }
    }

    [Theory]
    [InlineData(GemmTranspose.None)]
    [InlineData(GemmTranspose.A)]
    [InlineData(GemmTranspose.B)]
    public void Row_bias_is_added_to_every_column(GemmTranspose transpose)
    {
        using var pool = new ComputePool(2);
        foreach (var (m, n, k) in Shapes)
        {
            AssertMatchesReference(pool, transpose, m, n, k, accumulate: false, bias: true, Gemm.BestIsa, perRow: true);
        }
    }

    [Fact]
    public unsafe void The_serial_pointer_entry_gives_bitwise_the_pooled_result()
    {
        foreach (var transpose in new[] { GemmTranspose.None, GemmTranspose.A, GemmTranspose.B })
        {
            const int m = 70, n = 90, k = 400;
            var (a, lda, b, ldb) = Operands(transpose, m, n, k, seed: 3);
            var bias = Random(m, seed: 4);
            var pooled = new float[m * n];
            using (var pool = new ComputePool(2))
            {
                Gemm.Compute(pool, transpose, m, n, k, a, lda, b, ldb, pooled, n, rowBias: bias);
            }

            var serial = new float[m * n];
            fixed (float* pa = a, pb = b, pc = serial, pBias = bias)
            {
                Gemm.ComputeSerial(transpose, m, n, k, pa, lda, pb, ldb, pc, n, rowBias: pBias);
            }

            Assert.Equal(pooled, serial);
        }
    }

    [Theory]
    [InlineData("Vector128")]
    [InlineData("Scalar")]
    public void Fallback_kernels_match_the_reference(string isaName)
    {
        var isa = Enum.Parse<GemmIsa>(isaName);
        foreach (var transpose in new[] { GemmTranspose.None, GemmTranspose.A, GemmTranspose.B })
        {
            foreach (var (m, n, k) in Shapes)
            {
                AssertMatchesReference(ComputePool.Serial, transpose, m, n, k, accumulate: (m + n) % 2 == 0, bias: (m + n) % 2 == 1, isa, perRow: k % 2 == 0);
            }
        }
    }

    [Theory]
    [InlineData(GemmTranspose.None, 200, 64, 288)]
    [InlineData(GemmTranspose.A, 64, 288, 1500)]
    [InlineData(GemmTranspose.B, 64, 500, 700)]
    [InlineData(GemmTranspose.None, 64, 1600, 128)]
    public void Results_are_bitwise_identical_for_one_two_and_three_threads(GemmTranspose transpose, int m, int n, int k)
    {
        var (a, lda, b, ldb) = Operands(transpose, m, n, k, seed: 11);
        float[] Run(int threads, bool accumulate)
        {
            using var pool = new ComputePool(threads);
            var c = Random(m * n, seed: 5);
            Gemm.Compute(pool, transpose, m, n, k, a, lda, b, ldb, c, n, accumulate);
            return c;
        }

        foreach (var accumulate in new[] { false, true })
        {
            var one = Run(1, accumulate);
            Assert.Equal(one, Run(2, accumulate));
            Assert.Equal(one, Run(3, accumulate));
        }
    }

    [Fact]
    public void Leading_dimensions_larger_than_the_matrix_address_a_submatrix()
    {
        const int m = 9, n = 21, k = 13, lda = 20, ldb = 30, ldc = 25;
        var a = Random(m * lda, seed: 1);
        var b = Random(k * ldb, seed: 2);
        var fast = Random(m * ldc, seed: 3);
        var reference = (float[])fast.Clone();
        Gemm.Compute(ComputePool.Serial, GemmTranspose.None, m, n, k, a, lda, b, ldb, fast, ldc);
        GemmReference.Compute(GemmTranspose.None, m, n, k, a, lda, b, ldb, reference, ldc);
        for (var i = 0; i < m; i++)
        {
            for (var j = n; j < ldc; j++)
            {
                Assert.Equal(reference[(i * ldc) + j], fast[(i * ldc) + j]); // untouched padding
            }

            for (var j = 0; j < n; j++)
            {
                Assert.Equal(reference[(i * ldc) + j], fast[(i * ldc) + j], 1e-4f);
            }
        }
    }

    [Fact]
    public void Too_short_operands_are_rejected_naming_the_operand()
    {
        var error = Assert.Throws<ArgumentException>(() => Gemm.Multiply(ComputePool.Serial, 4, 4, 4, new float[15], new float[16], new float[16]));
        Assert.Equal("a", error.ParamName);
    }

    private static void AssertMatchesReference(ComputePool pool, GemmTranspose transpose, int m, int n, int k, bool accumulate, bool bias, GemmIsa isa, bool perRow = false)
    {
        var (a, lda, b, ldb) = Operands(transpose, m, n, k, seed: (m * 31) + (n * 7) + k);
        var c0 = Random(m * n, seed: m + n + k);
        var columnBias = bias && !perRow ? Random(n, seed: 3) : [];
        var rowBias = bias && perRow ? Random(m, seed: 3) : [];
        var fast = (float[])c0.Clone();
        var reference = (float[])c0.Clone();
        Gemm.Compute(pool, transpose, m, n, k, a, lda, b, ldb, fast, n, accumulate, columnBias, rowBias, isa);
        GemmReference.Compute(transpose, m, n, k, a, lda, b, ldb, reference, n, accumulate, columnBias, rowBias);
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double scale = (accumulate ? Math.Abs(c0[(i * n) + j]) : 0) + (bias ? Math.Abs(perRow ? rowBias[i] : columnBias[j]) : 0);
                for (var p = 0; p < k; p++)
                {
                    var av = transpose == GemmTranspose.A ? a[(p * lda) + i] : a[(i * lda) + p];
                    var bv = transpose == GemmTranspose.B ? b[(j * ldb) + p] : b[(p * ldb) + j];
                    scale += Math.Abs((double)av * bv);
                }

                var tolerance = 2.5e-7 * (k + 2) * scale;
                var difference = Math.Abs(fast[(i * n) + j] - reference[(i * n) + j]);
                Assert.True(difference <= tolerance, $"{isa} {transpose} m={m} n={n} k={k} acc={accumulate} bias={bias}: C[{i},{j}] = {fast[(i * n) + j]}, reference {reference[(i * n) + j]}");
            }
        }
    }

    private static (float[] A, int Lda, float[] B, int Ldb) Operands(GemmTranspose transpose, int m, int n, int k, int seed)
    {
        var a = Random(m * k, seed);
        var b = Random(k * n, seed + 1);
        var lda = transpose == GemmTranspose.A ? m : k;
        var ldb = transpose == GemmTranspose.B ? k : n;
        return (a, lda, b, ldb);
    }

    internal static float[] Random(int length, int seed)
    {
        var random = new DeterministicRandom((ulong)seed);
        var values = new float[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = (random.NextFloat() * 2f) - 1f;
        }

        return values;
    }
}
