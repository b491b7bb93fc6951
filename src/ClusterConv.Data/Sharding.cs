namespace ClusterConv.Data;

/// <summary>A contiguous run [Start, Start+Count) of a sequence.</summary>
public readonly record struct ShardRange(int Start, int Count)
{
    public int End => Start + Count;

    public override string ToString() => $"[{Start}, {End})";
}

/// <summary>
/// Splits sequences into parts. Shards are CONTIGUOUS and balanced: part i of n of a sequence of length L is
/// [⌊i·L/n⌋, ⌊(i+1)·L/n⌋), so every element lies in exactly one part and sizes differ by at most one (the larger parts
/// come last). Contiguous parts let a worker own one slice of the training file's bytes (<see cref="Dataset.Slice(ShardRange)"/>)
/// and let a global batch be cut into micro-batches without copying.
/// </summary>
public static class Sharding
{
    /// <summary>Part <paramref name="shardIndex"/> of <paramref name="shardCount"/> of [0, <paramref name="count"/>).</summary>
    public static ShardRange Range(int count, int shardIndex, int shardCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shardCount);
        ArgumentOutOfRangeException.ThrowIfNegative(shardIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(shardIndex, shardCount);
        var start = (int)((long)shardIndex * count / shardCount);
        var end = (int)((long)(shardIndex + 1) * count / shardCount);
        return new ShardRange(start, end - start);
    }

    /// <summary>All <paramref name="shardCount"/> parts of [0, <paramref name="count"/>), in order.</summary>
    public static ShardRange[] Ranges(int count, int shardCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shardCount);
        var ranges = new ShardRange[shardCount];
        for (var i = 0; i < shardCount; i++)
        {
            ranges[i] = Range(count, i, shardCount);
        }

        return ranges;
    }

    /// <summary>Part <paramref name="shardIndex"/> of <paramref name="shardCount"/> of <paramref name="items"/>, without copying.</summary>
    public static ReadOnlyMemory<T> Shard<T>(ReadOnlyMemory<T> items, int shardIndex, int shardCount)
    {
        var range = Range(items.Length, shardIndex, shardCount);
        return items.Slice(range.Start, range.Count);
    }

    /// <summary>
    /// A global batch (its sample indices) cut into <paramref name="microBatchCount"/> contiguous micro-batches, sizes
    /// differing by at most one; some are empty when the batch is smaller than the count.
    /// </summary>
    public static ReadOnlyMemory<T>[] MicroBatches<T>(ReadOnlyMemory<T> batch, int microBatchCount)
    {
        var parts = new ReadOnlyMemory<T>[microBatchCount];
        var ranges = Ranges(batch.Length, microBatchCount);
        for (var i = 0; i < parts.Length; i++)
        {
            parts[i] = batch.Slice(ranges[i].Start, ranges[i].Count);
        }

        return parts;
    }
}
