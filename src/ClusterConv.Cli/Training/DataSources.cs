using ClusterConv.Data;
using Spectre.Console;

namespace ClusterConv.Cli.Training;

/// <summary>Turns the --data argument into train and test splits, showing download progress when there is one.</summary>
public static class DataSources
{
    public const string FashionMnistName = "fashion-mnist";
    public const string SyntheticName = "synthetic";

    /// <summary>Sizes of the synthetic set: enough to learn from in a minute, small enough to generate in a moment.</summary>
    public const int SyntheticTrain = 20_000;
    public const int SyntheticTest = 4_000;

    public static DataSplits Load(string data, ulong seed, IAnsiConsole console, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data == SyntheticName)
        {
            return SyntheticDataset.Generate(seed, SyntheticTrain, SyntheticTest);
        }

        DataDiscoveryOptions options;
        if (data == FashionMnistName)
        {
            options = DataDiscoveryOptions.FromEnvironment();
        }
        else if (Directory.Exists(data))
        {
            options = DataDiscoveryOptions.FromEnvironment(data) with { Info = GuessInfo(data) };
        }
        else
        {
            throw new UserException($"--data: '{data}' is neither '{FashionMnistName}', '{SyntheticName}' nor an existing folder of IDX files");
        }

        var locator = new DataLocator(options);
        var progress = new Progress<DownloadProgress>(p =>
            console.WriteLine($"downloading {p.FileName} ({p.FileIndex + 1}/{p.FileCount}): {p.BytesDone / 1024:N0} KiB{(p.Fraction is { } f ? $" ({f:P0})" : string.Empty)}"));
        return locator.LoadAsync(progress, cancellation).GetAwaiter().GetResult();
    }

    // Class names only label output (confusion matrices, reports); a folder named like Fashion-MNIST gets its names.
    private static DatasetInfo GuessInfo(string directory) =>
        Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory))).Contains("fashion", StringComparison.OrdinalIgnoreCase)
            ? DatasetInfo.FashionMnist
            : DatasetInfo.Mnist;
}
