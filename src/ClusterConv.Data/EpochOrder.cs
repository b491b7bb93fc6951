using ClusterConv.Engine;

namespace ClusterConv.Data;

/// <summary>
/// The order samples are visited in each epoch: a Fisher–Yates shuffle driven by <see cref="DeterministicRandom"/>
/// seeded from (seed, epoch), so every machine and runtime computes the same order.
/// </summary>
public static class EpochOrder
{
    private const ulong Stream = 0x5348_5546_464C_4521UL;

    /// <summary>A permutation of 0..count-1 for this epoch.</summary>
    public static int[] Permutation(int count, ulong seed, int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var order = new int[count];
        Permutation(order, seed, epoch);
        return order;
    }

    /// <summary>Writes the permutation of 0..destination.Length-1 for this epoch into <paramref name="destination"/>.</summary>
    public static void Permutation(Span<int> destination, ulong seed, int epoch)
    {
        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = i;
        }

        Shuffle(destination, seed, epoch);
    }

    /// <summary>Shuffles <paramref name="items"/> in place, the same way for the same (seed, epoch, length).</summary>
    public static void Shuffle<T>(Span<T> items, ulong seed, int epoch)
    {
        var random = new DeterministicRandom(DeterministicRandom.Mix(seed, (ulong)(uint)epoch, Stream));
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = random.NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    /// <summary>
    /// The global sample indices of one shard for this epoch: the shard's range shuffled, e.g. for a worker that owns
    /// samples [range.Start, range.End). Each shard is shuffled with its own stream (mixed from the shard's start).
    /// </summary>
    public static int[] ShardPermutation(ShardRange range, ulong seed, int epoch)
    {
        var order = new int[range.Count];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = range.Start + i;
        }

        Shuffle(order.AsSpan(), DeterministicRandom.Mix(seed, (ulong)(uint)range.Start, (ulong)(uint)range.Count), epoch);
        return order;
    }
}
