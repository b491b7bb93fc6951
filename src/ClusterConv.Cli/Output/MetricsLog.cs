using System.Text.Json;
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
