using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ClusterConv.Reports;

/// <summary>Per-filter statistics of one layer at one step, as metrics.jsonl holds them (index i = filter i).</summary>
public sealed record LayerStep(
    string Type,
    string Activation,
    double[] GradNorm,
    double[] WeightNorm,
    double[] UpdateRatio,
    double[] Sparsity,
    string SparsityMetric,
    int[] Dead)
{
    public int Filters => WeightNorm.Length;

    /// <summary>True when the sparsity counts exact zeros (relu); false for the fraction at or below zero (other activations).</summary>
    public bool ExactZeros => SparsityMetric == "sparsity";
}

/// <summary>A `{"type":"step"}` line.</summary>
public sealed record StepRecord(int Epoch, long Step, double WallSeconds, double Loss, double Accuracy, double LearningRate, IReadOnlyDictionary<string, LayerStep>? Filters);

/// <summary>A `{"type":"epoch"}` line (epoch counted from 1; step = steps taken at its end).</summary>
public sealed record EpochRecord(int Epoch, long Step, double WallSeconds, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy);

/// <summary>
/// A `{"type":"worker_step"}` line, written by the cluster version for each worker's share of a step:
/// <c>{"type":"worker_step","step","worker","silo","wall_seconds","duration_seconds","samples","loss","grad_norm":{"&lt;layer&gt;":[per filter]},"sparsity":{...}}</c>.
/// wall_seconds is when the worker finished its part, duration_seconds how long it computed; grad_norm is the
/// per-filter L2 norm of that worker's gradient before aggregation, sparsity the per-filter activation sparsity over
/// the worker's samples (measured as the step line's: exact zeros for relu, at or below zero otherwise). Only step,
/// worker and silo are required.
/// </summary>
public sealed record WorkerStepRecord(long Step, string Worker, string Silo, double? WallSeconds, double? DurationSeconds, int? Samples, double? Loss, IReadOnlyDictionary<string, double[]> GradNorm, IReadOnlyDictionary<string, double[]> Sparsity);

/// <summary>Everything metrics.jsonl says about a run, in file order. Lines of other types are counted and skipped.</summary>
public sealed class RunMetrics
{
    public required IReadOnlyList<StepRecord> Steps { get; init; }

    public required IReadOnlyList<EpochRecord> Epochs { get; init; }

    public required IReadOnlyList<WorkerStepRecord> WorkerSteps { get; init; }

    /// <summary>Lines that could not be read (e.g. a line cut short by a crash), with the reason.</summary>
    public required IReadOnlyList<string> Problems { get; init; }

    /// <summary>Steps that carry per-filter statistics, in order.</summary>
    public IReadOnlyList<StepRecord> StatSteps => Steps.Where(s => s.Filters is not null).ToArray();

    /// <summary>Layers with statistics, in the order of the first step that has them.</summary>
    public IReadOnlyList<string> Layers => StatSteps.FirstOrDefault()?.Filters?.Keys.ToArray() ?? [];

    public static RunMetrics ReadFile(string path)
    {
        using var reader = new StreamReader(path);
        return Read(reader);
    }

    public static RunMetrics Read(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var steps = new List<StepRecord>();
        var epochs = new List<EpochRecord>();
        var workers = new List<WorkerStepRecord>();
        var problems = new List<string>();
        var lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            try
            {
                var node = JsonNode.Parse(line) as JsonObject ?? throw new JsonException("not a JSON object");
                switch (node["type"]?.GetValue<string>())
                {
                    case "step":
                        steps.Add(new StepRecord(
                            Int(node, "epoch"), Long(node, "step"), Number(node, "wall_seconds"), Number(node, "loss"), Number(node, "accuracy"), Number(node, "lr"),
                            node["filters"] is JsonObject filters ? ReadFilters(filters) : null));
                        break;
                    case "epoch":
                        epochs.Add(new EpochRecord(
                            Int(node, "epoch"), Long(node, "step"), Number(node, "wall_seconds"), Number(node, "train_loss"), Number(node, "train_accuracy"), Number(node, "test_loss"), Number(node, "test_accuracy")));
                        break;
                    case "worker_step":
                        workers.Add(new WorkerStepRecord(
                            Long(node, "step"),
                            Text(node, "worker"),
                            node["silo"]?.ToString() ?? "?",
                            Optional(node, "wall_seconds"),
                            Optional(node, "duration_seconds"),
                            node["samples"] is JsonValue s ? s.GetValue<int>() : null,
                            Optional(node, "loss"),
                            PerLayer(node["grad_norm"]),
                            PerLayer(node["sparsity"])));
                        break;
                    default:
                        break;
                }
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"line {lineNumber}: {e.Message}"));
            }
        }

        return new RunMetrics { Steps = steps, Epochs = epochs, WorkerSteps = workers, Problems = problems };
    }

    private static Dictionary<string, LayerStep> ReadFilters(JsonObject filters)
    {
        var result = new Dictionary<string, LayerStep>(StringComparer.Ordinal);
        foreach (var (name, value) in filters)
        {
            if (value is not JsonObject layer)
            {
                continue;
            }

            var metric = layer.ContainsKey("sparsity") ? "sparsity" : "nonpositive_fraction";
            result[name] = new LayerStep(
                layer["type"]?.GetValue<string>() ?? "Conv2D",
                layer["activation"]?.GetValue<string>() ?? "relu",
                Array(layer["grad_norm"]),
                Array(layer["weight_norm"]),
                Array(layer["update_ratio"]),
                Array(layer[metric]),
                metric,
                layer["dead"] is JsonArray dead ? dead.Select(d => d!.GetValue<int>()).ToArray() : []);
        }

        return result;
    }

    private static Dictionary<string, double[]> PerLayer(JsonNode? node) =>
        node is JsonObject layers ? layers.ToDictionary(p => p.Key, p => Array(p.Value), StringComparer.Ordinal) : new Dictionary<string, double[]>(StringComparer.Ordinal);

    // JSON has no NaN: the trainer writes null for a value that was not finite; it is read back as NaN.
    private static double[] Array(JsonNode? node) =>
        node is JsonArray a ? a.Select(v => v is null ? double.NaN : v.GetValue<double>()).ToArray() : [];

    private static double Number(JsonObject o, string name) => o[name] is JsonValue v ? v.GetValue<double>() : double.NaN;

    private static double? Optional(JsonObject o, string name) => o[name] is JsonValue v ? v.GetValue<double>() : null;

    private static long Long(JsonObject o, string name) => o[name]?.GetValue<long>() ?? throw new KeyNotFoundException($"no \"{name}\"");

    private static int Int(JsonObject o, string name) => o[name]?.GetValue<int>() ?? 0;

    private static string Text(JsonObject o, string name) => o[name]?.ToString() ?? throw new KeyNotFoundException($"no \"{name}\"");
}
