namespace ClusterConv.Data.Tests;

public sealed class SyntheticDatasetTests
{
    [Fact]
    public void The_same_seed_gives_the_same_images_and_labels()
    {
        var a = SyntheticDataset.Generate(7, 200, 50);
        var b = SyntheticDataset.Generate(7, 200, 50);

        Assert.True(a.Train.Pixels.Span.SequenceEqual(b.Train.Pixels.Span));
        Assert.True(a.Test.Pixels.Span.SequenceEqual(b.Test.Pixels.Span));
        Assert.True(a.Train.Labels.Span.SequenceEqual(b.Train.Labels.Span));
    }

    [Fact]
    public void Another_seed_gives_other_images()
    {
        var a = SyntheticDataset.Generate(7, 50, 0);
        var b = SyntheticDataset.Generate(8, 50, 0);

        Assert.False(a.Train.Pixels.Span.SequenceEqual(b.Train.Pixels.Span));
    }

    [Fact]
    public void Train_and_test_images_differ()
    {
        var data = SyntheticDataset.Generate(7, 50, 50);

        Assert.False(data.Train.Pixels.Span.SequenceEqual(data.Test.Pixels.Span));
    }

    [Fact]
    public void A_sample_does_not_depend_on_how_many_are_generated()
    {
        var small = SyntheticDataset.Generate(3, 30, 10);
        var large = SyntheticDataset.Generate(3, 300, 100);

        Assert.True(small.Train.Pixels.Span.SequenceEqual(large.Train.Pixels.Span[..small.Train.Pixels.Length]));
        Assert.True(small.Test.Pixels.Span.SequenceEqual(large.Test.Pixels.Span[..small.Test.Pixels.Length]));
    }

    [Fact]
    public void Ten_named_classes_are_balanced()
    {
        var data = SyntheticDataset.Generate(1, 1005, 20, size: 16);

        Assert.Equal(10, data.Train.ClassCount);
        Assert.Equal(10, data.Train.ClassNames.Distinct().Count());
        Assert.Equal([101, 101, 101, 101, 101, 100, 100, 100, 100, 100], data.Train.ClassCounts());
        Assert.Equal((16, 16), (data.Train.Height, data.Train.Width));
    }

    [Fact]
    public void Images_are_pinned_bit_for_bit_so_every_machine_generates_the_same_set()
    {
        var data = SyntheticDataset.Generate(42, 10, 0);

        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(data.Train.Pixels.Span));

        Assert.Equal(PinnedHash, hash);
    }

    [Fact]
    public void Classes_are_visually_distinct_enough_for_a_nearest_class_mean_to_beat_chance_by_far()
    {
        // A weak, position-blind baseline: if even this separates the classes, a small CNN does far better.
        var data = SyntheticDataset.Generate(5, 2000, 500);
        var size = data.Train.ImageSize;
        var means = new double[10, size];
        var counts = data.Train.ClassCounts();
        for (var i = 0; i < data.Train.Count; i++)
        {
            var image = data.Train.Image(i);
            for (var p = 0; p < size; p++)
            {
                means[data.Train.Label(i), p] += image[p] / (double)counts[data.Train.Label(i)];
            }
        }

        var correct = 0;
        for (var i = 0; i < data.Test.Count; i++)
        {
            var image = data.Test.Image(i).ToArray();
            var best = Enumerable.Range(0, 10).MinBy(c => Enumerable.Range(0, size).Sum(p => Math.Pow(image[p] - means[c, p], 2)));
            correct += best == data.Test.Label(i) ? 1 : 0;
        }

        Assert.True(correct > data.Test.Count * 0.5, $"nearest class mean: {correct} of {data.Test.Count} correct");
    }

    private const string PinnedHash = "a6d32b34e8165ac251952e02b12146f717f74376475e7252a100202110a5da25";
}
