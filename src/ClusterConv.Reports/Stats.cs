using System.Globalization;

namespace ClusterConv.Reports;

/// <summary>Small statistics and number formatting shared by the report and the experiment (invariant culture).</summary>
public static class Stats
{
    /// <summary>Quantile q in [0, 1] by linear interpolation between order statistics; NaN values are ignored; NaN when empty.</summary>
    public static double Quantile(IEnumerable<double> values, double q)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        var position = q * (sorted.Length - 1);
        var lower = (int)Math.Floor(position);
        var upper = Math.Min(lower + 1, sorted.Length - 1);
        return sorted[lower] + ((position - lower) * (sorted[upper] - sorted[lower]));
    }

    public static double Median(IEnumerable<double> values) => Quantile(values, 0.5);

    public static double Mean(IEnumerable<double> values)
    {
        var list = values.Where(v => !double.IsNaN(v)).ToArray();
        return list.Length == 0 ? double.NaN : list.Average();
    }

    /// <summary>Three significant digits, e.g. 0.0123, 4.56, 1.23e-05.</summary>
    public static string G(double value) => double.IsNaN(value) ? "n/a" : value.ToString("G3", CultureInfo.InvariantCulture);

    /// <summary>A fraction as a percentage with one decimal, e.g. 54.3%.</summary>
    public static string Percent(double fraction) => double.IsNaN(fraction) ? "n/a" : (100 * fraction).ToString("0.#", CultureInfo.InvariantCulture) + "%";

    public static string Inv(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>"3, 7 and 12"; long lists are cut after <paramref name="max"/> items with "and N more".</summary>
    public static string List<T>(IReadOnlyList<T> items, int max = 12)
    {
        var shown = items.Take(max).Select(i => Convert.ToString(i, CultureInfo.InvariantCulture) ?? string.Empty).ToList();
        if (items.Count > max)
        {
            return string.Join(", ", shown) + Inv($" and {items.Count - max} more");
        }

        return shown.Count <= 1 ? string.Join(string.Empty, shown) : string.Join(", ", shown[..^1]) + " and " + shown[^1];
    }
}
