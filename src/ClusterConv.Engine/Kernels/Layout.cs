using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClusterConv.Engine.Kernels;

/// <summary>Matrix transposes, for moving between NCHW (channels outer) and NHWC (channels inner).</summary>
internal static unsafe class Layout
{
    // dst (cols, rows) <- src (rows, cols); rows of src are srcLd apart, rows of dst dstLd apart.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transpose(float* src, int rows, int cols, nint srcLd, float* dst, nint dstLd)
    {
        var i = 0;
        if (Avx.IsSupported)
        {
            for (; i + 8 <= rows; i += 8)
            {
                var j = 0;
                for (; j + 8 <= cols; j += 8)
                {
                    Transpose8x8(src + (i * srcLd) + j, srcLd, dst + (j * dstLd) + i, dstLd);
                }

                for (; j < cols; j++)
                {
                    for (var r = i; r < i + 8; r++)
                    {
                        dst[(j * dstLd) + r] = src[(r * srcLd) + j];
                    }
                }
            }
        }

        for (; i < rows; i++)
        {
            for (var j = 0; j < cols; j++)
            {
                dst[(j * dstLd) + i] = src[(i * srcLd) + j];
            }
        }
    }

    // dst (8, 8) <- src (8, 8) transposed, with AVX shuffles.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose8x8(float* src, nint srcLd, float* dst, nint dstLd)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + srcLd);
        var r2 = Avx.LoadVector256(src + (2 * srcLd));
        var r3 = Avx.LoadVector256(src + (3 * srcLd));
        var r4 = Avx.LoadVector256(src + (4 * srcLd));
        var r5 = Avx.LoadVector256(src + (5 * srcLd));
        var r6 = Avx.LoadVector256(src + (6 * srcLd));
        var r7 = Avx.LoadVector256(src + (7 * srcLd));

        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);

        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);

        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + dstLd, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + (2 * dstLd), Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + (3 * dstLd), Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + (4 * dstLd), Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + (5 * dstLd), Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + (6 * dstLd), Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + (7 * dstLd), Avx.Permute2x128(u3, u7, 0x31));
    }

    // dst[0 .. length) <- src[0 .. length); runs of 8 or more end with an overlapping vector
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void CopyRun(float* src, float* dst, int length)
    {
        if (length < 8)
        {
            for (var j = 0; j < length; j++)
            {
                dst[j] = src[j];
            }

            return;
        }

        var i = 0;
        for (; i + 8 <= length; i += 8)
        {
            Vector256.Store(Vector256.Load(src + i), dst + i);
        }

        if (i < length)
        {
            Vector256.Store(Vector256.Load(src + length - 8), dst + length - 8);
        }
    }

    // dst[0 .. length) += src[0 .. length). Runs of 8 or more end with two vectors, the last one
    // overlapping: both are loaded before either is stored (no store-forwarding stall), the
    // overlapping one adds zero to the lanes the other covers and is stored first.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AddRun(float* src, float* dst, int length)
    {
        if (length < 8)
        {
            for (var j = 0; j < length; j++)
            {
                dst[j] += src[j];
            }

            return;
        }

        var i = 0;
        for (; i + 16 <= length; i += 8)
        {
            Vector256.Store(Vector256.Load(dst + i) + Vector256.Load(src + i), dst + i);
        }

        var last = Vector256.Load(dst + i) + Vector256.Load(src + i);
        var extra = length - i - 8;
        if (extra > 0)
        {
            var fresh = Vector256.GreaterThanOrEqual(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(8 - extra)).AsSingle();
            var tail = dst + length - 8;
            Vector256.Store(Vector256.Load(tail) + (Vector256.Load(src + length - 8) & fresh), tail);
        }

        Vector256.Store(last, dst + i);
    }

    /// <summary>Sum in a fixed order (8 lanes from the first element, then the tail): the same bits wherever the data sits in memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Sum(float* x, int length)
    {
        var acc = Vector256<float>.Zero;
        var i = 0;
        for (; i + 8 <= length; i += 8)
        {
            acc += Vector256.Load(x + i);
        }

        var sum = Vector256.Sum(acc);
        for (; i < length; i++)
        {
            sum += x[i];
        }

        return sum;
    }
}
