namespace ClusterConv.Data.Tests;

public sealed class ShardingTests
{
    [Theory]
    [InlineData(60000, 3)]
    [InlineData(10, 4)]
    [InlineData(3, 5)]
    [InlineData(0, 2)]
    [InlineData(7, 1)]
    public void Shards_partition_the_sequence_exactly_in_contiguous_balanced_runs(int count, int shards)
    {
        var ranges = Sharding.Ranges(count, shards);

        Assert.Equal(Enumerable.Range(0, count), ranges.SelectMany(r => Enumerable.Range(r.Start, r.Count)));
        Assert.True(ranges.Max(r => r.Count) - ranges.Min(r => r.Count) <= 1);
    }

    [Fact]
    public void Shard_i_of_n_is_the_same_range_computed_alone()
    {
        Assert.Equal(new ShardRange(3, 3), Sharding.Range(10, 1, 3));
        Assert.Equal(Sharding.Ranges(10, 3)[2], Sharding.Range(10, 2, 3));
    }

    [Fact]
    public void A_shard_index_outside_the_count_is_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Sharding.Range(10, 3, 3));
    }

    [Fact]
    public void A_global_batch_splits_into_a_fixed_number_of_micro_batches_that_concatenate_back()
    {
        int[] batch = [42, 7, 19, 3, 88, 61, 5];

        var parts = Sharding.MicroBatches<int>(batch, 3);

        Assert.Equal([2, 2, 3], parts.Select(p => p.Length));
        Assert.Equal(batch, parts.SelectMany(p => p.ToArray()));
    }

    [Fact]
    public void A_batch_smaller_than_the_micro_batch_count_leaves_some_micro_batches_empty()
    {
        var parts = Sharding.MicroBatches<int>(new[] { 1, 2 }, 4);

        Assert.Equal([0, 1, 0, 1], parts.Select(p => p.Length));
    }

    [Fact]
    public void A_dataset_shard_keeps_global_indices_and_shares_the_bytes()
    {
        var data = SyntheticDataset.Generate(1, 100, 0, size: 8).Train;

        var shard = data.Slice(Sharding.Range(data.Count, 1, 4));

        Assert.Equal((25, 25), (shard.GlobalOffset, shard.Count));
        Assert.True(shard.Image(0).SequenceEqual(data.Image(25)));
        Assert.Equal(data.Label(49), shard.Label(24));
        Assert.True(shard.Contains(49));
        Assert.False(shard.Contains(50));
    }
}
