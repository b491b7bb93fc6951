using ScottPlot;

namespace ClusterConv.Reports;

/// <summary>One line of a chart: x and y values (NaN values are left out).</summary>
public sealed record Series(string Label, double[] X, double[] Y, bool Markers = false);

/// <summary>The report's charts, drawn by ScottPlot and returned as PNG bytes.</summary>
public static class Charts
{
    public const int Width = 560;
    public const int Height = 340;

    /// <summary>Lines (or markers) against a shared x axis.</summary>
    public static byte[] Lines(string title, string xLabel, string yLabel, IEnumerable<Series> series, Alignment legend = Alignment.UpperRight, IReadOnlyList<string>? xTickLabels = null, int width = Width, int height = Height)
    {
        ArgumentNullException.ThrowIfNull(series);
        PlotFonts.EnsureRegistered();
        var plot = new Plot();
        var any = false;
        foreach (var s in series)
        {
            var points = s.X.Zip(s.Y).Where(p => double.IsFinite(p.First) && double.IsFinite(p.Second)).ToArray();
            if (points.Length == 0)
            {
                continue;
            }

            var scatter = plot.Add.Scatter(points.Select(p => p.First).ToArray(), points.Select(p => p.Second).ToArray());
            scatter.LegendText = s.Label;
            scatter.MarkerSize = s.Markers || points.Length == 1 ? 6 : 0;
            scatter.LineWidth = s.Markers ? 0 : 1.5f;
            any = true;
        }

        if (xTickLabels is not null)
        {
            plot.Axes.Bottom.SetTicks(Enumerable.Range(0, xTickLabels.Count).Select(i => (double)i).ToArray(), xTickLabels.ToArray());
            plot.Axes.SetLimitsX(-0.5, xTickLabels.Count - 0.5);
        }

        plot.Title(title, 13);
        plot.XLabel(xLabel, 12);
        plot.YLabel(yLabel, 12);
        if (any)
        {
            plot.ShowLegend(legend);
        }

        return plot.GetImageBytes(width, height, ImageFormat.Png);
    }

    /// <summary>A heatmap of values[row, column] (rows filters, columns steps) with a color bar.</summary>
    public static byte[] Heatmap(string title, string xLabel, string yLabel, double[,] values, double xFirst, double xLast, string colorLabel, double? min = null, double? max = null, int width = Width, int height = Height)
    {
        ArgumentNullException.ThrowIfNull(values);
        PlotFonts.EnsureRegistered();
        var plot = new Plot();
        var rows = values.GetLength(0);
        var columns = values.GetLength(1);
        var map = plot.Add.Heatmap(values);
        map.Colormap = new ScottPlot.Colormaps.Viridis();
        map.FlipVertically = true;
        map.NaNCellColor = Colors.LightGray;
        var halfStep = columns > 1 ? (xLast - xFirst) / (columns - 1) / 2 : 0.5;
        map.Extent = new CoordinateRect(xFirst - halfStep, xLast + halfStep, -0.5, rows - 0.5);
        if (min is not null || max is not null)
        {
            map.ManualRange = new ScottPlot.Range(min ?? 0, max ?? 1);
        }

        var bar = plot.Add.ColorBar(map);
        bar.Label = colorLabel;
        plot.Title(title, 13);
        plot.XLabel(xLabel, 12);
        plot.YLabel(yLabel, 12);
        plot.Axes.SetLimits(xFirst - halfStep, xLast + halfStep, -0.5, rows - 0.5);
        return plot.GetImageBytes(width, height, ImageFormat.Png);
    }

    /// <summary>One lane per worker: a bar from (end − duration) to end for each worker step, colored by silo.</summary>
    public static byte[] Timeline(string title, IReadOnlyList<(string Lane, string Silo, double Start, double End)> bars, int width = 760, int height = 300)
    {
        ArgumentNullException.ThrowIfNull(bars);
        PlotFonts.EnsureRegistered();
        var plot = new Plot();
        var lanes = bars.Select(b => b.Lane).Distinct().Order(StringComparer.Ordinal).ToList();
        var silos = bars.Select(b => b.Silo).Distinct().Order(StringComparer.Ordinal).ToList();
        var palette = new ScottPlot.Palettes.Category10();
        foreach (var b in bars)
        {
            var lane = lanes.IndexOf(b.Lane);
            var rect = plot.Add.Rectangle(b.Start, b.End, lane - 0.35, lane + 0.35);
            rect.FillStyle.Color = palette.GetColor(silos.IndexOf(b.Silo));
            rect.LineStyle.Width = 0;
        }

        var legend = silos.Select((s, i) => new LegendItem { LabelText = "silo " + s, FillColor = palette.GetColor(i) }).ToArray();
        plot.ShowLegend(legend, Alignment.UpperRight);
        plot.Axes.Left.SetTicks(Enumerable.Range(0, lanes.Count).Select(i => (double)i).ToArray(), lanes.ToArray());
        plot.Title(title, 13);
        plot.XLabel("wall time (s)", 12);
        return plot.GetImageBytes(width, height, ImageFormat.Png);
    }
}
