using System.Globalization;
using System.Text;

namespace ClusterConv.Engine.Specs;

/// <summary>One row of <see cref="ModelSummary"/>: a layer's output shape without the batch axis, in the model's data format.</summary>
public sealed record ModelSummaryRow(string Name, string KerasClass, IReadOnlyList<int> OutputDims, long Parameters, long TrainableParameters)
{
    /// <summary>As Keras prints it: "(None, 26, 26, 32)" for a channels_last image, "(None, 128)" for a vector.</summary>
    public string OutputShape => KerasShape(OutputDims);

    public long NonTrainableParameters => Parameters - TrainableParameters;

    internal static string KerasShape(IReadOnlyList<int> dims) =>
        "(None, " + string.Join(", ", dims.Select(d => d.ToString(CultureInfo.InvariantCulture))) + ")";
}

/// <summary>
/// The table Keras prints for <c>model.summary()</c>: per layer its name, class, output shape and parameter count,
/// then total, trainable and non-trainable parameters (BatchNormalization's moving mean and variance count as
/// non-trainable, as in Keras).
/// </summary>
public sealed record ModelSummary(
    string ModelName,
    IReadOnlyList<int> InputDims,
    IReadOnlyList<ModelSummaryRow> Rows,
    long TotalParameters,
    long TrainableParameters)
{
    public long NonTrainableParameters => TotalParameters - TrainableParameters;

    /// <summary>"(None, 28, 28, 1)" for a channels_last image input.</summary>
    public string InputShape => ModelSummaryRow.KerasShape(InputDims);

    /// <summary>Builds the summary; throws a <see cref="Layers.ModelException"/> naming the first layer that does not fit its input.</summary>
    public static ModelSummary Create(ModelSpec model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var rows = new List<ModelSummaryRow>(model.Layers.Count);
        var shape = model.Input;
        var vector = shape.H == 1 && shape.W == 1; // a 1×1 "image" input is a feature vector
        var inputDims = Dims(shape, vector, model.DataFormat);
        long total = 0, trainable = 0;
        foreach (var layer in model.Layers)
        {
            var parameters = layer.ParameterCount(shape);
            var trainableParameters = layer.TrainableParameterCount(shape);
            shape = layer.OutputShape(shape);
            vector = layer is FlattenSpec or DenseSpec || (vector && layer is not (Conv2DSpec or Pool2DSpec));
            rows.Add(new ModelSummaryRow(layer.Name, layer.TypeName, Dims(shape, vector, model.DataFormat), parameters, trainableParameters));
            total += parameters;
            trainable += trainableParameters;
        }

        return new ModelSummary(model.Name, inputDims, rows.AsReadOnly(), total, trainable);
    }

    /// <summary>Plain text in the layout of Keras 2's model.summary() (row counts plain, totals with thousands separators),
    /// columns widened to fit long names instead of cutting them.</summary>
    public string Render()
    {
        var cells = Rows.Select(r => (Layer: $"{r.Name} ({r.KerasClass})", r.OutputShape, Params: r.Parameters.ToString(CultureInfo.InvariantCulture))).ToList();
        var layerWidth = Math.Max(29, cells.Count == 0 ? 0 : cells.Max(c => c.Layer.Length) + 1);
        var shapeWidth = Math.Max(26, cells.Count == 0 ? 0 : cells.Max(c => c.OutputShape.Length) + 1);
        var paramWidth = Math.Max(10, cells.Count == 0 ? 0 : cells.Max(c => c.Params.Length) + 1);
        var width = layerWidth + shapeWidth + paramWidth;
        var thin = new string('_', width);
        var thick = new string('=', width);

        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"Model: \"{ModelName}\"").AppendLine();
        text.AppendLine(thin);
        AppendRow(text, "Layer (type)", "Output Shape", "Param #");
        text.AppendLine(thick);
        for (var i = 0; i < cells.Count; i++)
        {
            AppendRow(text, cells[i].Layer, cells[i].OutputShape, cells[i].Params);
            text.AppendLine(i == cells.Count - 1 ? thick : thin);
        }

        text.Append("Total params: ").AppendLine(Count(TotalParameters));
        text.Append("Trainable params: ").AppendLine(Count(TrainableParameters));
        text.Append("Non-trainable params: ").AppendLine(Count(NonTrainableParameters));
        text.AppendLine(thin);
        return text.ToString();

        void AppendRow(StringBuilder line, string layer, string shape, string parameters) =>
            line.AppendLine((layer.PadRight(layerWidth) + shape.PadRight(shapeWidth) + parameters).TrimEnd());
    }

    public override string ToString() => Render();

    private static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static int[] Dims(SampleShape shape, bool vector, DataFormat format) =>
        vector ? [shape.Size]
        : format == DataFormat.ChannelsLast ? [shape.H, shape.W, shape.C]
        : [shape.C, shape.H, shape.W];
}
