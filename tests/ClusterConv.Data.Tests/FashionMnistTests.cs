namespace ClusterConv.Data.Tests;

/// <summary>
/// A fact that needs the real Fashion-MNIST (Debian package dataset-fashion-mnist). Skipped on a developer machine
/// without the package; under CI (CI=true), which installs it, it always runs, so a missing install fails loudly.
/// </summary>
public sealed class FashionMnistFactAttribute : FactAttribute
{
    public FashionMnistFactAttribute()
    {
        if (!IdxFiles.IsComplete(FashionMnist.SystemDirectory) && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Skip = $"Fashion-MNIST is not installed in {FashionMnist.SystemDirectory} (apt-get install dataset-fashion-mnist).";
        }
    }
}

public sealed class FashionMnistTests : IDisposable
{
    private readonly TempDirectory temp = new();

    public void Dispose() => temp.Dispose();

    [FashionMnistFact]
    public async Task The_installed_Fashion_MNIST_is_found_in_the_system_folder_and_loads_60000_and_10000_images()
    {
        var options = new DataDiscoveryOptions { CacheDirectory = temp.Sub("empty-cache"), AllowDownload = false };

        var location = await new DataLocator(options).LocateAsync();
        var splits = IdxReader.LoadSplits(location.Directory, DatasetInfo.FashionMnist);

        Assert.Equal(DataOrigin.System, location.Origin);
        Assert.Equal((60000, 10000), (splits.Train.Count, splits.Test.Count));
        Assert.Equal((28, 28, 28, 28), (splits.Train.Height, splits.Train.Width, splits.Test.Height, splits.Test.Width));
        Assert.Equal(Enumerable.Repeat(6000, 10), splits.Train.ClassCounts());
        Assert.Equal(Enumerable.Repeat(1000, 10), splits.Test.ClassCounts());
        Assert.Equal("Ankle boot", splits.Train.ClassNames[splits.Train.Label(0)]);
        Assert.Equal(9, splits.Test.Label(0));

        var standardize = Normalization.Standardize(splits.Train);
        Assert.Equal(0.2860, standardize.Mean, 0.0005);
        Assert.Equal(0.3530, standardize.Std, 0.0005);
    }
}
