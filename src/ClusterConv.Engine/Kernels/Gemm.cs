using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClusterConv.Engine.Kernels;

/// <summary>Which operand of C = op(A) · op(B) is stored transposed.</summary>
public enum GemmTranspose
{
    /// <summary>C = A · B: A (m,k), B (k,n).</summary>
    None,

    /// <summary>C = Aᵀ · B: A stored (k,m), B (k,n).</summary>
    A,

    /// <summary>C = A · Bᵀ: A (m,k), B stored (n,k).</summary>
    B,
}

/// <summary>
/// Single-precision GEMM on row-major matrices: C (m,n) = op(A) · op(B), optionally added to C or
/// started from a per-column or per-row bias.
/// <para>
/// Structure (BLIS-like, measured on the 2-core EPYC, see Kernels/README.md and bench/): B is packed
/// into panels of 16 columns (per K block of at most <see cref="KcMax"/>, column blocks of at most
/// <see cref="MaxPanelsPerBlock"/> panels so a block stays in L2); A is read in place, either
/// orientation, by a register-blocked 6x16 micro-kernel (12 accumulators) that sweeps a row strip
/// across the panels, one specialised copy per row count. The ISA kernel (AVX2+FMA, 128-bit
/// vectors, scalar) is chosen once per call through one generic driver.
/// </para>
/// <para>
/// Determinism: every C element is one FMA chain over k in increasing order, whatever the
/// partition: a later K block reloads the exact float partial sum and continues the chain. So the
/// result does not depend on the blocking or the thread count; the partition into parts (output row
/// ranges x column blocks) is fixed by the shape anyway, and no reduction crosses parts.
/// </para>
/// </summary>
public static unsafe class Gemm
{
    internal const int TileRows = 6;
    internal const int TileCols = 16;

    /// <summary>Largest K block: a 6 x kc A strip and a kc x 16 B panel stay in L1.</summary>
    internal const int KcMax = 384;

    /// <summary>Column block width in panels: a kc x 384 packed B block (576 KB) stays in L2.</summary>
    internal const int MaxPanelsPerBlock = 24;

    /// <summary>Work worth one parallel part; smaller problems run on the calling thread.</summary>
    internal const long FlopsPerPart = 2_000_000;

    /// <summary>Upper bound on parts; more parts than threads balance load on a shared machine.</summary>
    internal const int MaxParts = 8;

    /// <summary>Largest B (floats) packed once and shared by all row parts.</summary>
    internal const long SharedPackLimit = 4 << 20;

    [ThreadStatic]
    private static AlignedBuffer? privateScratch;

    [ThreadStatic]
    private static AlignedBuffer? sharedScratch;

    /// <summary>The fastest kernel this machine runs.</summary>
    internal static GemmIsa BestIsa { get; } =
        Fma.IsSupported && Avx.IsSupported ? GemmIsa.Fma256 : Vector128.IsHardwareAccelerated ? GemmIsa.Vector128 : GemmIsa.Scalar;

    /// <summary>Floating-point operations of one m x n x k product (a multiply and an add each).</summary>
    public static long Flops(int m, int n, int k) => 2L * m * n * k;

    // C (m,n) = A (m,k) · B (k,n) [+ C]
    public static void Multiply(ComputePool pool, int m, int n, int k, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, bool accumulate = false) =>
        Compute(pool, GemmTranspose.None, m, n, k, a, k, b, n, c, n, accumulate);

    // C (m,n) = A (m,k) · Bᵀ, B (n,k) [+ C]
    public static void MultiplyTransposedB(ComputePool pool, int m, int n, int k, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, bool accumulate = false) =>
        Compute(pool, GemmTranspose.B, m, n, k, a, k, b, k, c, n, accumulate);

    // C (m,n) = Aᵀ · B, A (k,m), B (k,n) [+ C]
    public static void MultiplyTransposedA(ComputePool pool, int m, int n, int k, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, bool accumulate = false) =>
        Compute(pool, GemmTranspose.A, m, n, k, a, m, b, n, c, n, accumulate);

    /// <summary>
    /// C (m,n) = op(A) · op(B), plus C when <paramref name="accumulate"/>, or plus
    /// <paramref name="columnBias"/> (n values, one per column) or <paramref name="rowBias"/>
    /// (m values, one per row) when given. lda, ldb, ldc are the row strides of A, B, C as stored
    /// (A stored (k,m) and B stored (n,k) when transposed).
    /// </summary>
    public static void Compute(
        ComputePool pool,
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
        ReadOnlySpan<float> rowBias = default) =>
        Compute(pool, transpose, m, n, k, a, lda, b, ldb, c, ldc, accumulate, columnBias, rowBias, BestIsa);

    internal static void Compute(
        ComputePool pool,
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
        bool accumulate,
        ReadOnlySpan<float> columnBias,
        ReadOnlySpan<float> rowBias,
        GemmIsa isa)
    {
        ArgumentNullException.ThrowIfNull(pool);
        CheckArguments(transpose, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc, accumulate, columnBias.Length, rowBias.Length);
        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* pc = c)
        fixed (float* pColumnBias = columnBias)
        fixed (float* pRowBias = rowBias)
        {
            var args = Arguments(transpose, m, n, k, pa, lda, pb, ldb, pc, ldc, accumulate, columnBias.IsEmpty ? null : pColumnBias, rowBias.IsEmpty ? null : pRowBias);
            Run(pool, args, isa);
        }
    }

    /// <summary>
    /// The same product on the calling thread, from pointers, without allocating: for kernels that
    /// already run inside a parallel part (one GEMM per sample). Arguments are not checked.
    /// </summary>
    internal static void ComputeSerial(
        GemmTranspose transpose,
        int m,
        int n,
        int k,
        float* a,
        nint lda,
        float* b,
        nint ldb,
        float* c,
        nint ldc,
        bool accumulate = false,
        float* columnBias = null,
        float* rowBias = null) =>
        Run(null, Arguments(transpose, m, n, k, a, lda, b, ldb, c, ldc, accumulate, columnBias, rowBias), BestIsa);

    internal static void CheckArguments(GemmTranspose transpose, int m, int n, int k, int aLength, int lda, int bLength, int ldb, int cLength, int ldc, bool accumulate, int columnBiasLength, int rowBiasLength = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        var (aRows, aCols) = transpose == GemmTranspose.A ? (k, m) : (m, k);
        var (bRows, bCols) = transpose == GemmTranspose.B ? (n, k) : (k, n);
        CheckMatrix("a", "lda", aRows, aCols, aLength, lda);
        CheckMatrix("b", "ldb", bRows, bCols, bLength, ldb);
        CheckMatrix("c", "ldc", m, n, cLength, ldc);
        if (columnBiasLength != 0 && columnBiasLength < n)
        {
            throw new ArgumentException($"columnBias has {columnBiasLength} values, C has {n} columns", "columnBias");
        }

        if (rowBiasLength != 0 && rowBiasLength < m)
        {
            throw new ArgumentException($"rowBias has {rowBiasLength} values, C has {m} rows", "rowBias");
        }

        if ((columnBiasLength != 0 || rowBiasLength != 0) && accumulate)
        {
            throw new ArgumentException("a bias cannot be combined with accumulate", columnBiasLength != 0 ? "columnBias" : "rowBias");
        }

        if (columnBiasLength != 0 && rowBiasLength != 0)
        {
            throw new ArgumentException("give a column bias or a row bias, not both", "rowBias");
        }
    }

    private static void CheckMatrix(string name, string ldName, int rows, int cols, int length, int ld)
    {
        if (ld < Math.Max(1, cols))
        {
            throw new ArgumentOutOfRangeException(ldName, ld, $"row stride of {name} is smaller than its {cols} columns");
        }

        if (rows > 0 && cols > 0 && ((long)(rows - 1) * ld) + cols > length)
        {
            throw new ArgumentException($"{name} ({rows} x {cols}, row stride {ld}) needs {((long)(rows - 1) * ld) + cols} values, got {length}", name);
        }
    }

    private static GemmArguments Arguments(GemmTranspose transpose, int m, int n, int k, float* a, nint lda, float* b, nint ldb, float* c, nint ldc, bool accumulate, float* columnBias, float* rowBias) => new()
    {
        M = m,
        N = n,
        K = k,
        A = a,
        ARowStride = transpose == GemmTranspose.A ? 1 : lda,
        AKStride = transpose == GemmTranspose.A ? lda : 1,
        B = b,
        Ldb = ldb,
        TransposedB = transpose == GemmTranspose.B,
        C = c,
        Ldc = ldc,
        Accumulate = accumulate,
        Bias = columnBias != null ? columnBias : rowBias,
        BiasPerRow = rowBias is not null,
    };

    /// <summary>Runs the product on the pool, or on the calling thread when pool is null.</summary>
    private static void Run(ComputePool? pool, GemmArguments args, GemmIsa isa)
    {
        if (args.M == 0 || args.N == 0)
        {
            return;
        }

        if (args.K == 0)
        {
            FillWithoutProduct(args);
            return;
        }

        switch (isa)
        {
            case GemmIsa.Fma256 when Fma.IsSupported:
                Run<Fma256TileKernel>(pool, args);
                break;
            case GemmIsa.Vector128 or GemmIsa.Fma256:
                Run<Vector128TileKernel>(pool, args);
                break;
            default:
                Run<ScalarTileKernel>(pool, args);
                break;
        }
    }

    private static void Run<TKernel>(ComputePool? pool, GemmArguments args)
        where TKernel : struct, ITileKernel
    {
        var plan = GemmPlan.For(args.M, args.N, args.K, serial: pool is null || pool.Threads == 1);
        if (plan.SharedB)
        {
            args.SharedPackedB = (sharedScratch ??= new AlignedBuffer()).Ensure((long)args.K * plan.Panels * TileCols);
        }

        var runner = new GemmRunner<TKernel>(args, plan);
        var parts = plan.RowParts * plan.ColParts;
        if (pool is null || pool.Threads == 1)
        {
            for (var kb = 0; plan.SharedB && kb < plan.KBlocks; kb++)
            {
                runner.PackSharedBlock(kb);
            }

            for (var part = 0; part < parts; part++)
            {
                runner.RunPart(part);
            }

            return;
        }

        var job = new PoolJob<TKernel>(runner);
        if (plan.SharedB)
        {
            pool.For(plan.KBlocks, job.PackSharedBlock);
        }

        pool.For(parts, job.RunPart);
    }

    private static void FillWithoutProduct(GemmArguments args)
    {
        for (var i = 0; i < args.M; i++)
        {
            var row = new Span<float>(args.C + ((nint)i * args.Ldc), args.N);
            if (args.Bias is null)
            {
                if (!args.Accumulate)
                {
                    row.Clear();
                }
            }
            else if (args.BiasPerRow)
            {
                row.Fill(args.Bias[i]);
            }
            else
            {
                new ReadOnlySpan<float>(args.Bias, args.N).CopyTo(row);
            }
        }
    }

    /// <summary>The thread's private packing buffer.</summary>
    internal static float* PrivateScratch(long length) => (privateScratch ??= new AlignedBuffer()).Ensure(length);

    /// <summary>
    /// Packs B (k0 .. k0+kc) x (col0 .. col0+cols) into panels of 16 columns: panel p holds kc rows of
    /// 16 floats at dst + p * kc * 16, zero-padded beyond the last column.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackB(float* b, nint ldb, bool transposed, int k0, int kc, int col0, int cols, float* dst)
    {
        var panels = (cols + TileCols - 1) / TileCols;
        if (!transposed)
        {
            // B (k,n) row-major: stream whole rows, 16 floats at a time into each panel; the last
            // panel's partial row through lane masks (masked-off lanes read as zero, never fault).
            var full = cols / TileCols;
            var tail = cols - (full * TileCols);
            Vector256<float> mask0 = default, mask1 = default;
            if (tail > 0 && Avx.IsSupported)
            {
                var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
                mask0 = Vector256.LessThan(lanes, Vector256.Create(tail)).AsSingle();
                mask1 = Vector256.LessThan(lanes, Vector256.Create(tail - 8)).AsSingle();
            }

            for (var p = 0; p < kc; p++)
            {
                var src = b + ((k0 + p) * ldb) + col0;
                var d = dst + (p * TileCols);
                for (var q = 0; q < full; q++)
                {
                    var s = src + (q * TileCols);
                    var dq = d + ((nint)q * kc * TileCols);
                    Vector256.Store(Vector256.Load(s), dq);
                    Vector256.Store(Vector256.Load(s + 8), dq + 8);
                }

                if (tail > 0)
                {
                    var s = src + (full * TileCols);
                    var dq = d + ((nint)full * kc * TileCols);
                    if (Avx.IsSupported)
                    {
                        Avx.Store(dq, Avx.MaskLoad(s, mask0));
                        Avx.Store(dq + 8, Avx.MaskLoad(s + 8, mask1));
                    }
                    else
                    {
                        for (var j = 0; j < TileCols; j++)
                        {
                            dq[j] = j < tail ? s[j] : 0f;
                        }
                    }
                }
            }

            return;
        }

        // B stored (n,k): panel column j is source row col0 + j, contiguous in k.
        for (var q = 0; q < panels; q++)
        {
            var width = Math.Min(TileCols, cols - (q * TileCols));
            var d = dst + ((nint)q * kc * TileCols);
            var src = b + ((nint)(col0 + (q * TileCols)) * ldb) + k0;
            if (width == TileCols && Avx.IsSupported)
            {
                var p = 0;
                for (; p + 8 <= kc; p += 8)
                {
                    Layout.Transpose8x8(src + p, ldb, d + (p * TileCols), TileCols);
                    Layout.Transpose8x8(src + (8 * ldb) + p, ldb, d + (p * TileCols) + 8, TileCols);
                }

                for (; p < kc; p++)
                {
                    for (var j = 0; j < TileCols; j++)
                    {
                        d[(p * TileCols) + j] = src[(j * ldb) + p];
                    }
                }

                continue;
            }

            for (var p = 0; p < kc; p++)
            {
                var row = d + (p * TileCols);
                for (var j = 0; j < width; j++)
                {
                    row[j] = src[(j * ldb) + p];
                }

                for (var j = width; j < TileCols; j++)
                {
                    row[j] = 0f;
                }
            }
        }
    }

    internal struct GemmArguments
    {
        public int M;
        public int N;
        public int K;
        public float* A;
        public nint ARowStride;
        public nint AKStride;
        public float* B;
        public nint Ldb;
        public bool TransposedB;
        public float* C;
        public nint Ldc;
        public bool Accumulate;
        public float* Bias;
        public bool BiasPerRow;
        public float* SharedPackedB;
    }

    /// <summary>The partition of one product, a function of (m, n, k) only.</summary>
    internal readonly record struct GemmPlan(int Strips, int Panels, int KBlocks, int Kc, int RowParts, int ColParts, bool SharedB)
    {
        public static GemmPlan For(int m, int n, int k, bool serial)
        {
            var strips = (m + TileRows - 1) / TileRows;
            var panels = (n + TileCols - 1) / TileCols;
            var kBlocks = Math.Max(1, (k + KcMax - 1) / KcMax);
            var kc = (k + kBlocks - 1) / kBlocks;
            var target = serial ? 1 : (int)Math.Clamp(Flops(m, n, k) / FlopsPerPart, 1, MaxParts);
            var colParts = (panels + MaxPanelsPerBlock - 1) / MaxPanelsPerBlock;
            var rowParts = 1;
            if (target > colParts)
            {
                if (m >= n)
                {
                    rowParts = Math.Min(strips, (target + colParts - 1) / colParts);
                }
                else
                {
                    colParts = Math.Min(panels, target);
                }
            }

            var shared = rowParts > 1 && (long)k * panels * TileCols <= SharedPackLimit;
            return new GemmPlan(strips, panels, kBlocks, kc, rowParts, colParts, shared);
        }
    }

    /// <summary>Runs the parts of one product; a struct so serial calls allocate nothing.</summary>
    private readonly struct GemmRunner<TKernel>(GemmArguments args, GemmPlan plan)
        where TKernel : struct, ITileKernel
    {
        /// <summary>Packs all panels of K block kb into the shared buffer (block kb starts at k0 * panels * 16).</summary>
        public void PackSharedBlock(int kb)
        {
            var (k0, kc) = KBlock(kb);
            PackB(args.B, args.Ldb, args.TransposedB, k0, kc, 0, args.N, args.SharedPackedB + ((nint)k0 * plan.Panels * TileCols));
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void RunPart(int part)
        {
            var (s0, s1) = ComputePool.Range(plan.Strips, plan.RowParts, part / plan.ColParts);
            var (q0, q1) = ComputePool.Range(plan.Panels, plan.ColParts, part % plan.ColParts);
            var row0 = s0 * TileRows;
            var row1 = Math.Min(args.M, s1 * TileRows);
            var col0 = q0 * TileCols;
            var cols = Math.Min(args.N, q1 * TileCols) - col0;
            var packed = plan.SharedB ? null : PrivateScratch((long)plan.Kc * (q1 - q0) * TileCols);
            for (var kb = 0; kb < plan.KBlocks; kb++)
            {
                var (k0, kc) = KBlock(kb);
                float* block;
                if (plan.SharedB)
                {
                    block = args.SharedPackedB + ((nint)k0 * plan.Panels * TileCols) + ((nint)q0 * kc * TileCols);
                }
                else
                {
                    PackB(args.B, args.Ldb, args.TransposedB, k0, kc, col0, cols, packed);
                    block = packed;
                }

                var init = kb > 0 || args.Accumulate ? TileInit.Load : args.Bias is null ? TileInit.Zero : args.BiasPerRow ? TileInit.RowBias : TileInit.Bias;
                for (var i = row0; i < row1; i += TileRows)
                {
                    var rows = Math.Min(TileRows, row1 - i);
                    var a = args.A + (i * args.ARowStride) + (k0 * args.AKStride);
                    var c = args.C + (i * args.Ldc) + col0;
                    var bias = init == TileInit.RowBias ? args.Bias + i : args.Bias + col0;
                    Strip(rows, kc, a, block, (nint)kc * TileCols, c, cols, init, bias);
                }
            }
        }

        private (int K0, int Kc) KBlock(int kb)
        {
            var k0 = kb * plan.Kc;
            return (k0, Math.Min(plan.Kc, args.K - k0));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Strip(int rows, nint kc, float* a, float* b, nint panelStride, float* c, int n, TileInit init, float* bias)
        {
            var (rs, ks, ldc) = (args.ARowStride, args.AKStride, args.Ldc);
            switch (rows)
            {
                case 6:
                    TKernel.Strip<Rows6>(kc, a, rs, ks, b, panelStride, c, ldc, n, init, bias);
                    break;
                case 5:
                    TKernel.Strip<Rows5>(kc, a, rs, ks, b, panelStride, c, ldc, n, init, bias);
                    break;
                case 4:
                    TKernel.Strip<Rows4>(kc, a, rs, ks, b, panelStride, c, ldc, n, init, bias);
                    break;
                case 3:
                    TKernel.Strip<Rows3>(kc, a, rs, ks, b, panelStride, c, ldc, n, init, bias);
                    break;
                case 2:
                    TKernel.Strip<Rows2>(kc, a, rs, ks, b, panelStride, c, ldc, n, init, bias);
                    break;
                default:
                    TKernel.Strip<Rows1>(kc, a, rs, ks, b, panelStride, c, ldc, n, init, bias);
                    break;
            }
        }
    }

    private sealed class PoolJob<TKernel>(GemmRunner<TKernel> runner)
        where TKernel : struct, ITileKernel
    {
        public void PackSharedBlock(int kb) => runner.PackSharedBlock(kb);

        public void RunPart(int part) => runner.RunPart(part);
    }
}
