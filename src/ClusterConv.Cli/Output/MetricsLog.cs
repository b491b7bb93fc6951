using System.Globalization;
using System.Text.Json;
using ClusterConv.Cluster;
using ClusterConv.Engine.Statistics;

namespace ClusterConv.Cli.Output;

/// <summary>metrics.jsonl: one JSON object per line, appended and flushed as training goes, so a run can be followed live.</summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter writer;

    public MetricsLog(string path)
    {
        writer = new StreamWriter(path, append: false) { AutoFlush = false, NewLine = "\n" };
    }

    public void WriteEpoch(int epoch, long step, double wallSeconds, double trainLoss, double trainAccuracy, double testLoss, double testAccuracy) =>
        WriteLine(w =>
        {
            w.WriteString("type", "epoch");
            w.WriteNumber("epoch", epoch);
            w.WriteNumber("step", step);
            w.WriteNumber("wall_seconds", Math.Round(wallSeconds, 3));
            w.WriteNumber("train_loss", trainLoss);
            w.WriteNumber("train_accuracy", trainAccuracy);
            w.WriteNumber("test_loss", testLoss);
            w.WriteNumber("test_accuracy", testAccuracy);
        });

    public void WriteStep(int epoch, long step, double wallSeconds, double loss, double accuracy, double learningRate, IReadOnlyList<FilterStatistics>? filters) =>
        WriteLine(w =>
        {
            w.WriteString("type", "step");
            w.WriteNumber("epoch", epoch);
            w.WriteNumber("step", step);
            w.WriteNumber("wall_seconds", Math.Round(wallSeconds, 3));
            w.WriteNumber("loss", loss);
            w.WriteNumber("accuracy", accuracy);
            w.WriteNumber("lr", learningRate);
            if (filters is not null)
            {
                w.WriteStartObject("filters");
                foreach (var layer in filters)
                {
                    w.WriteStartObject(layer.Layer);
                    w.WriteString("type", layer.LayerType);
                    w.WriteString("activation", layer.Activation);
                    WriteArray(w, "grad_norm", layer.GradientNorm);
                    WriteArray(w, "weight_norm", layer.WeightNorm);
                    WriteArray(w, "update_ratio", layer.UpdateRatio);
                    WriteArray(w, layer.SparsityMetric, layer.Sparsity);
                    w.WriteStartArray("dead");
                    foreach (var d in layer.DeadFilters)
                    {
                        w.WriteNumberValue(d);
                    }

                    w.WriteEndArray();
                    w.WriteEndObject();
                }

                w.WriteEndObject();
            }
        });

    /// <summary>
    /// One worker's share of a cluster step: <c>{"type":"worker_step","epoch","step","worker":"w0","silo","wall_seconds","duration_seconds","samples","loss"}</c>,
    /// wall_seconds being when the worker's part ended (job clock); statistics steps add, per measured layer, the
    /// worker's own per-filter numbers before aggregation: <c>"grad_norm"</c>, <c>"weight_norm"</c> and <c>"sparsity"</c>
    /// (<c>{"&lt;layer&gt;":[per filter]}</c>; sparsity is measured like the step line's, over the worker's samples).
    /// </summary>
    public void WriteWorkerStep(int epoch, long step, WorkerStep worker)
    {
        ArgumentNullException.ThrowIfNull(worker);
        WriteLine(w =>
        {
            w.WriteString("type", "worker_step");
            w.WriteNumber("epoch", epoch);
            w.WriteNumber("step", step);
            w.WriteString("worker", WorkerName(worker.Worker));
            w.WriteString("silo", worker.Silo);
            w.WriteNumber("wall_seconds", Math.Round(worker.StartSeconds + worker.DurationSeconds, 4));
            w.WriteNumber("duration_seconds", Math.Round(worker.DurationSeconds, 4));
            w.WriteNumber("samples", worker.Samples);
            if (double.IsFinite(worker.Loss))
            {
                w.WriteNumber("loss", worker.Loss);
            }
            else
            {
                w.WriteNull("loss");
            }

            if (worker.Filters is { Length: > 0 } filters)
            {
                foreach (var (name, values) in new (string, Func<WorkerLayerStatistics, float[]>)[] { ("grad_norm", l => l.GradientNorm), ("weight_norm", l => l.WeightNorm), ("sparsity", l => l.Sparsity) })
                {
                    w.WriteStartObject(name);
                    foreach (var layer in filters)
                    {
                        WriteArray(w, layer.Layer, values(layer));
                    }

                    w.WriteEndObject();
                }
            }
        });
    }

    /// <summary>
    /// A worker named by the cluster: <c>{"type":"alert","kind","epoch","step","worker":"w1","wall_seconds","message"}</c>,
    /// kind being nonfinite_gradient (refused, the step not applied), gradient_outlier (with "gradient_norm" and the
    /// "median" it was compared with) or weights_mismatch.
    /// </summary>
    public void WriteAlert(int epoch, double wallSeconds, JobAlert alert)
    {
        ArgumentNullException.ThrowIfNull(alert);
        WriteLine(w =>
        {
            w.WriteString("type", "alert");
            w.WriteString("kind", alert.Kind);
            w.WriteNumber("epoch", epoch);
            w.WriteNumber("step", alert.Step);
            w.WriteString("worker", WorkerName(alert.Worker));
            w.WriteNumber("wall_seconds", Math.Round(wallSeconds, 3));
            if (double.IsFinite(alert.Value) && double.IsFinite(alert.Reference))
            {
                w.WriteNumber("gradient_norm", alert.Value);
                w.WriteNumber("median", alert.Reference);
            }

            w.WriteString("message", alert.Message);
        });
    }

    /// <summary>How worker grain <paramref name="index"/> is named in metrics.jsonl and the report.</summary>
    public static string WorkerName(int index) => "w" + index.ToString(CultureInfo.InvariantCulture);

    public void Dispose() => writer.Dispose();

    private static void WriteArray(Utf8JsonWriter w, string name, float[] values)
    {
        w.WriteStartArray(name);
        foreach (var v in values)
        {
            // JSON has no NaN or infinity: write null so the line stays valid.
            if (float.IsFinite(v))
            {
                w.WriteNumberValue(v);
            }
            else
            {
                w.WriteNullValue();
            }
        }

        w.WriteEndArray();
    }

    private void WriteLine(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        writer.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
        writer.Flush();
    }
}
