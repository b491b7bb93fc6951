using ClusterConv.Data;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.IO;
using static ClusterConv.Reports.Stats;

namespace ClusterConv.Reports;

/// <summary>Where the report gets test images from: the run's dataset name (summary.json "dataset") and seed give the test split.</summary>
public delegate Dataset TestImageSource(string dataset, ulong seed);

/// <summary>What <see cref="RunReport.Write"/> produced.</summary>
public sealed record ReportResult(string Path, IReadOnlyList<string> Sections, string Conclusion, IReadOnlyList<Statement> Statements, IReadOnlyList<string> Notes);

/// <summary>
/// RUN_DIR/report.html: how the run's Conv2D layers learned, from metrics.jsonl, summary.json and the checkpoints.
/// Sections (element ids): summary, measurements, curves, heatmaps, filters, feature-maps, dead, workers.
/// </summary>
public static class RunReport
{
    public static readonly IReadOnlyList<string> SectionIds = ["summary", "measurements", "curves", "heatmaps", "filters", "feature-maps", "dead", "workers"];

    /// <summary>Test images traced through the model for the feature maps.</summary>
    public const int TracedImages = 3;

    /// <summary>Input channels drawn per filter in the filter grids (the rest are left out, and the caption says so).</summary>
    public const int MaxChannelsDrawn = 32;

    public static ReportResult Write(string runDirectory, string? outPath, TestImageSource? testImages)
    {
        var run = RunFolder.Open(runDirectory);
        var path = Path.GetFullPath(outPath ?? Path.Combine(run.Directory, "report.html"));
        var notes = new List<string>();
        if (PlotFonts.Missing is { } fontNote)
        {
            notes.Add(fontNote);
        }

        notes.AddRange(run.Metrics.Problems.Select(p => "metrics.jsonl " + p + " (skipped)"));
        var facts = Findings.Measure(run.Metrics);
        var statements = Findings.Describe(facts);
        var conclusion = Findings.Conclude(facts);
        var html = new Html();
        var title = Inv($"ClusterConv report: {run.Model ?? "model"} on {DatasetLabel(run.Dataset)}");
        html.Heading(1, title);
        html.Raw("<nav>" + string.Join(string.Empty, SectionIds.Select(id => $"<a href=\"#{id}\">{Html.Encode(id)}</a>")) + "</nav>");
        foreach (var note in notes)
        {
            html.Note(note);
        }

        SummarySection(html, run);
        MeasurementsSection(html, statements, conclusion);
        CurvesSection(html, run.Metrics);
        HeatmapSection(html, run.Metrics);
        FiltersSection(html, run);
        FeatureMapSection(html, run, testImages);
        DeadSection(html, run.Metrics, facts);
        WorkerSection(html, run.Metrics);

        AtomicFile.WriteAllText(path, html.Page(title));
        return new ReportResult(path, SectionIds, conclusion, statements, notes);
    }

    private static string DatasetLabel(string? dataset) => dataset is null ? "unknown data" : Path.GetFileName(Path.TrimEndingDirectorySeparator(dataset));

    private static void SummarySection(Html html, RunFolder run)
    {
        html.OpenSection("summary", "Run");
        var rows = new List<string[]> { new[] { "run folder", run.Directory } };
        foreach (var key in new[] { "model", "dataset", "epochs", "steps", "batch_size", "optimizer", "learning_rate", "schedule", "seed", "train_samples", "parameters", "test_accuracy", "test_loss", "train_accuracy", "wall_seconds", "samples_per_second" })
        {
            if (run.Summary[key] is { } value)
            {
                rows.Add([key, value is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<double>(out var d)
                    ? key.Contains("accuracy", StringComparison.Ordinal) ? Percent(d) : d == Math.Round(d) ? Inv($"{d}") : d.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)
                    : value.ToString()]);
            }
        }

        if (run.Summary.Count == 0)
        {
            rows.Add(["summary.json", "not written (the training did not finish)"]);
        }

        var stats = run.Metrics.StatSteps;
        rows.Add(["per-filter statistics", stats.Count == 0 ? "none" : Inv($"{stats.Count} steps, from step {stats[0].Step} to {stats[^1].Step}, layers {string.Join(", ", run.Metrics.Layers)}")]);
        html.Table(["setting", "value"], rows);
        html.CloseSection();
    }

    private static void MeasurementsSection(Html html, IReadOnlyList<Statement> statements, string conclusion)
    {
        html.OpenSection("measurements", "What the measurements say");
        html.Paragraph(conclusion, "conclusion");
        html.Note("With relu, do the filters that don't improve accuracy get set to all zeros, so that only non-black convolutions reach deeper layers? Each answer below is generated from this run's per-filter statistics (metrics.jsonl), with these thresholds: "
            + Inv($"a filter's weights count as zero below {Percent(Findings.NearZeroFraction)} of its layer's median filter norm; the least active filters are the quarter with the highest sparsity over the second half of the measured steps; their gradient has stopped below {G(Findings.StoppedRatio)} of the other filters' median and is reduced below {G(Findings.ReducedRatio)}; a filter is dead while the trainer lists it (no positive output for any sample over --dead-window steps)."));
        foreach (var s in statements)
        {
            html.Raw($"<div class=\"statement\" data-key=\"{s.Key}\">");
            html.Paragraph(s.Question, "question");
            html.Paragraph(s.Answer, "answer");
            if (s.Details.Count > 0)
            {
                html.Raw("<ul>" + string.Join(string.Empty, s.Details.Select(d => $"<li>{Html.Encode(d)}</li>")) + "</ul>");
            }

            html.Raw("</div>");
        }

        html.CloseSection();
    }

    private static void CurvesSection(Html html, RunMetrics metrics)
    {
        html.OpenSection("curves", "Loss and accuracy");
        if (metrics.Steps.Count == 0 && metrics.Epochs.Count == 0)
        {
            html.Note("metrics.jsonl has no step or epoch lines.");
            html.CloseSection();
            return;
        }

        // A step line is logged after the step; an epoch line holds the step count at its end.
        foreach (var (axis, label, stepX, epochX) in new (string, string, Func<StepRecord, double>, Func<EpochRecord, double>)[]
        {
            ("steps", "step", s => s.Step, e => e.Step),
            ("wall", "wall time (s)", s => s.WallSeconds, e => e.WallSeconds),
        })
        {
            html.Raw("<div class=\"row\">");
            html.Figure(
                Charts.Lines("Loss", label, "cross-entropy", series:
                [
                    new Series("train (batch)", metrics.Steps.Select(stepX).ToArray(), metrics.Steps.Select(s => s.Loss).ToArray()),
                    new Series("train (epoch mean)", metrics.Epochs.Select(epochX).ToArray(), metrics.Epochs.Select(e => e.TrainLoss).ToArray(), Markers: true),
                    new Series("test", metrics.Epochs.Select(epochX).ToArray(), metrics.Epochs.Select(e => e.TestLoss).ToArray(), Markers: true),
                ]),
                $"loss against {axis}");
            html.Figure(
                Charts.Lines("Accuracy", label, "accuracy", legend: ScottPlot.Alignment.LowerRight, series:
                [
                    new Series("train (batch)", metrics.Steps.Select(stepX).ToArray(), metrics.Steps.Select(s => s.Accuracy).ToArray()),
                    new Series("train (epoch mean)", metrics.Epochs.Select(epochX).ToArray(), metrics.Epochs.Select(e => e.TrainAccuracy).ToArray(), Markers: true),
                    new Series("test", metrics.Epochs.Select(epochX).ToArray(), metrics.Epochs.Select(e => e.TestAccuracy).ToArray(), Markers: true),
                ]),
                $"accuracy against {axis}");
            html.Raw("</div>");
        }

        html.Note("Train values per logged step are of that one batch; train and test per epoch are the epoch's mean and the evaluation on the test split after it.");
        html.CloseSection();
    }

    private static IEnumerable<(string Layer, (long Step, LayerStep Stats)[] Records)> ConvRecords(RunMetrics metrics)
    {
        var steps = metrics.StatSteps;
        foreach (var layer in metrics.Layers)
        {
            var records = steps.Where(s => s.Filters!.ContainsKey(layer)).Select(s => (s.Step, s.Filters![layer])).ToArray();
            if (records.Length > 0 && records[0].Item2.Type == "Conv2D")
            {
                yield return (layer, records);
            }
        }
    }

    private static void HeatmapSection(Html html, RunMetrics metrics)
    {
        html.OpenSection("heatmaps", "Gradient and sparsity per filter over training");
        var any = false;
        foreach (var (layer, records) in ConvRecords(metrics))
        {
            any = true;
            var k = records[^1].Stats.Filters;
            var grad = new double[k, records.Length];
            var sparsity = new double[k, records.Length];
            for (var t = 0; t < records.Length; t++)
            {
                for (var f = 0; f < k && f < records[t].Stats.Filters; f++)
                {
                    var g = records[t].Stats.GradNorm[f];
                    grad[f, t] = g > 0 ? Math.Log10(g) : double.NaN;
                    sparsity[f, t] = records[t].Stats.Sparsity[f];
                }
            }

            var first = records[0].Step;
            var last = records[^1].Step;
            var stats = records[^1].Stats;
            var metric = stats.ExactZeros ? "sparsity (exact zeros)" : "fraction at or below zero";
            html.Heading(3, Inv($"{layer} ({k} filters, {stats.Activation})"));
            html.Raw("<div class=\"row\">");
            html.Figure(Charts.Heatmap(Inv($"{layer}: gradient norm per filter"), "step", "filter", grad, first, last, "log10 gradient L2 norm"), Inv($"{layer} gradient norm heatmap"),
                "Color: log10 of each filter's kernel-gradient L2 norm at the measured steps; grey where it was exactly zero.");
            html.Figure(Charts.Heatmap(Inv($"{layer}: {metric} per filter"), "step", "filter", sparsity, first, last, metric, 0, 1), Inv($"{layer} sparsity heatmap"),
                Inv($"Color: the fraction of the filter's outputs (all positions and samples of the batch) that are {(stats.ExactZeros ? "exactly zero after relu" : "at or below zero after " + stats.Activation)}."));
            html.Raw("</div>");
        }

        if (!any)
        {
            html.Note("No per-filter statistics of a Conv2D layer in metrics.jsonl (train with --stats-every N > 0).");
        }

        html.CloseSection();
    }

    /// <summary>One Conv2D layer's filters drawn as one tile each (input channels side by side, in rows of up to 8), captioned with the filter's weight norm.</summary>
    public static byte[] FilterGrid(ConvKernel kernel, double range)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        var channels = Math.Min(kernel.Channels, MaxChannelsDrawn);
        var across = Math.Min(channels, 8);
        var down = (channels + across - 1) / across;
        var tileW = (across * (kernel.Width + 1)) - 1;
        var tileH = (down * (kernel.Height + 1)) - 1;
        var tiles = new List<Tile>();
        for (var k = 0; k < kernel.Filters; k++)
        {
            var values = new float[tileW * tileH];
            Array.Fill(values, float.NaN);
            for (var c = 0; c < channels; c++)
            {
                var slice = kernel.Slice(k, c);
                var x0 = (c % across) * (kernel.Width + 1);
                var y0 = (c / across) * (kernel.Height + 1);
                for (var y = 0; y < kernel.Height; y++)
                {
                    for (var x = 0; x < kernel.Width; x++)
                    {
                        values[((y0 + y) * tileW) + x0 + x] = slice[(y * kernel.Width) + x];
                    }
                }
            }

            tiles.Add(new Tile(values, tileH, tileW, Inv($"{k}: {kernel.Norms[k]:0.00}")));
        }

        var scale = Math.Clamp(48 / Math.Max(tileW, tileH), 2, 8);
        return ImageGrids.Draw(tiles, kernel.Channels == 1 ? 8 : Math.Max(4, 32 / across), scale, range, TileColors.Diverging);
    }

    private static void FiltersSection(Html html, RunFolder run)
    {
        html.OpenSection("filters", "Learned filters at initialization, midway and at the end");
        var (init, midway, end) = run.Snapshots();
        var moments = new (string Moment, Snapshot? Snapshot, string Missing)[]
        {
            ("initialization", init, "not recorded: the run folder has no checkpoints/step-0.ckpt"),
            ("midway", midway, "not recorded: the run folder has no periodic checkpoint between the first and the last step (checkpoints/step-N.ckpt)"),
            ("end", end, "not recorded: the run folder has no model.ckpt (did the training finish?)"),
        };
        var kernels = new List<(string Moment, long Step, IReadOnlyList<ConvKernel> Kernels)>();
        foreach (var (moment, snapshot, missing) in moments)
        {
            if (snapshot is null)
            {
                html.Note($"{moment}: {missing}.");
                continue;
            }

            try
            {
                kernels.Add((moment, snapshot.Step, CheckpointInspector.ConvKernels(ModelCheckpoint.LoadFile(snapshot.Path))));
            }
            catch (Engine.Layers.ModelException e)
            {
                html.Note($"{moment}: {snapshot.Path} could not be read: {e.Message}");
            }
        }

        if (kernels.Count == 0)
        {
            html.CloseSection();
            return;
        }

        html.Note("Each tile is one filter: its input channels side by side (up to " + MaxChannelsDrawn + "), blue negative, white zero, red positive, on one color scale per layer shared by the three moments, so shrinking weights fade. The caption is the filter index and its weight L2 norm.");
        foreach (var layer in kernels[0].Kernels.Select(k => k.Layer))
        {
            var perMoment = kernels.Select(m => (m.Moment, m.Step, Kernel: m.Kernels.First(k => k.Layer == layer))).ToArray();
            var range = perMoment.Max(m => m.Kernel.Values.Max(v => Math.Abs(v)));
            var shape = perMoment[0].Kernel;
            html.Heading(3, Inv($"{layer}: {shape.Filters} filters of {shape.Channels}×{shape.Height}×{shape.Width}{(shape.Channels > MaxChannelsDrawn ? Inv($" (first {MaxChannelsDrawn} input channels drawn)") : string.Empty)}"));
            html.Raw("<div class=\"row\">");
            foreach (var m in perMoment)
            {
                html.Figure(FilterGrid(m.Kernel, range), Inv($"{layer} filters at {m.Moment}"), Inv($"{m.Moment} (step {m.Step}); color scale ±{G(range)}"));
            }

            html.Figure(
                Charts.Lines(Inv($"{layer}: weight norm per filter"), "filter", "kernel L2 norm", perMoment.Select(m => new Series(Inv($"{m.Moment} (step {m.Step})"), Enumerable.Range(0, m.Kernel.Filters).Select(i => (double)i).ToArray(), m.Kernel.Norms, Markers: true))),
                Inv($"{layer} weight norms"));
            html.Raw("</div>");
        }

        html.CloseSection();
    }

    private static void FeatureMapSection(Html html, RunFolder run, TestImageSource? testImages)
    {
        html.OpenSection("feature-maps", "Feature maps of test images, before and after the activation");
        var end = run.Snapshots().End;
        if (end is null)
        {
            html.Note("Not drawn: the run folder has no model.ckpt.");
            html.CloseSection();
            return;
        }

        if (run.Dataset is null || testImages is null)
        {
            html.Note("Not drawn: summary.json names no dataset to take test images from.");
            html.CloseSection();
            return;
        }

        IReadOnlyList<ImageTrace> traces;
        try
        {
            var test = testImages(run.Dataset, run.Seed);
            traces = CheckpointInspector.Trace(ModelCheckpoint.LoadFile(end.Path), test, CheckpointInspector.PickImages(test, TracedImages));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            html.Note($"Not drawn: the test images of '{run.Dataset}' could not be loaded or run: {e.Message}");
            html.CloseSection();
            return;
        }

        html.Note("The final weights (model.ckpt) run on test images. Each tile is one filter's output map; black is exactly zero, orange to yellow positive, blue negative, on one scale per layer and image (the largest magnitude before the activation). What relu zeroes is these outputs, position by position, not the filters' weights.");
        foreach (var trace in traces)
        {
            html.Heading(3, Inv($"test image {trace.Index}: {trace.ClassName}, predicted {trace.PredictedName}"));
            html.Raw("<div class=\"row\">");
            html.Figure(ImageGrids.Draw([new Tile(trace.Pixels, trace.Height, trace.Width)], 1, 4, 1, TileColors.Grey), Inv($"test image {trace.Index}"), "input");
            foreach (var maps in trace.Layers)
            {
                var range = maps.Before.Max(v => Math.Abs(v));
                var columns = maps.Channels <= 32 ? 8 : 16;
                var scale = Math.Clamp(44 / maps.Width, 2, 4);
                var before = Enumerable.Range(0, maps.Channels).Select(k => new Tile(maps.Channel(maps.Before, k), maps.Height, maps.Width)).ToArray();
                html.Figure(ImageGrids.Draw(before, columns, scale, range, TileColors.ZeroBlack), Inv($"{maps.Layer} before activation, image {trace.Index}"),
                    Inv($"{maps.Layer} before {maps.Activation}: {Percent(Fraction(maps.Before, v => v <= 0))} at or below zero"));
                if (maps.After is { } after)
                {
                    var tiles = Enumerable.Range(0, maps.Channels).Select(k => new Tile(maps.Channel(after, k), maps.Height, maps.Width)).ToArray();
                    var silent = Enumerable.Range(0, maps.Channels).Count(k => maps.Channel(after, k).All(v => v <= 0));
                    html.Figure(ImageGrids.Draw(tiles, columns, scale, range, TileColors.ZeroBlack), Inv($"{maps.Layer} after activation, image {trace.Index}"),
                        Inv($"{maps.Layer} after {maps.Activation}: {Percent(Fraction(after, v => v == 0))} exactly zero; {silent} of {maps.Channels} maps have no positive value on this image"));
                }
            }

            html.Raw("</div>");
        }

        html.CloseSection();
    }

    private static double Fraction(float[] values, Func<float, bool> predicate) => values.Length == 0 ? double.NaN : (double)values.Count(predicate) / values.Length;

    private static void DeadSection(Html html, RunMetrics metrics, IReadOnlyList<LayerFacts> facts)
    {
        html.OpenSection("dead", "Dead filters");
        html.Note("A filter is dead while the trainer lists it: no positive output for any sample over its dead-filter window (--dead-window steps). \"From step\" is the first measured step of its last unbroken run of listings.");
        var rows = facts.SelectMany(f => f.Dead).Select(d => (IReadOnlyList<string>)[d.Layer, Inv($"{d.Filter}"), Inv($"{d.FromStep}"), d.DeadAtEnd ? "yes" : "no (came back)"]).ToArray();
        if (facts.Count == 0)
        {
            html.Note("No per-filter statistics of a Conv2D layer in metrics.jsonl.");
        }
        else if (rows.Length == 0)
        {
            html.Paragraph(Inv($"No filter was listed as dead in any of {facts.Count} conv layer(s) ({facts.Sum(f => f.Filters)} filters)."));
        }
        else
        {
            html.Table(["layer", "filter", "dead from step", "dead at the end"], rows);
            var counts = ConvRecords(metrics).Select(l => new Series(l.Layer, l.Records.Select(r => (double)r.Step).ToArray(), l.Records.Select(r => (double)r.Stats.Dead.Length).ToArray()));
            html.Figure(Charts.Lines("Dead filters over training", "step", "dead filters", counts), "dead filters over training");
        }

        html.CloseSection();
    }

    private static void WorkerSection(Html html, RunMetrics metrics)
    {
        html.OpenSection("workers", "Workers: per-worker and aggregated gradients, step timeline");
        if (metrics.WorkerSteps.Count == 0)
        {
            html.Paragraph("Single process: no per-worker data.");
            html.Raw("<p class=\"note\">A cluster run adds one line per worker and step to metrics.jsonl, which this section draws: "
                + "<code>{\"type\":\"worker_step\",\"step\":S,\"worker\":\"w0\",\"silo\":\"silo-1\",\"wall_seconds\":T,\"duration_seconds\":D,\"samples\":N,\"loss\":L,\"grad_norm\":{\"&lt;layer&gt;\":[per-filter L2 norm of the worker's gradient]},\"sparsity\":{\"&lt;layer&gt;\":[per filter]}}</code>"
                + " (step, worker and silo required; wall_seconds is when the worker's part ended and duration_seconds how long it took, for the timeline; grad_norm before aggregation, sparsity over the worker's samples). The aggregated values are the step line's.</p>");
            html.CloseSection();
            return;
        }

        var workers = metrics.WorkerSteps.Select(w => w.Worker).Distinct().Order(StringComparer.Ordinal).ToArray();
        html.Paragraph(Inv($"{workers.Length} workers on {metrics.WorkerSteps.Select(w => w.Silo).Distinct().Count()} silo(s), {metrics.WorkerSteps.Count} worker steps."));
        html.Raw("<div class=\"row\">");
        foreach (var (layer, records) in ConvRecords(metrics))
        {
            var series = workers.Select(w =>
            {
                var lines = metrics.WorkerSteps.Where(x => x.Worker == w && x.GradNorm.ContainsKey(layer)).ToArray();
                return new Series(w, lines.Select(x => (double)x.Step).ToArray(), lines.Select(x => Mean(x.GradNorm[layer])).ToArray());
            }).Append(new Series("aggregated", records.Select(r => (double)r.Step).ToArray(), records.Select(r => Mean(r.Stats.GradNorm)).ToArray(), Markers: true));
            html.Figure(Charts.Lines(Inv($"{layer}: mean filter gradient norm"), "step", "mean over filters of gradient L2 norm", series), Inv($"{layer} per-worker gradient norms"),
                "Each worker's gradient before aggregation against the aggregated one; averaging gradients that point different ways gives a smaller norm.");
            if (metrics.WorkerSteps.Any(x => x.Sparsity.ContainsKey(layer)))
            {
                var sparsity = workers.Select(w =>
                {
                    var lines = metrics.WorkerSteps.Where(x => x.Worker == w && x.Sparsity.ContainsKey(layer)).ToArray();
                    return new Series(w, lines.Select(x => (double)x.Step).ToArray(), lines.Select(x => Mean(x.Sparsity[layer])).ToArray());
                }).Append(new Series("all samples", records.Select(r => (double)r.Step).ToArray(), records.Select(r => Mean(r.Stats.Sparsity)).ToArray(), Markers: true));
                var metric = records[^1].Stats.ExactZeros ? "sparsity (exact zeros)" : "fraction at or below zero";
                html.Figure(Charts.Lines(Inv($"{layer}: mean filter {metric}"), "step", Inv($"mean over filters of {metric}"), sparsity), Inv($"{layer} per-worker sparsity"),
                    "Each worker's activation sparsity over its own samples against that over the whole batch: the same filters go quiet on every worker's data, or only on some.");
            }
        }

        var bars = metrics.WorkerSteps.Where(w => w.WallSeconds is not null && w.DurationSeconds is not null)
            .Select(w => (w.Worker, w.Silo, w.WallSeconds!.Value - w.DurationSeconds!.Value, w.WallSeconds!.Value)).ToArray();
        if (bars.Length > 0)
        {
            html.Figure(Charts.Timeline("Steps per worker, colored by silo", bars), "worker step timeline");
        }
        else
        {
            html.Note("No timeline: the worker_step lines have no wall_seconds and duration_seconds.");
        }

        html.Raw("</div>");
        html.CloseSection();
    }
}
