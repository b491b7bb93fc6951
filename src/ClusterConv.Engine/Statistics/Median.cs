namespace ClusterConv.Engine.Statistics;

/// <summary>The median of a set of values: the middle one, the mean of the middle two for an even count, 0 for none.</summary>
public static class Median
{
    public static double Of(IEnumerable<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
