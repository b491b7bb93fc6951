namespace ClusterConv.Cluster.Telemetry;

/// <summary>
/// Which per-filter metric series of a job are recorded, decided the same way on every silo without talking: series are
/// numbered aggregated filters first (layers in model order), then worker 0's filters, worker 1's, …; the first
/// <c>cap</c> are recorded.
/// </summary>
public sealed class FilterSeriesBudget
{
    private readonly int[] layerOffsets;
    private readonly int[] layerFilters;
    private readonly long cap;
    private readonly long filtersPerSet;

    public FilterSeriesBudget(int cap, IReadOnlyList<int> filtersPerLayer, int workers)
    {
        ArgumentNullException.ThrowIfNull(filtersPerLayer);
        this.cap = Math.Max(0, cap);
        layerFilters = filtersPerLayer.ToArray();
        layerOffsets = new int[layerFilters.Length];
        for (var l = 1; l < layerFilters.Length; l++)
        {
            layerOffsets[l] = layerOffsets[l - 1] + layerFilters[l - 1];
        }

        filtersPerSet = layerFilters.Sum();
        Dropped = Math.Max(0, (filtersPerSet * (1 + (long)Math.Max(0, workers))) - this.cap);
    }

    /// <summary>Series past the cap: never recorded.</summary>
    public long Dropped { get; }

    /// <summary>How many of layer <paramref name="layer"/>'s filters (the first ones) are recorded after aggregation.</summary>
    public int Aggregated(int layer) => Allowed(0, layer);

    /// <summary>How many of layer <paramref name="layer"/>'s filters (the first ones) worker <paramref name="worker"/> records.</summary>
    public int Worker(int worker, int layer) => Allowed(filtersPerSet * (1 + (long)worker), layer);

    private int Allowed(long setStart, int layer) => (int)Math.Clamp(cap - setStart - layerOffsets[layer], 0, layerFilters[layer]);
}
