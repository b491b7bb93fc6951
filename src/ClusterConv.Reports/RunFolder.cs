using System.Globalization;
using System.Text.Json.Nodes;
using ClusterConv.Engine.Checkpoints;

namespace ClusterConv.Reports;

/// <summary>A checkpoint the report draws filters from: which moment of training it is and where it is.</summary>
public sealed record Snapshot(string Moment, long Step, string Path);

/// <summary>
/// A run folder as `train` writes it: summary.json, metrics.jsonl, model.ckpt (final weights) and, when the trainer
/// saved them, RUN_DIR/checkpoints/step-STEP.ckpt (STEP the optimizer steps taken, decimal, no padding; step-0 is the
/// initialization).
/// </summary>
public sealed class RunFolder
{
    public const string CheckpointDirectory = "checkpoints";

    private RunFolder(string directory, JsonObject summary, RunMetrics metrics)
    {
        Directory = directory;
        Summary = summary;
        Metrics = metrics;
    }

    public string Directory { get; }

    public JsonObject Summary { get; }

    public RunMetrics Metrics { get; }

    public string? Model => Summary["model"]?.ToString();

    public string? Dataset => Summary["dataset"]?.ToString();

    public ulong Seed => Summary["seed"] is JsonValue v && v.TryGetValue<ulong>(out var s) ? s : 1;

    public long TotalSteps => Summary["steps"] is JsonValue v && v.TryGetValue<long>(out var s) ? s : Metrics.Steps.Count > 0 ? Metrics.Steps[^1].Step + 1 : 0;

    public double? Number(string name) => Summary[name] is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    public string FinalCheckpoint => System.IO.Path.Combine(Directory, "model" + ModelCheckpoint.FileExtension);

    /// <summary>Reads summary.json and metrics.jsonl; a <see cref="ReportException"/> names what is missing.</summary>
    public static RunFolder Open(string directory)
    {
        var full = System.IO.Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full))
        {
            throw new ReportException($"run folder not found: '{full}'");
        }

        var summaryPath = System.IO.Path.Combine(full, "summary.json");
        var metricsPath = System.IO.Path.Combine(full, "metrics.jsonl");
        if (!File.Exists(metricsPath))
        {
            var experiment = File.Exists(System.IO.Path.Combine(full, "experiment.json"))
                ? $"; this is an experiment folder: its report is {System.IO.Path.Combine(full, "report.html")} and its runs are the folders in it"
                : string.Empty;
            throw new ReportException($"'{metricsPath}' not found: not a run folder (train writes metrics.jsonl){experiment}");
        }

        JsonObject summary;
        if (File.Exists(summaryPath))
        {
            try
            {
                summary = JsonNode.Parse(File.ReadAllText(summaryPath)) as JsonObject ?? throw new ReportException($"'{summaryPath}' is not a JSON object");
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new ReportException($"'{summaryPath}' is not valid JSON: {e.Message}", e);
            }
        }
        else
        {
            summary = [];
        }

        return new RunFolder(full, summary, RunMetrics.ReadFile(metricsPath));
    }

    /// <summary>Steps of the saved step-STEP.ckpt files, ascending.</summary>
    public IReadOnlyList<long> SavedSteps()
    {
        var directory = System.IO.Path.Combine(Directory, CheckpointDirectory);
        if (!System.IO.Directory.Exists(directory))
        {
            return [];
        }

        return System.IO.Directory.EnumerateFiles(directory, "step-*" + ModelCheckpoint.FileExtension)
            .Select(f => System.IO.Path.GetFileNameWithoutExtension(f)["step-".Length..])
            .Select(s => long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var step) ? step : -1)
            .Where(s => s >= 0)
            .Order()
            .ToArray();
    }

    public string StepCheckpoint(long step) =>
        System.IO.Path.Combine(Directory, CheckpointDirectory, $"step-{step.ToString(CultureInfo.InvariantCulture)}{ModelCheckpoint.FileExtension}");

    /// <summary>
    /// Initialization (step-0.ckpt), midway (the saved checkpoint nearest half the steps, strictly between start and end)
    /// and end (model.ckpt); null for a moment that was not recorded.
    /// </summary>
    public (Snapshot? Init, Snapshot? Midway, Snapshot? End) Snapshots()
    {
        var saved = SavedSteps();
        var total = TotalSteps;
        Snapshot? init = saved.Contains(0) ? new Snapshot("initialization", 0, StepCheckpoint(0)) : null;
        var middle = saved.Where(s => s > 0 && s < total).OrderBy(s => Math.Abs((2 * s) - total)).ThenBy(s => s).Select(s => (long?)s).FirstOrDefault();
        Snapshot? midway = middle is { } m ? new Snapshot("midway", m, StepCheckpoint(m)) : null;
        Snapshot? end = File.Exists(FinalCheckpoint) ? new Snapshot("end", total, FinalCheckpoint) : null;
        return (init, midway, end);
    }
}

/// <summary>A report cannot be made from what it was given (missing or unreadable run folder).</summary>
public sealed class ReportException : Exception
{
    public ReportException()
    {
    }

    public ReportException(string message) : base(message)
    {
    }

    public ReportException(string message, Exception inner) : base(message, inner)
    {
    }
}
