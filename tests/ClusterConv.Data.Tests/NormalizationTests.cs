namespace ClusterConv.Data.Tests;

public sealed class NormalizationTests
{
    private static Dataset Pixels(params byte[] pixels) => new("p", pixels, new byte[pixels.Length], 1, 1, ["only"]);

    [Fact]
    public void Scaling_maps_bytes_to_zero_through_one_by_dividing_by_255()
    {
        var scale = Normalization.Scale;

        Assert.Equal((0f, 1f, 51f / 255f), (scale.Apply(0), scale.Apply(255), scale.Apply(51)));
        Assert.Equal("scale", scale.ToString());
    }

    [Fact]
    public void Standardizing_measures_the_training_pixels_mean_and_deviation()
    {
        var standardize = Normalization.Standardize(Pixels(0, 0, 255, 255));

        Assert.Equal(0.5f, standardize.Mean);
        Assert.Equal(0.5f, standardize.Std);
        Assert.Equal((-1f, 1f), (standardize.Apply(0), standardize.Apply(255)));
        Assert.Equal("standardize(mean=0.5, std=0.5)", standardize.ToString());
    }

    [Fact]
    public void Standardized_inputs_have_zero_mean_and_unit_deviation()
    {
        var train = SyntheticDataset.Generate(2, 300, 0).Train;
        var standardize = Normalization.Standardize(train);

        var values = train.Pixels.ToArray().Select(p => (double)standardize.Apply(p)).ToArray();
        var mean = values.Average();
        var std = Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Average());

        Assert.Equal(0, mean, 1e-4);
        Assert.Equal(1, std, 1e-4);
    }

    [Fact]
    public void A_normalization_is_chosen_by_name()
    {
        var train = Pixels(0, 255);

        Assert.Same(Normalization.Scale, Normalization.Parse("scale", train));
        Assert.Equal(Normalization.Standardize(train), Normalization.Parse("Standardize", train));
    }

    [Fact]
    public void An_unknown_name_is_rejected_listing_the_known_ones()
    {
        var error = Assert.Throws<ArgumentException>(() => Normalization.Parse("zscore", Pixels(1)));

        Assert.StartsWith("Unknown normalization 'zscore': expected one of scale, standardize.", error.Message, StringComparison.Ordinal);
    }
}
