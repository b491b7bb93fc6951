using ClusterConv.Engine;

namespace ClusterConv.Data.Tests;

public sealed class BatchAssemblerTests
{
    private static readonly Dataset Data = SyntheticDataset.Generate(11, 64, 0, size: 12).Train;

    private static float[] SampleOf(BatchAssembler assembler, int[] batch, int position, int epoch)
    {
        var tensor = assembler.CreateTensor(batch.Length);
        var labels = new int[batch.Length];
        assembler.Fill(tensor, labels, batch, epoch);
        return tensor.Sample(position).ToArray();
    }

    [Fact]
    public void Without_augmentation_a_batch_holds_the_normalized_images_and_labels_in_order()
    {
        var assembler = new BatchAssembler(Data, Normalization.Scale);
        var tensor = assembler.CreateTensor(3);
        var labels = new int[3];

        assembler.Fill(tensor, labels, [5, 0, 17]);

        Assert.Equal((3, 1, 12, 12), (tensor.N, tensor.C, tensor.H, tensor.W));
        Assert.Equal([Data.Label(5), Data.Label(0), Data.Label(17)], labels);
        Assert.Equal(Data.Image(17).ToArray().Select(p => p / 255f), tensor.Sample(2).ToArray());
    }

    [Fact]
    public void A_smaller_batch_reuses_the_tensor_buffer()
    {
        var assembler = new BatchAssembler(Data, Normalization.Scale);
        var tensor = assembler.CreateTensor(8);
        var buffer = tensor.Data;
        var labels = new int[8];

        assembler.Fill(tensor, labels, [1, 2, 3]);

        Assert.Same(buffer, tensor.Data);
        Assert.Equal(3, tensor.N);
    }

    [Fact]
    public void Filling_a_batch_allocates_nothing()
    {
        var assembler = new BatchAssembler(Data, Normalization.Scale, new Augmentation(MaxShift: 2, HorizontalFlip: true), seed: 3);
        var tensor = assembler.CreateTensor(32);
        var labels = new int[32];
        var batch = Batches.Sequential(32);
        assembler.Fill(tensor, labels, batch, epoch: 0);

        var before = GC.GetAllocatedBytesForCurrentThread();
        assembler.Fill(tensor, labels, batch, epoch: 1);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
    }

    [Fact]
    public void A_sample_is_augmented_the_same_whatever_batch_and_position_it_is_in()
    {
        var assembler = new BatchAssembler(Data, Normalization.Scale, new Augmentation(MaxShift: 3, HorizontalFlip: true), seed: 9);

        var alone = SampleOf(assembler, [20], 0, epoch: 4);
        var inBatch = SampleOf(assembler, [3, 63, 20, 8], 2, epoch: 4);

        Assert.Equal(alone, inBatch);
    }

    [Fact]
    public void A_worker_holding_only_a_shard_augments_a_sample_as_the_whole_set_does()
    {
        var augmentation = new Augmentation(MaxShift: 2, HorizontalFlip: true);
        var whole = new BatchAssembler(Data, Normalization.Scale, augmentation, seed: 9);
        var shard = new BatchAssembler(Data.Slice(Sharding.Range(Data.Count, 1, 2)), Normalization.Scale, augmentation, seed: 9);

        Assert.Equal(SampleOf(whole, [1, 40], 1, epoch: 2), SampleOf(shard, [40, 33], 0, epoch: 2));
    }

    [Fact]
    public void Augmentation_differs_across_epochs_and_samples_but_not_across_calls()
    {
        var augmentation = new Augmentation(MaxShift: 3, HorizontalFlip: true);
        var transforms = Enumerable.Range(0, 50).Select(epoch => augmentation.For(9, epoch, 20)).ToArray();

        Assert.True(transforms.Distinct().Count() > 10);
        Assert.Equal(transforms[7], augmentation.For(9, 7, 20));
        Assert.True(Enumerable.Range(0, 20).Select(i => augmentation.For(9, 0, i)).Distinct().Count() > 5);
    }

    [Fact]
    public void Shifts_stay_within_the_limit_and_flips_happen_about_half_the_time()
    {
        var transforms = Enumerable.Range(0, 2000).Select(i => new Augmentation(2, true).For(1, 0, i)).ToArray();

        Assert.All(transforms, t => Assert.InRange(t.Dx, -2, 2));
        Assert.All(transforms, t => Assert.InRange(t.Dy, -2, 2));
        Assert.Equal(5, transforms.Select(t => t.Dx).Distinct().Count());
        Assert.InRange(transforms.Count(t => t.Flip), 900, 1100);
    }

    [Fact]
    public void A_shift_moves_the_image_and_fills_the_uncovered_border_with_pixel_zero()
    {
        byte[] source = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        var table = Normalization.Scale.Table();
        var destination = new float[9];

        new SampleTransform(Flip: false, Dx: 1, Dy: -1).Apply(destination, source, 3, 3, table);

        Assert.Equal(new[] { 0, 4, 5, 0, 7, 8, 0, 0, 0 }.Select(p => p / 255f), destination);
    }

    [Fact]
    public void A_flip_mirrors_each_row()
    {
        byte[] source = [1, 2, 3, 4, 5, 6];
        var destination = new float[6];

        new SampleTransform(Flip: true, Dx: 0, Dy: 0).Apply(destination, source, 2, 3, Normalization.Scale.Table());

        Assert.Equal(new[] { 3, 2, 1, 6, 5, 4 }.Select(p => p / 255f), destination);
    }

    [Fact]
    public void Standardization_is_applied_to_every_pixel_of_the_batch()
    {
        var standardize = Normalization.Standardize(Data);
        var assembler = new BatchAssembler(Data, standardize);

        var sample = SampleOf(assembler, [6], 0, epoch: 0);

        Assert.Equal(Data.Image(6).ToArray().Select(standardize.Apply), sample);
    }

    [Fact]
    public void An_index_the_data_does_not_hold_is_rejected()
    {
        var assembler = new BatchAssembler(Data.Slice(0, 10), Normalization.Scale);
        var tensor = assembler.CreateTensor(1);

        Assert.Throws<ArgumentOutOfRangeException>(() => assembler.Fill(tensor, new int[1], [10]));
    }

    [Fact]
    public void A_tensor_of_another_sample_shape_is_rejected()
    {
        var assembler = new BatchAssembler(Data, Normalization.Scale);

        Assert.Throws<ArgumentException>(() => assembler.Fill(new Tensor(1, 1, 28, 28), new int[1], [0]));
    }
}
