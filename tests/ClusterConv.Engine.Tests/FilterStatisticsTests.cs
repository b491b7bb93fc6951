using ClusterConv.Engine;
using ClusterConv.Engine.Statistics;

namespace ClusterConv.Engine.Tests;

public class FilterKernelsTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(121)]
    public unsafe void Relu_in_place_with_counting_equals_the_relu_and_the_count(int length)
    {
        var random = new DeterministicRandom((ulong)length + 9);
        var values = new float[length];
        for (var i = 0; i < length; i++)
        {
            values[i] = random.NextInt(4) == 0 ? -0f : random.NextFloat() - 0.5f;
        }

        if (length > 3)
        {
            values[3] = float.NaN;
        }

        var expected = new float[length];
        ClusterConv.Engine.Layers.ActivationFunctions.ForwardReference(ClusterConv.Engine.Layers.Activation.Relu, expected, values);
        var expectedCount = FilterKernels.CountPositiveReference(values);
        int count;
        fixed (float* p = values)
        {
            count = ClusterConv.Engine.Layers.Conv2D.ReluInPlaceCounting(p, length);
        }

        Assert.Equal(expectedCount, count);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), values.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void Positive_counts_taken_in_the_convolution_forward_equal_a_scan_of_its_output()
    {
        var spec = new ClusterConv.Engine.Specs.ModelSpec(
            "counts",
            new SampleShape(2, 14, 14),
            [
                new ClusterConv.Engine.Specs.Conv2DSpec("conv2d", 6, 3, 3, Activation: ClusterConv.Engine.Layers.Activation.Relu),
                new ClusterConv.Engine.Specs.Pool2DSpec("max_pooling2d", ClusterConv.Engine.Specs.PoolKind.Max, 2, 2, 2, 2),
                new ClusterConv.Engine.Specs.FlattenSpec("flatten"),
                new ClusterConv.Engine.Specs.DenseSpec("dense", 3),
            ]);
        var model = new Model(spec);
        model.Initialize(3);
        var input = new Tensor(5, spec.Input);
        var random = new DeterministicRandom(4);
        foreach (ref var v in input.Span)
        {
            v = random.NextFloat() - 0.5f;
        }

        using var pool = new ComputePool(2);
        model.Forward(input, new StepContext(true, pool));
        var scanned = new long[6];
        FilterKernels.CountPositivePerChannel(model.LayerOutput(0), scanned);
        var counts = ((ClusterConv.Engine.Layers.Conv2D)model.Layers[0]).PositiveCounts.ToArray();
        Assert.Equal(5 * 6, counts.Length);
        var summed = new long[6];
        for (var i = 0; i < counts.Length; i++)
        {
            summed[i % 6] += counts[i];
        }

        Assert.Equal(scanned, summed);
        Assert.Contains(scanned, c => c > 0 && c < 5 * 12 * 12);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(33)]
    [InlineData(1000)]
    public void Positive_counts_equal_the_reference_for_any_length(int length)
    {
        var random = new DeterministicRandom((ulong)length + 1);
        var values = new float[length];
        for (var i = 0; i < length; i++)
        {
            // A third exact zeros, the rest either sign, plus a NaN that counts as neither.
            values[i] = random.NextInt(3) == 0 ? 0f : random.NextFloat() - 0.5f;
        }

        if (length > 5)
        {
            values[5] = float.NaN;
        }

        Assert.Equal(FilterKernels.CountPositiveReference(values), FilterKernels.CountPositive(values));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(9)]
    [InlineData(1568)]
    [InlineData(3000)]
    public void Sums_of_squared_differences_match_the_reference_for_any_length(int length)
    {
        var random = new DeterministicRandom((ulong)length + 11);
        var a = new float[length];
        var b = new float[length];
        for (var i = 0; i < length; i++)
        {
            a[i] = random.NextFloat() - 0.5f;
            b[i] = a[i] + ((random.NextFloat() - 0.5f) * 1e-3f);
        }

        var expected = FilterKernels.SumOfSquaredDifferencesReference(a, b);
        Assert.Equal(expected, FilterKernels.SumOfSquaredDifferences(a, b), expected * 1e-5);
        Assert.Throws<ArgumentException>(() => FilterKernels.SumOfSquaredDifferences(a, new float[length + 1]));
    }

    [Fact]
    public void Per_channel_counts_separate_channels_and_add_over_samples()
    {
        var t = new Tensor(2, 3, 2, 2);
        // sample 0: channel 0 all positive, channel 1 all zero, channel 2 negative
        // sample 1: channel 0 one positive, channel 1 one positive, channel 2 zero
        float[] data =
        [
            1, 2, 3, 4, 0, 0, 0, 0, -1, -1, -1, -1,
            5, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0,
        ];
        data.CopyTo(t.Span);
        var positive = new long[3];
        FilterKernels.CountPositivePerChannel(t, positive);
        Assert.Equal([5L, 1L, 0L], positive);
    }

    [Fact]
    public void Any_positive_flags_a_channel_that_fires_in_any_sample()
    {
        var t = new Tensor(2, 3, 3, 3);
        t.Span.Fill(-1f);
        t.Sample(1)[(1 * 9) + 8] = 0.5f; // channel 1 fires once, in the last value of the second sample
        t.Sample(0)[(2 * 9) + 0] = 0f;   // channel 2 only reaches zero
        var any = new long[3];
        FilterKernels.AnyPositivePerChannel(t, any);
        Assert.Equal([0L, 1L, 0L], any);
    }

    [Fact]
    public void Row_norms_and_distances_are_per_row_l2()
    {
        float[] m = [3, 4, 0, 0, 1, 0];
        var norms = new float[3];
        FilterKernels.RowNorms(m, 3, norms);
        Assert.Equal([5f, 0f, 1f], norms);

        float[] after = [3, 4, 1, 1, 1, 0];
        var distances = new float[3];
        FilterKernels.RowDistances(after, m, 3, distances);
        Assert.Equal(0f, distances[0]);
        Assert.Equal(MathF.Sqrt(2f), distances[1], 6);
        Assert.Equal(0f, distances[2]);
    }

    [Fact]
    public void Scaled_row_norms_scale_each_row_norm_and_equal_row_norms_at_scale_one()
    {
        var random = new DeterministicRandom(3);
        var m = new float[4 * 37];
        for (var i = 0; i < m.Length; i++)
        {
            m[i] = random.NextFloat() - 0.5f;
        }

        var plain = new float[4];
        var same = new float[4];
        var doubled = new float[4];
        FilterKernels.RowNorms(m, 4, plain);
        FilterKernels.ScaledRowNorms(m, 4, 1.0, same);
        FilterKernels.ScaledRowNorms(m, 4, 2.0, doubled);
        Assert.Equal(plain, same);
        for (var r = 0; r < 4; r++)
        {
            Assert.Equal(2 * plain[r], doubled[r], 5);
        }

        float[] known = [3, 4, 0, 0];
        var scaled = new float[2];
        FilterKernels.ScaledRowNorms(known, 2, 0.5, scaled);
        Assert.Equal([2.5f, 0f], scaled);
    }
}

public class DeadFilterTrackerTests
{
    [Fact]
    public void A_filter_is_dead_only_after_a_full_window_without_positive_output()
    {
        var tracker = new DeadFilterTracker(filters: 2, window: 3);
        tracker.Observe(10, [0, 5]);
        tracker.Observe(11, [0, 5]);
        Assert.Empty(tracker.DeadFilters());
        tracker.Observe(12, [0, 5]);
        Assert.Equal([0], tracker.DeadFilters());
        Assert.Equal(10, tracker.DeadSince()[0]);
    }

    [Fact]
    public void A_filter_is_reported_newly_dead_once_on_the_step_that_completes_its_window()
    {
        var tracker = new DeadFilterTracker(filters: 2, window: 2);
        var newlyDead = new List<int>();
        tracker.Observe(0, [0, 1], newlyDead);
        Assert.Empty(newlyDead);
        tracker.Observe(1, [0, 1], newlyDead);
        Assert.Equal([0], newlyDead);
        tracker.Observe(2, [0, 1], newlyDead);
        Assert.Equal([0], newlyDead);
        Assert.Equal(0, tracker.SilentSince(0));
    }

    [Fact]
    public void One_positive_output_revives_a_dead_filter()
    {
        var tracker = new DeadFilterTracker(filters: 1, window: 2);
        tracker.Observe(0, [0]);
        tracker.Observe(1, [0]);
        Assert.Equal([0], tracker.DeadFilters());
        tracker.Observe(2, [1]);
        Assert.Empty(tracker.DeadFilters());
    }
}
