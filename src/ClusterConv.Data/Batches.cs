namespace ClusterConv.Data;

/// <summary>Cuts an epoch's order (sample indices) into consecutive batches, without copying.</summary>
public static class Batches
{
    /// <summary>Number of batches of <paramref name="batchSize"/> in <paramref name="count"/> samples.</summary>
    /// <param name="count">Samples in the epoch.</param>
    /// <param name="batchSize">Samples per batch.</param>
    /// <param name="dropLast">Leave out a last, smaller batch.</param>
    public static int Count(int count, int batchSize, bool dropLast = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        return dropLast ? count / batchSize : (count + batchSize - 1) / batchSize;
    }

    /// <summary>Batch <paramref name="batchIndex"/> of <paramref name="order"/>: its next <paramref name="batchSize"/> indices (fewer for the last).</summary>
    public static ReadOnlyMemory<int> Get(ReadOnlyMemory<int> order, int batchSize, int batchIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegative(batchIndex);
        var start = (long)batchIndex * batchSize;
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(start, order.Length);
        return order.Slice((int)start, (int)Math.Min(batchSize, order.Length - start));
    }

    /// <summary>All batches of <paramref name="order"/> in sequence.</summary>
    public static IEnumerable<ReadOnlyMemory<int>> Of(ReadOnlyMemory<int> order, int batchSize, bool dropLast = false)
    {
        var count = Count(order.Length, batchSize, dropLast);
        for (var b = 0; b < count; b++)
        {
            yield return Get(order, batchSize, b);
        }
    }

    /// <summary>0, 1, …, count-1: the unshuffled order, e.g. for evaluation.</summary>
    public static int[] Sequential(int count, int start = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var order = new int[count];
        for (var i = 0; i < count; i++)
        {
            order[i] = start + i;
        }

        return order;
    }
}
