using System.Collections.Concurrent;
using ClusterConv.Data;

namespace ClusterConv.Cluster;

/// <summary>
/// The read-only data sets of a silo, loaded once per (source, seed) and shared by every worker on it. Workers slice
/// out only the data shards they own; the whole set stays read-only.
/// </summary>
public sealed class TrainingDataCache
{
    private readonly ConcurrentDictionary<(string Data, ulong Seed, int Train, int Test), Lazy<Task<DataSplits>>> cache = new();

    public Task<DataSplits> GetAsync(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return cache.GetOrAdd(Key(spec), k => new Lazy<Task<DataSplits>>(() => Task.Run(() => LoadAsync(k.Data, k.Seed, k.Train, k.Test)))).Value;
    }

    /// <summary>Hands data already loaded in this process (embedded mode) to the silo, so it is not read twice.</summary>
    public void Preload(JobSpec spec, DataSplits data)
    {
        ArgumentNullException.ThrowIfNull(spec);
        cache.TryAdd(Key(spec), new Lazy<Task<DataSplits>>(Task.FromResult(data)));
    }

    private static (string Data, ulong Seed, int Train, int Test) Key(JobSpec spec) =>
        (spec.Data, spec.Data == "synthetic" ? spec.Seed : 0UL, spec.SyntheticTrain, spec.SyntheticTest);

    /// <summary>"synthetic" (generated from the seed), "fashion-mnist" (found or downloaded), or a folder of IDX files.</summary>
    public static async Task<DataSplits> LoadAsync(string data, ulong seed, int syntheticTrain, int syntheticTest)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data == "synthetic")
        {
            return SyntheticDataset.Generate(seed, syntheticTrain, syntheticTest);
        }

        var options = data == "fashion-mnist"
            ? DataDiscoveryOptions.FromEnvironment()
            : DataDiscoveryOptions.FromEnvironment(data) with
            {
                Info = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(data))).Contains("fashion", StringComparison.OrdinalIgnoreCase)
                    ? DatasetInfo.FashionMnist
                    : DatasetInfo.Mnist,
            };
        return await new DataLocator(options).LoadAsync().ConfigureAwait(false);
    }
}
