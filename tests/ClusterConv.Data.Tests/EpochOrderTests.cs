namespace ClusterConv.Data.Tests;

public sealed class EpochOrderTests
{
    [Fact]
    public void A_permutation_holds_every_index_exactly_once()
    {
        var order = EpochOrder.Permutation(1000, 3, 0);

        Assert.Equal(Enumerable.Range(0, 1000), order.Order());
    }

    [Fact]
    public void Each_epoch_has_its_own_order()
    {
        Assert.NotEqual(EpochOrder.Permutation(100, 3, 0), EpochOrder.Permutation(100, 3, 1));
    }

    [Fact]
    public void Each_seed_has_its_own_order()
    {
        Assert.NotEqual(EpochOrder.Permutation(100, 3, 0), EpochOrder.Permutation(100, 4, 0));
    }

    [Fact]
    public void The_same_seed_and_epoch_give_the_same_order()
    {
        Assert.Equal(EpochOrder.Permutation(100, 3, 5), EpochOrder.Permutation(100, 3, 5));
    }

    [Fact]
    public void The_order_is_pinned_so_every_machine_computes_the_same_one()
    {
        Assert.Equal([9, 3, 0, 6, 8, 2, 1, 7, 5, 4], EpochOrder.Permutation(10, 1, 0));
        Assert.Equal([2, 9, 4, 3, 6, 0, 7, 1, 8, 5], EpochOrder.Permutation(10, 1, 1));
    }

    [Fact]
    public void Empty_and_single_sets_have_trivial_orders()
    {
        Assert.Empty(EpochOrder.Permutation(0, 1, 0));
        Assert.Equal([0], EpochOrder.Permutation(1, 1, 0));
    }

    [Fact]
    public void A_shard_permutation_shuffles_exactly_the_shards_global_indices()
    {
        var range = Sharding.Range(1000, 2, 3);

        var order = EpochOrder.ShardPermutation(range, 3, 0);

        Assert.Equal(Enumerable.Range(range.Start, range.Count), order.Order());
        Assert.NotEqual(order, EpochOrder.ShardPermutation(range, 3, 1));
    }
}
