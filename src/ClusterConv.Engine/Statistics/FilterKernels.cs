using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace ClusterConv.Engine.Statistics;

/// <summary>Reductions behind the per-filter statistics; each has a plain reference beside it.</summary>
public static class FilterKernels
{
    /// <summary>L2 norm of each row of a (rows, columns) row-major matrix, accumulated in double.</summary>
    public static void RowNorms(ReadOnlySpan<float> matrix, int rows, Span<float> norms)
    {
        var columns = CheckMatrix(matrix, rows, norms);
        for (var r = 0; r < rows; r++)
        {
            var row = matrix.Slice(r * columns, columns);
            norms[r] = (float)Math.Sqrt(SumOfSquares(row));
        }
    }

    /// <summary>
    /// L2 norm of each row of (scale · matrix), the norm taken in double and scaled before rounding to float:
    /// with scale 1 the same numbers as <see cref="RowNorms"/>. Used to turn a gradient summed with one scale into
    /// the norm it would have as a mean over fewer samples.
    /// </summary>
    public static void ScaledRowNorms(ReadOnlySpan<float> matrix, int rows, double scale, Span<float> norms)
    {
        var columns = CheckMatrix(matrix, rows, norms);
        for (var r = 0; r < rows; r++)
        {
            var row = matrix.Slice(r * columns, columns);
            norms[r] = (float)(Math.Sqrt(SumOfSquares(row)) * Math.Abs(scale));
        }
    }

    /// <summary>L2 norm of each row of (after − before).</summary>
    public static void RowDistances(ReadOnlySpan<float> after, ReadOnlySpan<float> before, int rows, Span<float> distances)
    {
        var columns = CheckMatrix(after, rows, distances);
        if (before.Length != after.Length)
        {
            throw new ArgumentException("before and after differ in length", nameof(before));
        }

        for (var r = 0; r < rows; r++)
        {
            distances[r] = (float)Math.Sqrt(SumOfSquaredDifferences(after.Slice(r * columns, columns), before.Slice(r * columns, columns)));
        }
    }

    /// <summary>
    /// For activations (N, C, H, W): per channel, how many values are &gt; 0. Counts add to the
    /// existing values (callers clear them), so several batches can be combined. Positives are all
    /// the statistics need: relu outputs are never negative, so its zeros are the rest.
    /// </summary>
    public static void CountPositivePerChannel(Tensor activations, Span<long> positive)
    {
        ArgumentNullException.ThrowIfNull(activations);
        var c = activations.C;
        if (positive.Length != c)
        {
            throw new ArgumentException($"count span must have {c} entries (one per channel)", nameof(positive));
        }

        var plane = activations.H * activations.W;
        var data = activations.Span;
        for (var n = 0; n < activations.N; n++)
        {
            for (var k = 0; k < c; k++)
            {
                positive[k] += CountPositive(data.Slice(((n * c) + k) * plane, plane));
            }
        }
    }

    /// <summary>
    /// For activations (N, C, H, W): per channel, whether any value is &gt; 0 (1) or none is (0).
    /// Stops scanning a channel at its first positive value, so live filters cost almost nothing:
    /// this is what dead-filter tracking needs on every step.
    /// </summary>
    public static void AnyPositivePerChannel(Tensor activations, Span<long> anyPositive)
    {
        ArgumentNullException.ThrowIfNull(activations);
        var c = activations.C;
        if (anyPositive.Length != c)
        {
            throw new ArgumentException($"span must have {c} entries (one per channel)", nameof(anyPositive));
        }

        var plane = activations.H * activations.W;
        var data = activations.Span;
        for (var k = 0; k < c; k++)
        {
            anyPositive[k] = 0;
            for (var n = 0; n < activations.N; n++)
            {
                if (HasPositive(data.Slice(((n * c) + k) * plane, plane)))
                {
                    anyPositive[k] = 1;
                    break;
                }
            }
        }
    }

    public static bool HasPositive(ReadOnlySpan<float> values)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated && values.Length >= Vector256<float>.Count)
        {
            ref var start = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(values);
            for (; i <= values.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                if (Vector256.GreaterThanAny(Vector256.LoadUnsafe(ref start, (nuint)i), Vector256<float>.Zero))
                {
                    return true;
                }
            }
        }

        return CountPositiveReference(values[i..]) > 0;
    }

    /// <summary>Number of values &gt; 0 (NaN is not).</summary>
    public static long CountPositive(ReadOnlySpan<float> values)
    {
        long positive = 0;
        var i = 0;
        if (Vector256.IsHardwareAccelerated && values.Length >= Vector256<float>.Count)
        {
            ref var start = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(values);
            for (; i <= values.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.LoadUnsafe(ref start, (nuint)i);
                positive += BitOperations.PopCount(Vector256.GreaterThan(v, Vector256<float>.Zero).ExtractMostSignificantBits());
            }
        }

        return positive + CountPositiveReference(values[i..]);
    }

    public static long CountPositiveReference(ReadOnlySpan<float> values)
    {
        long positive = 0;
        foreach (var v in values)
        {
            if (v > 0f)
            {
                positive++;
            }
        }

        return positive;
    }

    /// <summary>Σ v²: blocks of float SIMD sums combined in double (fast, and accurate enough for a norm).</summary>
    public static double SumOfSquares(ReadOnlySpan<float> values)
    {
        double sum = 0;
        for (var start = 0; start < values.Length; start += Block)
        {
            sum += TensorPrimitives.SumOfSquares(values.Slice(start, Math.Min(Block, values.Length - start)));
        }

        return sum;
    }

    /// <summary>Σ (a − b)²: as <see cref="SumOfSquares"/>, without a buffer for the difference.</summary>
    public static double SumOfSquaredDifferences(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException($"spans of {a.Length} and {b.Length} values", nameof(b));
        }

        double sum = 0;
        for (var start = 0; start < a.Length; start += Block)
        {
            var n = Math.Min(Block, a.Length - start);
            var x = a.Slice(start, n);
            var y = b.Slice(start, n);
            var i = 0;
            var lanes = Vector256<float>.Zero;
            if (Vector256.IsHardwareAccelerated)
            {
                ref var xs = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
                ref var ys = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(y);
                for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
                {
                    var d = Vector256.LoadUnsafe(ref xs, (nuint)i) - Vector256.LoadUnsafe(ref ys, (nuint)i);
                    lanes += d * d;
                }
            }

            sum += (double)Vector256.Sum(lanes) + SumOfSquaredDifferencesReference(x[i..], y[i..]);
        }

        return sum;
    }

    public static double SumOfSquaredDifferencesReference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (var i = 0; i < a.Length; i++)
        {
            double d = a[i] - b[i];
            sum += d * d;
        }

        return sum;
    }

    private const int Block = 1024;

    private static int CheckMatrix(ReadOnlySpan<float> matrix, int rows, Span<float> perRow)
    {
        if (rows <= 0 || matrix.Length % rows != 0)
        {
            throw new ArgumentException($"matrix of {matrix.Length} values cannot have {rows} rows", nameof(rows));
        }

        if (perRow.Length != rows)
        {
            throw new ArgumentException($"output must have {rows} entries", nameof(perRow));
        }

        return matrix.Length / rows;
    }
}
