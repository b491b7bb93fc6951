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
            double sum = 0;
            var a = after.Slice(r * columns, columns);
            var b = before.Slice(r * columns, columns);
            for (var i = 0; i < columns; i++)
            {
                double d = a[i] - b[i];
                sum += d * d;
            }

            distances[r] = (float)Math.Sqrt(sum);
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

    private static double SumOfSquares(ReadOnlySpan<float> row)
    {
        // Blocks of float SIMD sums combined in double: fast and accurate enough for a norm.
        const int Block = 1024;
        double sum = 0;
        for (var start = 0; start < row.Length; start += Block)
        {
            var block = row.Slice(start, Math.Min(Block, row.Length - start));
            sum += TensorPrimitives.SumOfSquares(block);
        }

        return sum;
    }

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
