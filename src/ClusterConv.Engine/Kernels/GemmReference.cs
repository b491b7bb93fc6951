namespace ClusterConv.Engine.Kernels;

/// <summary>
/// The obviously-correct GEMM: a triple loop with a double accumulator. The oracle the fast
/// <see cref="Gemm"/> is tested against; same arguments and semantics.
/// </summary>
public static class GemmReference
{
    // C (m,n) = op(A) (m,k) · op(B) (k,n) [+ C] [+ columnBias (n) | rowBias (m)]
    // A is (m,k) with row stride lda, or (k,m) when transposed; B is (k,n), or (n,k) when transposed.
    public static void Compute(
        GemmTranspose transpose,
        int m,
        int n,
        int k,
        ReadOnlySpan<float> a,
        int lda,
        ReadOnlySpan<float> b,
        int ldb,
        Span<float> c,
        int ldc,
        bool accumulate = false,
        ReadOnlySpan<float> columnBias = default,
        ReadOnlySpan<float> rowBias = default)
    {
        Gemm.CheckArguments(transpose, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc, accumulate, columnBias.Length, rowBias.Length);
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                double sum = accumulate ? c[(i * ldc) + j] : !columnBias.IsEmpty ? columnBias[j] : !rowBias.IsEmpty ? rowBias[i] : 0.0;
                for (var p = 0; p < k; p++)
                {
                    var av = transpose == GemmTranspose.A ? a[(p * lda) + i] : a[(i * lda) + p];
                    var bv = transpose == GemmTranspose.B ? b[(j * ldb) + p] : b[(p * ldb) + j];
                    sum += (double)av * bv;
                }

                c[(i * ldc) + j] = (float)sum;
            }
        }
    }
}
