using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Reports;

/// <summary>The kernel of one Conv2D layer at one checkpoint: (K, C, R, S) with each filter's L2 norm.</summary>
public sealed record ConvKernel(string Layer, int Filters, int Channels, int Height, int Width, float[] Values, double[] Norms)
{
    /// <summary>Filter k, input channel c, as a row-major R×S tile.</summary>
    public float[] Slice(int k, int c) => Values.AsSpan(((k * Channels) + c) * Height * Width, Height * Width).ToArray();
}

/// <summary>One conv layer's outputs for one image: before and after its activation, (K, P, Q) each.</summary>
public sealed record FeatureMaps(string Layer, string Activation, int Channels, int Height, int Width, float[] Before, float[]? After)
{
    public float[] Channel(float[] maps, int k) => maps.AsSpan(k * Height * Width, Height * Width).ToArray();
}

/// <summary>What a test image does inside the model: its pixels, label, the prediction and every conv layer's maps.</summary>
public sealed record ImageTrace(int Index, int Label, string ClassName, int Predicted, string PredictedName, float[] Pixels, int Height, int Width, IReadOnlyList<FeatureMaps> Layers);

/// <summary>Reads weights out of checkpoints and runs the engine on them to see the feature maps.</summary>
public static class CheckpointInspector
{
    /// <summary>Every Conv2D layer's kernel in the checkpoint, in model order.</summary>
    public static IReadOnlyList<ConvKernel> ConvKernels(ModelCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var model = checkpoint.CreateModel();
        return model.Layers.OfType<Conv2D>().Select(conv =>
        {
            var kernel = conv.Parameters[0];
            var (k, c, r, s) = (kernel.Shape[0], kernel.Shape[1], kernel.Shape[2], kernel.Shape[3]);
            var norms = new double[k];
            for (var f = 0; f < k; f++)
            {
                double sum = 0;
                foreach (var v in kernel.Value.AsSpan(f * c * r * s, c * r * s))
                {
                    sum += (double)v * v;
                }

                norms[f] = Math.Sqrt(sum);
            }

            return new ConvKernel(conv.Name, k, c, r, s, (float[])kernel.Value.Clone(), norms);
        }).ToArray();
    }

    /// <summary>
    /// The same model with each Conv2D's fused activation moved into an Activation layer right after it, so the engine
    /// keeps the output before the activation. Parameters are unchanged (activations have none), in the same order.
    /// </summary>
    public static ModelSpec SplitActivations(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var layers = new List<LayerSpec>();
        foreach (var layer in spec.Layers)
        {
            if (layer is Conv2DSpec conv && conv.Activation.Kind != ActivationKind.Linear)
            {
                layers.Add(conv with { Activation = Activation.Linear });
                layers.Add(new ActivationSpec(conv.Name + "/" + conv.Activation.KerasName, conv.Activation));
            }
            else
            {
                layers.Add(layer);
            }
        }

        return spec with { Layers = layers.AsReadOnly() };
    }

    /// <summary>Runs the test images <paramref name="indices"/> through the checkpoint's model (inference mode) and keeps every conv layer's maps.</summary>
    public static IReadOnlyList<ImageTrace> Trace(ModelCheckpoint checkpoint, Dataset test, IReadOnlyList<int> indices)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(indices);
        var model = new Model(SplitActivations(checkpoint.Model));
        model.LoadParameters(checkpoint.Parameters);
        if (new SampleShape(1, test.Height, test.Width) != model.InputShape)
        {
            throw new ReportException($"the model expects input {model.InputShape} but the test images are 1x{test.Height}x{test.Width}");
        }

        var n = checkpoint.Normalization;
        var normalization = new Normalization(n.Name, n.Mean, n.Std);
        var assembler = new BatchAssembler(test, normalization);
        var input = assembler.CreateTensor(indices.Count);
        var labels = new int[indices.Count];
        assembler.Fill(input, labels, indices.ToArray());
        var logits = model.Forward(input, new StepContext(false, ComputePool.Serial));

        var traces = new List<ImageTrace>();
        for (var i = 0; i < indices.Count; i++)
        {
            var maps = new List<FeatureMaps>();
            for (var l = 0; l < model.Layers.Count; l++)
            {
                if (model.Layers[l] is not Conv2D conv)
                {
                    continue;
                }

                var before = model.LayerOutput(l).Sample(i).ToArray();
                var shape = conv.OutputShape;
                float[]? after = null;
                var activation = "linear";
                // The activation after the conv: its own (split off above), or, for a linear conv, the first stand-alone
                // activation before the next layer with weights (e.g. Conv2D, BatchNormalization, ReLU), as the statistics do.
                for (var j = l + 1; j < model.Layers.Count && model.Layers[j] is not (Conv2D or Dense); j++)
                {
                    if (model.Layers[j] is ActivationLayer act && act.Activation.Kind != ActivationKind.Linear && model.Layers[j].OutputShape == conv.OutputShape)
                    {
                        after = model.LayerOutput(j).Sample(i).ToArray();
                        activation = act.Name.StartsWith(conv.Name + "/", StringComparison.Ordinal)
                            ? act.Activation.KerasName
                            : act.Activation.KerasName + " (after " + string.Join(", ", model.Layers.Skip(l + 1).Take(j - l - 1).Select(x => x.TypeName)) + ")";
                        break;
                    }
                }

                maps.Add(new FeatureMaps(conv.Name, activation, shape.C, shape.H, shape.W, before, after));
            }

            var scores = logits.Sample(i);
            var predicted = 0;
            for (var c = 1; c < scores.Length; c++)
            {
                if (scores[c] > scores[predicted])
                {
                    predicted = c;
                }
            }

            var pixels = test.Image(indices[i]).ToArray().Select(b => b / 255f).ToArray();
            var label = test.Label(indices[i]);
            string Name(int c) => c < test.ClassNames.Count ? test.ClassNames[c] : c.ToString(System.Globalization.CultureInfo.InvariantCulture);
            traces.Add(new ImageTrace(indices[i], label, Name(label), predicted, Name(predicted), pixels, test.Height, test.Width, maps));
        }

        return traces;
    }

    /// <summary>The first test image of each of the first <paramref name="count"/> distinct classes met, in index order.</summary>
    public static IReadOnlyList<int> PickImages(Dataset test, int count)
    {
        ArgumentNullException.ThrowIfNull(test);
        var seen = new HashSet<int>();
        var picked = new List<int>();
        for (var i = 0; i < test.Count && picked.Count < count; i++)
        {
            if (seen.Add(test.Label(i)))
            {
                picked.Add(i);
            }
        }

        return picked;
    }
}
