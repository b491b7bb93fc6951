using System.Reflection;
using System.Runtime.InteropServices;
using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;
using Google.Protobuf;
using Proto = global::Onnx;

namespace ClusterConv.Onnx;

/// <summary>A model that ONNX, in the chosen opset, cannot express as this exporter writes it; the message names the layer and the reason.</summary>
public sealed class OnnxExportException : Exception
{
    public OnnxExportException(string message) : base(message)
    {
    }

    public OnnxExportException(string message, Exception inner) : base(message, inner)
    {
    }

    public OnnxExportException()
    {
    }
}

/// <summary>
/// Writes a trained ClusterConv model as an ONNX graph (the published onnx.proto, serialized by Google.Protobuf).
/// <para>
/// The graph: input <c>input</c> (batch, C, H, W) float32 pixel values in [0, 1] (byte / 255) with a dynamic batch
/// dimension; the training normalization as Sub (mean) and Div (std) when it is not the identity; then layer by layer
/// in model order: Conv2D → Conv (+ activation), pooling → MaxPool / AveragePool (count_include_pad = 0) with
/// TensorFlow "same" padding written as explicit pads [top, left, bottom, right] (the odd pixel after), Flatten →
/// Flatten (axis 1, NCHW order as the engine flattens), Dense → Gemm (transB = 1: the kernel is (units, inputs)),
/// BatchNormalization → BatchNormalization with the moving statistics (inference form; gamma ones and beta zeros when
/// scale or center is off), Dropout → nothing (identity at inference), activations → Relu, LeakyRelu, Elu, Tanh,
/// Sigmoid, and GELU (exact erf form) as Gelu from opset 20 or x·½·(1 + Erf(x/√2)) below. The output
/// <c>logits</c> is (batch, classes).
/// </para>
/// </summary>
public static class OnnxExporter
{
    public const int MinOpset = 13;
    public const int MaxOpset = 20;
    public const int DefaultOpset = 17;

    /// <summary>Serializes the checkpoint's model and weights as an ONNX model.</summary>
    public static byte[] Export(ModelCheckpoint checkpoint, int opset = DefaultOpset)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return Build(checkpoint, opset).ToByteArray();
    }

    /// <summary>The ONNX model of the checkpoint; throws <see cref="OnnxExportException"/> for what the opset cannot express.</summary>
    internal static Proto.ModelProto Build(ModelCheckpoint checkpoint, int opset = DefaultOpset)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (opset is < MinOpset or > MaxOpset)
        {
            throw new OnnxExportException($"opset {opset} is not supported: the exporter writes opsets {MinOpset} to {MaxOpset}");
        }

        var spec = checkpoint.Model;
        Check(spec, opset);
        var normalization = checkpoint.Normalization;
        if (!(float.IsFinite(normalization.Mean) && float.IsFinite(normalization.Std) && normalization.Std > 0f))
        {
            throw new OnnxExportException($"input normalization '{normalization.Name}' (mean {normalization.Mean}, std {normalization.Std}) cannot be written: std must be positive and both finite");
        }

        var model = checkpoint.CreateModel();
        var graph = new GraphBuilder(opset);
        var classes = model.Classes;
        var input = spec.Input;
        var current = graph.Normalize("input", normalization);
        var rank = 4;
        foreach (var layer in model.Layers)
        {
            (current, rank) = graph.Layer(layer, current, rank);
        }

        if (rank == 4)
        {
            current = graph.Node("Flatten", [current], "logits_flatten", [Attribute("axis", 1)]);
        }

        graph.RenameOutput(current, "logits");
        var g = graph.Graph;
        g.Name = spec.Name;
        g.DocString = $"ClusterConv model '{spec.Name}': input (batch, {input.C}, {input.H}, {input.W}) pixel values byte/255 in [0, 1]; output logits (batch, {classes}).";
        g.Input.Add(TensorValue("input", [null, input.C, input.H, input.W]));
        g.Output.Add(TensorValue("logits", [null, classes]));

        var result = new Proto.ModelProto
        {
            IrVersion = opset >= 19 ? 9 : opset >= 15 ? 8 : 7,
            ProducerName = "ClusterConv",
            ProducerVersion = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0",
            DocString = $"Exported by ClusterConv from a checkpoint of step {checkpoint.Step} (epoch {checkpoint.Epoch}).",
            Graph = g,
        };
        result.OpsetImport.Add(new Proto.OperatorSetIdProto { Domain = string.Empty, Version = opset });
        result.MetadataProps.Add(new Proto.StringStringEntryProto { Key = "normalization", Value = FormattableString.Invariant($"{normalization.Name} mean={normalization.Mean:R} std={normalization.Std:R}") });
        result.MetadataProps.Add(new Proto.StringStringEntryProto { Key = "step", Value = checkpoint.Step.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        result.MetadataProps.Add(new Proto.StringStringEntryProto { Key = "keras_model", Value = KerasModelWriter.Write(spec) });
        return result;
    }

    /// <summary>Refuses, before any building, every layer or setting the exporter has no ONNX form for.</summary>
    private static void Check(ModelSpec spec, int opset)
    {
        foreach (var layer in spec.Layers)
        {
            var activation = layer switch
            {
                Conv2DSpec conv => conv.Activation,
                DenseSpec dense => dense.Activation,
                ActivationSpec standalone => standalone.Activation,
                Pool2DSpec or FlattenSpec or DropoutSpec or BatchNormSpec => Activation.Linear,
                _ => throw new OnnxExportException($"layer '{layer.Name}' ({layer.TypeName}): no ONNX form in opset {opset} is known for this layer type"),
            };
            if (!Enum.IsDefined(activation.Kind))
            {
                throw new OnnxExportException($"layer '{layer.Name}' ({layer.TypeName}): activation {(int)activation.Kind} has no ONNX form in opset {opset}");
            }

            if (activation.Kind is ActivationKind.LeakyRelu or ActivationKind.Elu && !float.IsFinite(activation.Alpha))
            {
                throw new OnnxExportException($"layer '{layer.Name}' ({layer.TypeName}): {activation.KerasName} alpha {activation.Alpha} is not a finite number");
            }
        }
    }

    internal static Proto.AttributeProto Attribute(string name, long value) =>
        new() { Name = name, Type = Proto.AttributeProto.Types.AttributeType.Int, I = value };

    internal static Proto.AttributeProto Attribute(string name, float value) =>
        new() { Name = name, Type = Proto.AttributeProto.Types.AttributeType.Float, F = value };

    internal static Proto.AttributeProto Attribute(string name, string value) =>
        new() { Name = name, Type = Proto.AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    internal static Proto.AttributeProto Attribute(string name, params long[] values)
    {
        var attribute = new Proto.AttributeProto { Name = name, Type = Proto.AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.Add(values);
        return attribute;
    }

    /// <summary>A float tensor value description; a null dimension is the dynamic batch dimension "batch".</summary>
    private static Proto.ValueInfoProto TensorValue(string name, int?[] dims)
    {
        var shape = new Proto.TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d is { } v ? new Proto.TensorShapeProto.Types.Dimension { DimValue = v } : new Proto.TensorShapeProto.Types.Dimension { DimParam = "batch" });
        }

        return new Proto.ValueInfoProto
        {
            Name = name,
            Type = new Proto.TypeProto { TensorType = new Proto.TypeProto.Types.Tensor { ElemType = (int)Proto.TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    /// <summary>Nodes and initializers in the order they are added; tensor names derive from layer names.</summary>
    private sealed class GraphBuilder(int opset)
    {
        private readonly Dictionary<string, string> constants = [];

        public Proto.GraphProto Graph { get; } = new();

        /// <summary>Adds a node with one output named <paramref name="output"/>; returns that name.</summary>
        public string Node(string op, string[] inputs, string output, Proto.AttributeProto[]? attributes = null)
        {
            var node = new Proto.NodeProto { OpType = op, Name = output };
            node.Input.Add(inputs);
            node.Output.Add(output);
            if (attributes is not null)
            {
                node.Attribute.Add(attributes);
            }

            Graph.Node.Add(node);
            return output;
        }

        public string Initializer(string name, ReadOnlySpan<float> values, params long[] dims)
        {
            var tensor = new Proto.TensorProto { Name = name, DataType = (int)Proto.TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(LittleEndian(values)) };
            tensor.Dims.Add(dims);
            Graph.Initializer.Add(tensor);
            return name;
        }

        public string Int64Initializer(string name, params long[] values)
        {
            var tensor = new Proto.TensorProto { Name = name, DataType = (int)Proto.TensorProto.Types.DataType.Int64 };
            tensor.Dims.Add(values.Length);
            tensor.Int64Data.Add(values);
            Graph.Initializer.Add(tensor);
            return name;
        }

        /// <summary>A shared float scalar initializer.</summary>
        public string Scalar(float value)
        {
            var key = value.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
            if (!constants.TryGetValue(key, out var name))
            {
                name = Initializer($"const_{constants.Count}", [value]);
                constants[key] = name;
            }

            return name;
        }

        /// <summary>x = (input − mean) / std, as the engine's input table computes it; nothing for the identity.</summary>
        public string Normalize(string input, InputNormalization normalization)
        {
            var current = input;
            if (normalization.Mean != 0f)
            {
                current = Node("Sub", [current, Initializer("normalization/mean", [normalization.Mean])], "normalization/centered");
            }

            if (normalization.Std != 1f)
            {
                current = Node("Div", [current, Initializer("normalization/std", [normalization.Std])], "normalization/scaled");
            }

            return current;
        }

        /// <summary>Appends one engine layer reading <paramref name="input"/> of rank <paramref name="rank"/> (4: NCHW, 2: (N, features)).</summary>
        public (string Output, int Rank) Layer(Layer layer, string input, int rank)
        {
            var name = layer.Name;
            switch (layer)
            {
                case Conv2D conv:
                {
                    input = ToRank4(input, rank, name);
                    var s = conv.Spec;
                    var shape = conv.InputShape;
                    var kernel = conv.Parameters[0];
                    var inputs = new List<string> { input, Initializer($"{name}/kernel", kernel.Value, [.. kernel.Shape.Select(d => (long)d)]) };
                    if (s.UseBias)
                    {
                        inputs.Add(Initializer($"{name}/bias", conv.Parameters[1].Value, s.Filters));
                    }

                    var output = Node("Conv", [.. inputs], s.Activation.Kind == ActivationKind.Linear ? name : $"{name}/pre",
                    [
                        Attribute("kernel_shape", s.KernelH, s.KernelW),
                        Attribute("strides", s.StrideH, s.StrideW),
                        Attribute("pads", Pads(shape, s.KernelH, s.KernelW, s.StrideH, s.StrideW, s.Padding)),
                        Attribute("dilations", 1, 1),
                        Attribute("group", 1),
                    ]);
                    return (Activate(s.Activation, output, name), 4);
                }

                case Pool2D pool:
                {
                    input = ToRank4(input, rank, name);
                    var s = pool.Spec;
                    var attributes = new List<Proto.AttributeProto>
                    {
                        Attribute("kernel_shape", s.PoolH, s.PoolW),
                        Attribute("strides", s.StrideH, s.StrideW),
                        Attribute("pads", Pads(pool.InputShape, s.PoolH, s.PoolW, s.StrideH, s.StrideW, s.Padding)),
                    };
                    if (s.Kind == PoolKind.Average)
                    {
                        attributes.Add(Attribute("count_include_pad", 0));
                    }

                    return (Node(s.Kind == PoolKind.Max ? "MaxPool" : "AveragePool", [input], name, [.. attributes]), 4);
                }

                case Flatten:
                    return rank == 2 ? (input, 2) : (Node("Flatten", [input], name, [Attribute("axis", 1)]), 2);

                case Dense dense:
                {
                    if (rank == 4)
                    {
                        input = Node("Flatten", [input], $"{name}/flatten", [Attribute("axis", 1)]);
                    }

                    var s = dense.Spec;
                    var kernel = dense.Parameters[0];
                    var inputs = new List<string> { input, Initializer($"{name}/kernel", kernel.Value, kernel.Shape[0], kernel.Shape[1]) };
                    if (s.UseBias)
                    {
                        inputs.Add(Initializer($"{name}/bias", dense.Parameters[1].Value, s.Units));
                    }

                    var output = Node("Gemm", [.. inputs], s.Activation.Kind == ActivationKind.Linear ? name : $"{name}/pre", [Attribute("transB", 1)]);
                    return (Activate(s.Activation, output, name), 2);
                }

                case Dropout:
                    return (input, rank);

                case BatchNorm norm:
                {
                    var s = norm.Spec;
                    var channels = norm.InputShape.C;
                    var p = norm.Parameters;
                    var index = 0;
                    var gamma = s.Scale ? p[index++].Value : Enumerable.Repeat(1f, channels).ToArray();
                    var beta = s.Center ? p[index++].Value : new float[channels];
                    var output = Node("BatchNormalization",
                    [
                        input,
                        Initializer($"{name}/gamma", gamma, channels),
                        Initializer($"{name}/beta", beta, channels),
                        Initializer($"{name}/moving_mean", norm.MovingMean.Value, channels),
                        Initializer($"{name}/moving_variance", norm.MovingVariance.Value, channels),
                    ], name, [Attribute("epsilon", s.Epsilon)]);
                    return (output, rank);
                }

                case ActivationLayer activation:
                    return (activation.Activation.Kind == ActivationKind.Linear ? input : Activate(activation.Activation, input, name), rank);

                default:
                    throw new OnnxExportException($"layer '{name}' ({layer.TypeName}): no ONNX form in opset {opset} is known for this layer type");
            }
        }

        /// <summary>Renames the tensor <paramref name="from"/> (the output of the last node that writes it) to <paramref name="to"/>.</summary>
        public void RenameOutput(string from, string to)
        {
            var node = Graph.Node.LastOrDefault(n => n.Output.Contains(from))
                ?? throw new OnnxExportException($"the model computes nothing from its input: the graph output '{from}' is not written by any node");
            node.Output[node.Output.IndexOf(from)] = to;
        }

        // Conv and pooling need NCHW; a vector (N, features) becomes (N, features, 1, 1), as the engine holds it.
        private string ToRank4(string input, int rank, string name) =>
            rank == 4 ? input : Node("Reshape", [input, Int64Initializer($"{name}/shape4", 0, -1, 1, 1)], $"{name}/as_nchw");

        // ONNX pads [top, left, bottom, right]: PadBefore before, the rest (TensorFlow's odd pixel) after.
        private static long[] Pads(SampleShape input, int kernelH, int kernelW, int strideH, int strideW, Padding padding)
        {
            var top = ConvGeometry.PadBefore(input.H, kernelH, strideH, padding);
            var left = ConvGeometry.PadBefore(input.W, kernelW, strideW, padding);
            var bottom = Total(input.H, kernelH, strideH, padding) - top;
            var right = Total(input.W, kernelW, strideW, padding) - left;
            return [top, left, bottom, right];
        }

        private static int Total(int input, int kernel, int stride, Padding padding)
        {
            if (padding == Padding.Valid)
            {
                return 0;
            }

            var output = ConvGeometry.OutputSize(input, kernel, stride, padding);
            return Math.Max(((output - 1) * stride) + kernel - input, 0);
        }

        private string Activate(Activation activation, string input, string name) => activation.Kind switch
        {
            ActivationKind.Linear => input,
            ActivationKind.Relu => Node("Relu", [input], name),
            ActivationKind.LeakyRelu => Node("LeakyRelu", [input], name, [Attribute("alpha", activation.Alpha)]),
            ActivationKind.Elu => Node("Elu", [input], name, [Attribute("alpha", activation.Alpha)]),
            ActivationKind.Tanh => Node("Tanh", [input], name),
            ActivationKind.Sigmoid => Node("Sigmoid", [input], name),
            ActivationKind.Gelu when opset >= 20 => Node("Gelu", [input], name, [Attribute("approximate", "none")]),
            ActivationKind.Gelu => Gelu(input, name),
            _ => throw new OnnxExportException($"layer '{name}': activation {activation.Kind} has no ONNX form in opset {opset}"),
        };

        // gelu(x) = x · ½ · (1 + erf(x / √2)), the exact form the engine computes.
        private string Gelu(string x, string name)
        {
            var scaled = Node("Mul", [x, Scalar(0.70710678f)], $"{name}/gelu_scaled");
            var erf = Node("Erf", [scaled], $"{name}/gelu_erf");
            var onePlus = Node("Add", [erf, Scalar(1f)], $"{name}/gelu_one_plus");
            var half = Node("Mul", [x, Scalar(0.5f)], $"{name}/gelu_half");
            return Node("Mul", [half, onePlus], name);
        }

        private static byte[] LittleEndian(ReadOnlySpan<float> values) => BitConverter.IsLittleEndian
            ? MemoryMarshal.AsBytes(values).ToArray()
            : throw new PlatformNotSupportedException("ONNX raw_data is written on little-endian machines");
    }
}
