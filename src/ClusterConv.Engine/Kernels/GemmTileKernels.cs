using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClusterConv.Engine.Kernels;

/// <summary>Instruction set a GEMM runs on; chosen once (<see cref="Gemm.BestIsa"/>), selectable in tests.</summary>
internal enum GemmIsa
{
    Scalar,
    Vector128,
    Fma256,
}

/// <summary>How a tile's accumulators start.</summary>
internal enum TileInit
{
    /// <summary>From zero.</summary>
    Zero,

    /// <summary>From the current C (accumulate, or a later K block).</summary>
    Load,

    /// <summary>From the 16 column-bias values at bias.</summary>
    Bias,

    /// <summary>Row r from the row-bias value bias[r].</summary>
    RowBias,
}

/// <summary>Rows in a tile, as a type, so each row count gets its own specialised copy of a kernel with no dead rows.</summary>
internal interface IRowCount
{
    static abstract int Value { get; }
}

internal readonly struct Rows1 : IRowCount
{
    public static int Value => 1;
}

internal readonly struct Rows2 : IRowCount
{
    public static int Value => 2;
}

internal readonly struct Rows3 : IRowCount
{
    public static int Value => 3;
}

internal readonly struct Rows4 : IRowCount
{
    public static int Value => 4;
}

internal readonly struct Rows5 : IRowCount
{
    public static int Value => 5;
}

internal readonly struct Rows6 : IRowCount
{
    public static int Value => 6;
}

/// <summary>
/// One micro-kernel over a row strip: for each 16-column panel q of C's n columns,
/// C tile (rows x width) = init + A strip (rows x kc) · B panel q (kc x 16), width 16 except
/// possibly the last. A(i, p) is at a[i * rowStride + p * kStride] (so A may be transposed
/// without packing); B panels are packed, 16 floats per k, panelStride apart, zero-padded past the
/// matrix edge; C rows are ldc apart. Only C's n columns (and n column-bias values) are touched.
/// Looping over the panels inside the kernel sets the A pointers up once per strip.
/// </summary>
internal unsafe interface ITileKernel
{
    static abstract void Strip<TRows>(nint kc, float* a, nint rowStride, nint kStride, float* b, nint panelStride, float* c, nint ldc, int n, TileInit init, float* bias)
        where TRows : struct, IRowCount;
}

/// <summary>AVX2 + FMA: 6x16 tile in 12 Vector256 accumulators, B loaded as 2 vectors, A broadcast.</summary>
internal readonly unsafe struct Fma256TileKernel : ITileKernel
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Strip<TRows>(nint kc, float* a, nint rowStride, nint kStride, float* b, nint panelStride, float* c, nint ldc, int n, TileInit init, float* bias)
        where TRows : struct, IRowCount
    {
        var a0 = a;
        var a1 = a + rowStride;
        var a2 = a + (2 * rowStride);
        var a3 = a + (3 * rowStride);
        var a4 = a + (4 * rowStride);
        var a5 = a + (5 * rowStride);
        for (var j = 0; j < n; j += Gemm.TileCols, b += panelStride, c += Gemm.TileCols)
        {
            Tile<TRows>(kc, a0, a1, a2, a3, a4, a5, kStride, b, c, ldc, Math.Min(Gemm.TileCols, n - j), init, init == TileInit.Bias ? bias + j : bias);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TRows>(nint kc, float* a0, float* a1, float* a2, float* a3, float* a4, float* a5, nint kStride, float* b, float* c, nint ldc, int width, TileInit init, float* bias)
        where TRows : struct, IRowCount
    {
        // Right-edge tiles load and store through lane masks instead of a scratch tile. The masks
        // are made where used, not kept across the k loop: 12 accumulators, 2 B vectors and the
        // broadcast then fit the 16 VEX registers (a broadcast into EVEX-only ymm16 measured 15%
        // slower on Zen 4).
        var full = width == Gemm.TileCols;

        Vector256<float> c00, c01, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        if (init == TileInit.Load)
        {
            c00 = Load(full, c, width, 0);
            c01 = Load(full, c + 8, width, 8);
            if (TRows.Value > 1)
            {
                c10 = Load(full, c + ldc, width, 0);
                c11 = Load(full, c + ldc + 8, width, 8);
            }

            if (TRows.Value > 2)
            {
                c20 = Load(full, c + (2 * ldc), width, 0);
                c21 = Load(full, c + (2 * ldc) + 8, width, 8);
            }

            if (TRows.Value > 3)
            {
                c30 = Load(full, c + (3 * ldc), width, 0);
                c31 = Load(full, c + (3 * ldc) + 8, width, 8);
            }

            if (TRows.Value > 4)
            {
                c40 = Load(full, c + (4 * ldc), width, 0);
                c41 = Load(full, c + (4 * ldc) + 8, width, 8);
            }

            if (TRows.Value > 5)
            {
                c50 = Load(full, c + (5 * ldc), width, 0);
                c51 = Load(full, c + (5 * ldc) + 8, width, 8);
            }
        }
        else if (init == TileInit.RowBias)
        {
            c00 = Vector256.Create(bias[0]);
            c01 = c00;
            if (TRows.Value > 1)
            {
                c10 = Vector256.Create(bias[1]);
                c11 = c10;
            }

            if (TRows.Value > 2)
            {
                c20 = Vector256.Create(bias[2]);
                c21 = c20;
            }

            if (TRows.Value > 3)
            {
                c30 = Vector256.Create(bias[3]);
                c31 = c30;
            }

            if (TRows.Value > 4)
            {
                c40 = Vector256.Create(bias[4]);
                c41 = c40;
            }

            if (TRows.Value > 5)
            {
                c50 = Vector256.Create(bias[5]);
                c51 = c50;
            }
        }
        else
        {
            if (init == TileInit.Bias)
            {
                c00 = Load(full, bias, width, 0);
                c01 = Load(full, bias + 8, width, 8);
            }
            else
            {
                c00 = Vector256<float>.Zero;
                c01 = Vector256<float>.Zero;
            }

            c10 = c00;
            c11 = c01;
            c20 = c00;
            c21 = c01;
            c30 = c00;
            c31 = c01;
            c40 = c00;
            c41 = c01;
            c50 = c00;
            c51 = c01;
        }

        nint t = 0;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Avx.LoadVector256(b);
            var b1 = Avx.LoadVector256(b + 8);
            var av = Vector256.Create(a0[t]);
            c00 = Fma.MultiplyAdd(av, b0, c00);
            c01 = Fma.MultiplyAdd(av, b1, c01);
            if (TRows.Value > 1)
            {
                av = Vector256.Create(a1[t]);
                c10 = Fma.MultiplyAdd(av, b0, c10);
                c11 = Fma.MultiplyAdd(av, b1, c11);
            }

            if (TRows.Value > 2)
            {
                av = Vector256.Create(a2[t]);
                c20 = Fma.MultiplyAdd(av, b0, c20);
                c21 = Fma.MultiplyAdd(av, b1, c21);
            }

            if (TRows.Value > 3)
            {
                av = Vector256.Create(a3[t]);
                c30 = Fma.MultiplyAdd(av, b0, c30);
                c31 = Fma.MultiplyAdd(av, b1, c31);
            }

            if (TRows.Value > 4)
            {
                av = Vector256.Create(a4[t]);
                c40 = Fma.MultiplyAdd(av, b0, c40);
                c41 = Fma.MultiplyAdd(av, b1, c41);
            }

            if (TRows.Value > 5)
            {
                av = Vector256.Create(a5[t]);
                c50 = Fma.MultiplyAdd(av, b0, c50);
                c51 = Fma.MultiplyAdd(av, b1, c51);
            }

            b += 16;
            t += kStride;
        }

        Store(full, c, width, 0, c00);
        Store(full, c + 8, width, 8, c01);
        if (TRows.Value > 1)
        {
            Store(full, c + ldc, width, 0, c10);
            Store(full, c + ldc + 8, width, 8, c11);
        }

        if (TRows.Value > 2)
        {
            Store(full, c + (2 * ldc), width, 0, c20);
            Store(full, c + (2 * ldc) + 8, width, 8, c21);
        }

        if (TRows.Value > 3)
        {
            Store(full, c + (3 * ldc), width, 0, c30);
            Store(full, c + (3 * ldc) + 8, width, 8, c31);
        }

        if (TRows.Value > 4)
        {
            Store(full, c + (4 * ldc), width, 0, c40);
            Store(full, c + (4 * ldc) + 8, width, 8, c41);
        }

        if (TRows.Value > 5)
        {
            Store(full, c + (5 * ldc), width, 0, c50);
            Store(full, c + (5 * ldc) + 8, width, 8, c51);
        }
    }

    // Masked lanes: those below width - offset. Loads and stores build the mask with different
    // (equivalent) comparisons so the JIT cannot merge them into one register live across the loop.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Load(bool full, float* p, int width, int offset) =>
        full ? Avx.LoadVector256(p) : Avx.MaskLoad(p, Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(width - offset)).AsSingle());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(bool full, float* p, int width, int offset, Vector256<float> value)
    {
        if (full)
        {
            Avx.Store(p, value);
        }
        else
        {
            Avx.MaskStore(p, Vector256.GreaterThan(Vector256.Create(width - offset), Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7)).AsSingle(), value);
        }
    }
}

/// <summary>
/// Portable 128-bit vectors (SSE or NEON): the 16-column tile in two 8-column halves, each with
/// 12 Vector128 accumulators so x64's 16 registers suffice.
/// </summary>
internal readonly unsafe struct Vector128TileKernel : ITileKernel
{
    public static void Strip<TRows>(nint kc, float* a, nint rowStride, nint kStride, float* b, nint panelStride, float* c, nint ldc, int n, TileInit init, float* bias)
        where TRows : struct, IRowCount
    {
        for (var j = 0; j < n; j += Gemm.TileCols, b += panelStride, c += Gemm.TileCols)
        {
            Tile<TRows>(kc, a, rowStride, kStride, b, c, ldc, Math.Min(Gemm.TileCols, n - j), init, init == TileInit.Bias ? bias + j : bias);
        }
    }

    private static void Tile<TRows>(nint kc, float* a, nint rowStride, nint kStride, float* b, float* c, nint ldc, int width, TileInit init, float* bias)
        where TRows : struct, IRowCount
    {
        if (width < Gemm.TileCols)
        {
            // Right edge: run the full tile on a scratch copy, then copy back the real columns.
            const int Cols = Gemm.TileCols;
            var tile = stackalloc float[Gemm.TileRows * Cols];
            var padded = stackalloc float[Cols];
            for (var r = 0; r < TRows.Value; r++)
            {
                for (var j = 0; j < width && init == TileInit.Load; j++)
                {
                    tile[(r * Cols) + j] = c[(r * ldc) + j];
                }
            }

            if (init == TileInit.Bias)
            {
                for (var j = 0; j < Cols; j++)
                {
                    padded[j] = j < width ? bias[j] : 0f;
                }

                bias = padded;
            }

            Tile<TRows>(kc, a, rowStride, kStride, b, tile, Cols, Cols, init, bias);
            for (var r = 0; r < TRows.Value; r++)
            {
                for (var j = 0; j < width; j++)
                {
                    c[(r * ldc) + j] = tile[(r * Cols) + j];
                }
            }

            return;
        }

        Half<TRows>(kc, a, rowStride, kStride, b, c, ldc, init, bias);
        Half<TRows>(kc, a, rowStride, kStride, b + 8, c + 8, ldc, init, init == TileInit.RowBias ? bias : bias + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Half<TRows>(nint kc, float* a, nint rowStride, nint kStride, float* b, float* c, nint ldc, TileInit init, float* bias)
        where TRows : struct, IRowCount
    {
        Vector128<float> c00, c01, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector128<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        if (init == TileInit.Load)
        {
            c00 = Vector128.Load(c);
            c01 = Vector128.Load(c + 4);
            if (TRows.Value > 1)
            {
                c10 = Vector128.Load(c + ldc);
                c11 = Vector128.Load(c + ldc + 4);
            }

            if (TRows.Value > 2)
            {
                c20 = Vector128.Load(c + (2 * ldc));
                c21 = Vector128.Load(c + (2 * ldc) + 4);
            }

            if (TRows.Value > 3)
            {
                c30 = Vector128.Load(c + (3 * ldc));
                c31 = Vector128.Load(c + (3 * ldc) + 4);
            }

            if (TRows.Value > 4)
            {
                c40 = Vector128.Load(c + (4 * ldc));
                c41 = Vector128.Load(c + (4 * ldc) + 4);
            }

            if (TRows.Value > 5)
            {
                c50 = Vector128.Load(c + (5 * ldc));
                c51 = Vector128.Load(c + (5 * ldc) + 4);
            }
        }
        else if (init == TileInit.RowBias)
        {
            c00 = Vector128.Create(bias[0]);
            c01 = c00;
            if (TRows.Value > 1)
            {
                c10 = Vector128.Create(bias[1]);
                c11 = c10;
            }

            if (TRows.Value > 2)
            {
                c20 = Vector128.Create(bias[2]);
                c21 = c20;
            }

            if (TRows.Value > 3)
            {
                c30 = Vector128.Create(bias[3]);
                c31 = c30;
            }

            if (TRows.Value > 4)
            {
                c40 = Vector128.Create(bias[4]);
                c41 = c40;
            }

            if (TRows.Value > 5)
            {
                c50 = Vector128.Create(bias[5]);
                c51 = c50;
            }
        }
        else
        {
            if (init == TileInit.Bias)
            {
                c00 = Vector128.Load(bias);
                c01 = Vector128.Load(bias + 4);
            }
            else
            {
                c00 = Vector128<float>.Zero;
                c01 = Vector128<float>.Zero;
            }

            c10 = c00;
            c11 = c01;
            c20 = c00;
            c21 = c01;
            c30 = c00;
            c31 = c01;
            c40 = c00;
            c41 = c01;
            c50 = c00;
            c51 = c01;
        }

        nint t = 0;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector128.Load(b);
            var b1 = Vector128.Load(b + 4);
            var av = Vector128.Create(a[t]);
            c00 = Vector128.MultiplyAddEstimate(av, b0, c00);
            c01 = Vector128.MultiplyAddEstimate(av, b1, c01);
            if (TRows.Value > 1)
            {
                av = Vector128.Create(a[rowStride + t]);
                c10 = Vector128.MultiplyAddEstimate(av, b0, c10);
                c11 = Vector128.MultiplyAddEstimate(av, b1, c11);
            }

            if (TRows.Value > 2)
            {
                av = Vector128.Create(a[(2 * rowStride) + t]);
                c20 = Vector128.MultiplyAddEstimate(av, b0, c20);
                c21 = Vector128.MultiplyAddEstimate(av, b1, c21);
            }

            if (TRows.Value > 3)
            {
                av = Vector128.Create(a[(3 * rowStride) + t]);
                c30 = Vector128.MultiplyAddEstimate(av, b0, c30);
                c31 = Vector128.MultiplyAddEstimate(av, b1, c31);
            }

            if (TRows.Value > 4)
            {
                av = Vector128.Create(a[(4 * rowStride) + t]);
                c40 = Vector128.MultiplyAddEstimate(av, b0, c40);
                c41 = Vector128.MultiplyAddEstimate(av, b1, c41);
            }

            if (TRows.Value > 5)
            {
                av = Vector128.Create(a[(5 * rowStride) + t]);
                c50 = Vector128.MultiplyAddEstimate(av, b0, c50);
                c51 = Vector128.MultiplyAddEstimate(av, b1, c51);
            }

            b += 16;
            t += kStride;
        }

        c00.Store(c);
        c01.Store(c + 4);
        if (TRows.Value > 1)
        {
            c10.Store(c + ldc);
            c11.Store(c + ldc + 4);
        }

        if (TRows.Value > 2)
        {
            c20.Store(c + (2 * ldc));
            c21.Store(c + (2 * ldc) + 4);
        }

        if (TRows.Value > 3)
        {
            c30.Store(c + (3 * ldc));
            c31.Store(c + (3 * ldc) + 4);
        }

        if (TRows.Value > 4)
        {
            c40.Store(c + (4 * ldc));
            c41.Store(c + (4 * ldc) + 4);
        }

        if (TRows.Value > 5)
        {
            c50.Store(c + (5 * ldc));
            c51.Store(c + (5 * ldc) + 4);
        }
    }
}

/// <summary>Plain scalar code, for hardware without usable vectors.</summary>
internal readonly unsafe struct ScalarTileKernel : ITileKernel
{
    public static void Strip<TRows>(nint kc, float* a, nint rowStride, nint kStride, float* b, nint panelStride, float* c, nint ldc, int n, TileInit init, float* bias)
        where TRows : struct, IRowCount
    {
        for (var j = 0; j < n; j += Gemm.TileCols, b += panelStride, c += Gemm.TileCols)
        {
            Tile<TRows>(kc, a, rowStride, kStride, b, c, ldc, Math.Min(Gemm.TileCols, n - j), init, init == TileInit.Bias ? bias + j : bias);
        }
    }

    private static void Tile<TRows>(nint kc, float* a, nint rowStride, nint kStride, float* b, float* c, nint ldc, int width, TileInit init, float* bias)
        where TRows : struct, IRowCount
    {
        const int Cols = Gemm.TileCols;
        var acc = stackalloc float[Gemm.TileRows * Cols];
        for (var r = 0; r < TRows.Value; r++)
        {
            for (var j = 0; j < width; j++)
            {
                acc[(r * Cols) + j] = init switch
                {
                    TileInit.Load => c[(r * ldc) + j],
                    TileInit.Bias => bias[j],
                    TileInit.RowBias => bias[r],
                    _ => 0f,
                };
            }
        }

        nint t = 0;
        for (nint p = 0; p < kc; p++)
        {
            for (var r = 0; r < TRows.Value; r++)
            {
                var av = a[(r * rowStride) + t];
                var row = acc + (r * Cols);
                for (var j = 0; j < Cols; j++)
                {
                    row[j] += av * b[j];
                }
            }

            b += Cols;
            t += kStride;
        }

        for (var r = 0; r < TRows.Value; r++)
        {
            for (var j = 0; j < width; j++)
            {
                c[(r * ldc) + j] = acc[(r * Cols) + j];
            }
        }
    }
}
