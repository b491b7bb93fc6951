using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ClusterConv.Engine;

/// <summary>
/// TensorPrimitives-style drivers for element-wise kernels: one generic loop per arity, Vector256
/// then Vector128 then a scalar tail, and small operator structs that say what to compute per lane.
/// Operators must compute the same IEEE operations in the same order in all three forms (no fused
/// multiply-add, no approximations), so an element's result does not depend on which form ran it,
/// hence not on where a span starts or how a vector is sliced.
/// Outputs may alias inputs exactly (same start); partial overlap is not supported.
/// </summary>
internal static class Elementwise
{
    /// <summary>y = f(x).</summary>
    internal interface IUnary
    {
        float Invoke(float x);

        Vector128<float> Invoke(Vector128<float> x);

        Vector256<float> Invoke(Vector256<float> x);
    }

    /// <summary>z = f(a, b).</summary>
    internal interface IBinary
    {
        float Invoke(float a, float b);

        Vector128<float> Invoke(Vector128<float> a, Vector128<float> b);

        Vector256<float> Invoke(Vector256<float> a, Vector256<float> b);
    }

    /// <summary>d = f(a, b, c).</summary>
    internal interface ITernary
    {
        float Invoke(float a, float b, float c);

        Vector128<float> Invoke(Vector128<float> a, Vector128<float> b, Vector128<float> c);

        Vector256<float> Invoke(Vector256<float> a, Vector256<float> b, Vector256<float> c);
    }

    /// <summary>
    /// An in-place update of a weight and up to two state slots from a gradient (optimizer steps).
    /// <see cref="Slots"/> says how many of s0, s1 are real; the driver neither loads nor stores the others.
    /// </summary>
    internal interface IUpdate
    {
        static abstract int Slots { get; }

        void Invoke(ref float w, ref float s0, ref float s1, float g);

        void Invoke(ref Vector128<float> w, ref Vector128<float> s0, ref Vector128<float> s1, Vector128<float> g);

        void Invoke(ref Vector256<float> w, ref Vector256<float> s0, ref Vector256<float> s1, Vector256<float> g);
    }

    // y (n) <- op(x (n))
    public static void Map<TOp>(in TOp op, Span<float> y, ReadOnlySpan<float> x)
        where TOp : struct, IUnary
    {
        if (y.Length != x.Length)
        {
            throw new ArgumentException($"output length {y.Length} differs from input length {x.Length}", nameof(y));
        }

        ref var xr = ref MemoryMarshal.GetReference(x);
        ref var yr = ref MemoryMarshal.GetReference(y);
        var n = (nuint)x.Length;
        nuint i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector256<float>.Count <= n; i += (nuint)Vector256<float>.Count)
            {
                op.Invoke(Vector256.LoadUnsafe(ref xr, i)).StoreUnsafe(ref yr, i);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector128<float>.Count <= n; i += (nuint)Vector128<float>.Count)
            {
                op.Invoke(Vector128.LoadUnsafe(ref xr, i)).StoreUnsafe(ref yr, i);
            }
        }

        for (; i < n; i++)
        {
            Unsafe.Add(ref yr, i) = op.Invoke(Unsafe.Add(ref xr, i));
        }
    }

    // z (n) <- op(a (n), b (n))
    public static void Map<TOp>(in TOp op, Span<float> z, ReadOnlySpan<float> a, ReadOnlySpan<float> b)
        where TOp : struct, IBinary
    {
        if (z.Length != a.Length || b.Length != a.Length)
        {
            throw new ArgumentException($"span lengths differ: output {z.Length}, inputs {a.Length} and {b.Length}", nameof(z));
        }

        ref var ar = ref MemoryMarshal.GetReference(a);
        ref var br = ref MemoryMarshal.GetReference(b);
        ref var zr = ref MemoryMarshal.GetReference(z);
        var n = (nuint)a.Length;
        nuint i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector256<float>.Count <= n; i += (nuint)Vector256<float>.Count)
            {
                op.Invoke(Vector256.LoadUnsafe(ref ar, i), Vector256.LoadUnsafe(ref br, i)).StoreUnsafe(ref zr, i);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector128<float>.Count <= n; i += (nuint)Vector128<float>.Count)
            {
                op.Invoke(Vector128.LoadUnsafe(ref ar, i), Vector128.LoadUnsafe(ref br, i)).StoreUnsafe(ref zr, i);
            }
        }

        for (; i < n; i++)
        {
            Unsafe.Add(ref zr, i) = op.Invoke(Unsafe.Add(ref ar, i), Unsafe.Add(ref br, i));
        }
    }

    // d (n) <- op(a (n), b (n), c (n))
    public static void Map<TOp>(in TOp op, Span<float> d, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c)
        where TOp : struct, ITernary
    {
        if (d.Length != a.Length || b.Length != a.Length || c.Length != a.Length)
        {
            throw new ArgumentException($"span lengths differ: output {d.Length}, inputs {a.Length}, {b.Length} and {c.Length}", nameof(d));
        }

        ref var ar = ref MemoryMarshal.GetReference(a);
        ref var br = ref MemoryMarshal.GetReference(b);
        ref var cr = ref MemoryMarshal.GetReference(c);
        ref var dr = ref MemoryMarshal.GetReference(d);
        var n = (nuint)a.Length;
        nuint i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector256<float>.Count <= n; i += (nuint)Vector256<float>.Count)
            {
                op.Invoke(Vector256.LoadUnsafe(ref ar, i), Vector256.LoadUnsafe(ref br, i), Vector256.LoadUnsafe(ref cr, i)).StoreUnsafe(ref dr, i);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector128<float>.Count <= n; i += (nuint)Vector128<float>.Count)
            {
                op.Invoke(Vector128.LoadUnsafe(ref ar, i), Vector128.LoadUnsafe(ref br, i), Vector128.LoadUnsafe(ref cr, i)).StoreUnsafe(ref dr, i);
            }
        }

        for (; i < n; i++)
        {
            Unsafe.Add(ref dr, i) = op.Invoke(Unsafe.Add(ref ar, i), Unsafe.Add(ref br, i), Unsafe.Add(ref cr, i));
        }
    }

    // w (n), s0 (n), s1 (n) updated in place from g (n); s0/s1 unused (may be empty) beyond TOp.Slots.
    public static void Update<TOp>(in TOp op, Span<float> w, Span<float> s0, Span<float> s1, ReadOnlySpan<float> g)
        where TOp : struct, IUpdate
    {
        if (w.Length != g.Length || (TOp.Slots >= 1 && s0.Length != g.Length) || (TOp.Slots >= 2 && s1.Length != g.Length))
        {
            throw new ArgumentException($"update span lengths differ: weights {w.Length}, gradients {g.Length}, state {s0.Length} and {s1.Length}", nameof(w));
        }

        // Slots the operator does not use point at a local so the same loop body serves every arity.
        float unused0 = 0f, unused1 = 0f;
        var n = (nuint)g.Length;
        ref var wr = ref MemoryMarshal.GetReference(w);
        ref var gr = ref MemoryMarshal.GetReference(g);
        ref var r0 = ref TOp.Slots >= 1 ? ref MemoryMarshal.GetReference(s0) : ref unused0;
        ref var r1 = ref TOp.Slots >= 2 ? ref MemoryMarshal.GetReference(s1) : ref unused1;
        nuint i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector256<float>.Count <= n; i += (nuint)Vector256<float>.Count)
            {
                var wv = Vector256.LoadUnsafe(ref wr, i);
                var v0 = TOp.Slots >= 1 ? Vector256.LoadUnsafe(ref r0, i) : default;
                var v1 = TOp.Slots >= 2 ? Vector256.LoadUnsafe(ref r1, i) : default;
                op.Invoke(ref wv, ref v0, ref v1, Vector256.LoadUnsafe(ref gr, i));
                wv.StoreUnsafe(ref wr, i);
                if (TOp.Slots >= 1)
                {
                    v0.StoreUnsafe(ref r0, i);
                }

                if (TOp.Slots >= 2)
                {
                    v1.StoreUnsafe(ref r1, i);
                }
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector128<float>.Count <= n; i += (nuint)Vector128<float>.Count)
            {
                var wv = Vector128.LoadUnsafe(ref wr, i);
                var v0 = TOp.Slots >= 1 ? Vector128.LoadUnsafe(ref r0, i) : default;
                var v1 = TOp.Slots >= 2 ? Vector128.LoadUnsafe(ref r1, i) : default;
                op.Invoke(ref wv, ref v0, ref v1, Vector128.LoadUnsafe(ref gr, i));
                wv.StoreUnsafe(ref wr, i);
                if (TOp.Slots >= 1)
                {
                    v0.StoreUnsafe(ref r0, i);
                }

                if (TOp.Slots >= 2)
                {
                    v1.StoreUnsafe(ref r1, i);
                }
            }
        }

        for (; i < n; i++)
        {
            ref var e0 = ref TOp.Slots >= 1 ? ref Unsafe.Add(ref r0, i) : ref unused0;
            ref var e1 = ref TOp.Slots >= 2 ? ref Unsafe.Add(ref r1, i) : ref unused1;
            op.Invoke(ref Unsafe.Add(ref wr, i), ref e0, ref e1, Unsafe.Add(ref gr, i));
        }
    }

    /// <summary>
    /// Sum of x in a fixed order: eight running lanes over blocks of eight, then the lanes pairwise,
    /// then the tail. Always uses the 8-lane shape (software-emulated where Vector256 is not
    /// accelerated) so a sum is the same on every machine and for every thread count.
    /// </summary>
    public static float Sum(ReadOnlySpan<float> x)
    {
        ref var xr = ref MemoryMarshal.GetReference(x);
        var n = (nuint)x.Length;
        var acc = Vector256<float>.Zero;
        nuint i = 0;
        for (; i + 8 <= n; i += 8)
        {
            acc += Vector256.LoadUnsafe(ref xr, i);
        }

        var sum = ReduceLanes(acc);
        for (; i < n; i++)
        {
            sum += Unsafe.Add(ref xr, i);
        }

        return sum;
    }

    /// <summary>Sum of (x - center)^2, in the fixed order of <see cref="Sum"/>.</summary>
    public static float SumSquaredDeviation(ReadOnlySpan<float> x, float center)
    {
        ref var xr = ref MemoryMarshal.GetReference(x);
        var n = (nuint)x.Length;
        var acc = Vector256<float>.Zero;
        var cv = Vector256.Create(center);
        nuint i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var d = Vector256.LoadUnsafe(ref xr, i) - cv;
            acc += d * d;
        }

        var sum = ReduceLanes(acc);
        for (; i < n; i++)
        {
            var d = Unsafe.Add(ref xr, i) - center;
            sum += d * d;
        }

        return sum;
    }

    /// <summary>Sum of a and of a * (x - center), in the fixed order of <see cref="Sum"/>.</summary>
    public static (float SumA, float SumAxDeviation) SumAndDot(ReadOnlySpan<float> a, ReadOnlySpan<float> x, float center)
    {
        if (a.Length != x.Length)
        {
            throw new ArgumentException("span lengths differ", nameof(a));
        }

        ref var ar = ref MemoryMarshal.GetReference(a);
        ref var xr = ref MemoryMarshal.GetReference(x);
        var n = (nuint)x.Length;
        var accA = Vector256<float>.Zero;
        var accD = Vector256<float>.Zero;
        var cv = Vector256.Create(center);
        nuint i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var av = Vector256.LoadUnsafe(ref ar, i);
            accA += av;
            accD += av * (Vector256.LoadUnsafe(ref xr, i) - cv);
        }

        var sumA = ReduceLanes(accA);
        var sumD = ReduceLanes(accD);
        for (; i < n; i++)
        {
            var av = Unsafe.Add(ref ar, i);
            sumA += av;
            sumD += av * (Unsafe.Add(ref xr, i) - center);
        }

        return (sumA, sumD);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ReduceLanes(Vector256<float> v)
    {
        // Explicit pairwise order: ((0+4)+(2+6)) + ((1+5)+(3+7)); Vector256.Sum leaves the order unspecified.
        var half = v.GetLower() + v.GetUpper();
        return (half.GetElement(0) + half.GetElement(2)) + (half.GetElement(1) + half.GetElement(3));
    }
}
