namespace ClusterConv.Data.Tests;

public sealed class BatchesTests
{
    [Theory]
    [InlineData(10, 3, false, 4)]
    [InlineData(10, 3, true, 3)]
    [InlineData(9, 3, false, 3)]
    [InlineData(0, 3, false, 0)]
    public void The_batch_count_rounds_up_unless_the_last_partial_batch_is_dropped(int count, int batchSize, bool dropLast, int expected)
    {
        Assert.Equal(expected, Batches.Count(count, batchSize, dropLast));
    }

    [Fact]
    public void Batches_cover_the_order_in_sequence_with_a_smaller_last_one()
    {
        var order = EpochOrder.Permutation(10, 1, 0);

        var batches = Batches.Of(order, 4).Select(b => b.ToArray()).ToArray();

        Assert.Equal([4, 4, 2], batches.Select(b => b.Length));
        Assert.Equal(order, batches.SelectMany(b => b));
    }

    [Fact]
    public void Dropping_the_last_batch_keeps_only_full_batches()
    {
        var batches = Batches.Of(Batches.Sequential(10), 4, dropLast: true).ToArray();

        Assert.Equal([4, 4], batches.Select(b => b.Length));
    }
}
