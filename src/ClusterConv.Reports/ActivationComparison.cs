using System.Text.Json;
using System.Text.Json.Nodes;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.IO;
using static ClusterConv.Reports.Stats;

namespace ClusterConv.Reports;

/// <summary>Gradient-norm distribution of one layer: 10th percentile, median and 90th percentile over all its filters and the second half of the measured steps.</summary>
public sealed record GradientSpread(string Layer, double P10, double Median, double P90);

/// <summary>One activation's run, summarized for the comparison.</summary>
public sealed record ActivationRow(
    string Activation,
    string RunDirectory,
    double? TestAccuracy,
    double? WallSeconds,
    long Steps,
    double MeanSparsity,
    string SparsityMetric,
    int DeadFilters,
    int ConvFilters,
    IReadOnlyList<GradientSpread> Gradients)
{
    public double DeadFraction => ConvFilters == 0 ? double.NaN : (double)DeadFilters / ConvFilters;
}

/// <summary>
/// The activation experiment's comparison: one row per run folder. Definitions: mean activation sparsity is the mean
/// over every Conv2D filter at the last measured step of "sparsity" (exact zeros, relu) or "nonpositive_fraction"
/// (at or below zero, other activations); the dead-filter fraction counts Conv2D filters listed dead at the last
/// measured step; gradient-norm percentiles are over every filter of the layer and the second half of the measured steps.
/// </summary>
public static class ActivationComparison
{
    public static ActivationRow Summarize(string activation, string runDirectory)
    {
        var run = RunFolder.Open(runDirectory);
        var stats = run.Metrics.StatSteps;
        var last = stats.Count > 0 ? stats[^1].Filters! : new Dictionary<string, LayerStep>();
        var conv = last.Where(l => l.Value.Type == "Conv2D").ToArray();
        var late = stats.Skip(stats.Count / 2).ToArray();
        var gradients = run.Metrics.Layers.Select(layer => late.Where(s => s.Filters!.ContainsKey(layer)).SelectMany(s => s.Filters![layer].GradNorm).ToArray() is var values && values.Length > 0
                ? new GradientSpread(layer, Quantile(values, 0.1), Quantile(values, 0.5), Quantile(values, 0.9))
                : null)
            .OfType<GradientSpread>()
            .ToArray();
        return new ActivationRow(
            activation,
            run.Directory,
            run.Number("test_accuracy"),
            run.Number("wall_seconds"),
            run.TotalSteps,
            Mean(conv.SelectMany(l => l.Value.Sparsity)),
            conv.Length > 0 ? conv[0].Value.SparsityMetric : "sparsity",
            conv.Sum(l => l.Value.Dead.Length),
            conv.Sum(l => l.Value.Filters),
            gradients);
    }

    public static JsonObject ToJson(JsonObject settings, IReadOnlyList<ActivationRow> rows)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(rows);
        static JsonNode? Num(double? v) => v is { } d && double.IsFinite(d) ? JsonValue.Create(Math.Round(d, 6)) : null;
        return new JsonObject
        {
            ["experiment"] = "activations",
            ["settings"] = settings,
            ["definitions"] = new JsonObject
            {
                ["mean_sparsity"] = "mean over every Conv2D filter at the last measured step of sparsity (relu: exact zeros) or nonpositive_fraction (other activations: at or below zero)",
                ["dead_fraction"] = "Conv2D filters listed dead at the last measured step over all Conv2D filters",
                ["grad_norm"] = "10th percentile, median and 90th percentile of the per-filter gradient L2 norm over all filters of the layer and the second half of the measured steps",
            },
            ["rows"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject
            {
                ["activation"] = r.Activation,
                ["run"] = r.RunDirectory,
                ["test_accuracy"] = Num(r.TestAccuracy),
                ["wall_seconds"] = Num(r.WallSeconds),
                ["steps"] = r.Steps,
                ["mean_sparsity"] = Num(r.MeanSparsity),
                ["sparsity_metric"] = r.SparsityMetric,
                ["dead_filters"] = r.DeadFilters,
                ["conv_filters"] = r.ConvFilters,
                ["dead_fraction"] = Num(r.DeadFraction),
                ["grad_norm"] = new JsonObject(r.Gradients.Select(g => KeyValuePair.Create(g.Layer, (JsonNode?)new JsonObject
                {
                    ["p10"] = Num(g.P10),
                    ["median"] = Num(g.Median),
                    ["p90"] = Num(g.P90),
                }))),
            }).ToArray()),
        };
    }

    public static string JsonText(JsonObject json) => json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";

    /// <summary>DIR/report.html of the experiment: the table, training curves side by side, gradient spreads, and each run's first-layer filters.</summary>
    public static string WriteReport(string path, JsonObject settings, IReadOnlyList<ActivationRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var html = new Html();
        const string Title = "ClusterConv experiment: one model, one budget, one activation at a time";
        html.Heading(1, Title);
        if (PlotFonts.Missing is { } note)
        {
            html.Note(note);
        }

        html.OpenSection("settings", "Settings");
        html.Table(["setting", "value"], settings.Select(p => (IReadOnlyList<string>)[p.Key, p.Value?.ToString() ?? string.Empty]));
        html.CloseSection();

        html.OpenSection("comparison", "Comparison");
        html.Table(
            ["activation", "test accuracy", "wall time (s)", "steps", "mean activation sparsity", "dead filters", .. rows.SelectMany(r => r.Gradients).Select(g => g.Layer).Distinct().Select(l => $"{l} grad norm p10 / median / p90")],
            rows.Select(r => (IReadOnlyList<string>)[
                r.Activation,
                r.TestAccuracy is { } a ? Percent(a) : "n/a",
                r.WallSeconds is { } w ? Inv($"{w:0.0}") : "n/a",
                Inv($"{r.Steps}"),
                Inv($"{Percent(r.MeanSparsity)} ({(r.SparsityMetric == "sparsity" ? "exact zeros" : "at or below zero")})"),
                Inv($"{r.DeadFilters} of {r.ConvFilters} ({Percent(r.DeadFraction)})"),
                .. rows.SelectMany(x => x.Gradients).Select(g => g.Layer).Distinct().Select(l => r.Gradients.FirstOrDefault(g => g.Layer == l) is { } g ? Inv($"{G(g.P10)} / {G(g.Median)} / {G(g.P90)}") : "n/a"),
            ]));
        html.Note("Mean activation sparsity: mean over all Conv2D filters at the last measured step; for relu the fraction of outputs exactly zero, for the others the fraction at or below zero (they output no exact zeros). Dead filters: Conv2D filters listed dead at the last measured step. Gradient norms: over all filters of the layer and the second half of the measured steps.");
        html.CloseSection();

        html.OpenSection("curves", "Training side by side");
        var runs = rows.Select(r => (Row: r, Run: RunFolder.Open(r.RunDirectory))).ToArray();
        html.Raw("<div class=\"row\">");
        html.Figure(Charts.Lines("Training loss (batch)", "step", "cross-entropy", runs.Select(x => new Series(x.Row.Activation, x.Run.Metrics.Steps.Select(s => (double)s.Step).ToArray(), x.Run.Metrics.Steps.Select(s => s.Loss).ToArray()))), "training loss per activation");
        var firstConv = runs.Select(x => x.Run.Metrics.Layers.FirstOrDefault(l => x.Run.Metrics.StatSteps[0].Filters![l].Type == "Conv2D")).FirstOrDefault(l => l is not null);
        if (firstConv is not null)
        {
            html.Figure(
                Charts.Lines(Inv($"{firstConv}: mean sparsity"), "step", "fraction zero (relu) or at or below zero", runs.Select(x =>
                {
                    var steps = x.Run.Metrics.StatSteps.Where(s => s.Filters!.ContainsKey(firstConv)).ToArray();
                    return new Series(x.Row.Activation, steps.Select(s => (double)s.Step).ToArray(), steps.Select(s => Mean(s.Filters![firstConv].Sparsity)).ToArray());
                })),
                "sparsity per activation");
            html.Figure(
                Charts.Lines(Inv($"{firstConv}: median gradient norm"), "step", "median over filters of gradient L2 norm", runs.Select(x =>
                {
                    var steps = x.Run.Metrics.StatSteps.Where(s => s.Filters!.ContainsKey(firstConv)).ToArray();
                    return new Series(x.Row.Activation, steps.Select(s => (double)s.Step).ToArray(), steps.Select(s => Median(s.Filters![firstConv].GradNorm)).ToArray());
                })),
                "gradient norm per activation");
        }

        html.Raw("</div>");
        html.Heading(3, "Gradient-norm distribution per layer");
        html.Raw("<div class=\"row\">");
        var names = rows.Select(r => r.Activation).ToArray();
        var x = Enumerable.Range(0, rows.Count).Select(i => (double)i).ToArray();
        foreach (var layer in rows.SelectMany(r => r.Gradients).Select(g => g.Layer).Distinct())
        {
            GradientSpread? Of(ActivationRow r) => r.Gradients.FirstOrDefault(g => g.Layer == layer);
            html.Figure(
                Charts.Lines(Inv($"{layer}: filter gradient norms"), "activation", "gradient L2 norm", legend: ScottPlot.Alignment.UpperRight, xTickLabels: names, series:
                [
                    new Series("90th percentile", x, rows.Select(r => Of(r)?.P90 ?? double.NaN).ToArray(), Markers: true),
                    new Series("median", x, rows.Select(r => Of(r)?.Median ?? double.NaN).ToArray(), Markers: true),
                    new Series("10th percentile", x, rows.Select(r => Of(r)?.P10 ?? double.NaN).ToArray(), Markers: true),
                ]),
                Inv($"{layer} gradient-norm distribution per activation"));
        }

        html.Raw("</div>");
        html.Note("Per filter, over the second half of the measured steps.");
        html.CloseSection();

        html.OpenSection("filters", "Learned first-layer filters, side by side");
        html.Note("Each run's first Conv2D layer at the end of training (model.ckpt): one tile per filter, blue negative, white zero, red positive, on each run's own color scale; the caption is the filter index and its weight L2 norm.");
        html.Raw("<div class=\"row\">");
        foreach (var (row, run) in runs)
        {
            var end = run.Snapshots().End;
            if (end is null)
            {
                html.Note($"{row.Activation}: no model.ckpt.");
                continue;
            }

            var kernel = CheckpointInspector.ConvKernels(ModelCheckpoint.LoadFile(end.Path)).FirstOrDefault();
            if (kernel is null)
            {
                html.Note($"{row.Activation}: the model has no Conv2D layer.");
                continue;
            }

            var range = kernel.Values.Max(v => Math.Abs(v));
            html.Figure(RunReport.FilterGrid(kernel, range), $"{row.Activation} first-layer filters", Inv($"{row.Activation}: {kernel.Layer}, scale ±{G(range)}, accuracy {(row.TestAccuracy is { } a ? Percent(a) : "n/a")}"));
        }

        html.Raw("</div>");
        html.Note("Each run is a run folder of its own: clusterconv report DIR/<activation> draws its full report.");
        html.CloseSection();

        var full = Path.GetFullPath(path);
        AtomicFile.WriteAllText(full, html.Page(Title));
        return full;
    }
}
