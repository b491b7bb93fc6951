using System.Globalization;
using System.Text.Json;
using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Specs;

/// <summary>Settings for <see cref="KerasModelReader"/>.</summary>
public sealed record KerasReadOptions
{
    public static KerasReadOptions Default { get; } = new();

    /// <summary>
    /// Read layers that carry non-zero weight regularizers (kernel_, bias_, activity_, beta_, gamma_regularizer),
    /// dropping the penalty with a note. Off by default: the engine has no weight penalties, so such a file is
    /// refused rather than trained differently without saying so. Constraints are refused either way.
    /// </summary>
    public bool IgnoreRegularizers { get; init; }

    /// <summary>
    /// Refuse a model with more parameters than this (null: no limit). A typo in a file (units: 1000000) would
    /// otherwise allocate gigabytes on every worker before anything says why.
    /// </summary>
    public long? MaxParameters { get; init; }
}

/// <summary>A model with notes on anything read differently from Keras (empty when nothing was).</summary>
public sealed record ModelImport(ModelSpec Model, IReadOnlyList<string> Notes);

/// <summary>
/// Reads the JSON Keras writes with <c>model.to_json()</c> for a Sequential image model, in every form it has
/// taken, into a <see cref="ModelSpec"/>:
/// <list type="bullet">
/// <item>Keras 2.0–2.2.2: <c>{"class_name": "Sequential", "config": [layers]}</c>, input shape from the first layer's batch_input_shape;</item>
/// <item>Keras 2.2.3+, tf.keras and Keras 3: <c>"config": {"name", "layers": [...]}</c>, with an InputLayer carrying
/// batch_input_shape (Keras 2) or batch_shape (Keras 3), or batch_input_shape on the first layer; Keras 3's
/// module/registered_name wrappers and dtype-policy objects are accepted;</item>
/// <item>TensorFlow.js model.json: <c>modelTopology</c> holding either of the above, directly or as <c>modelTopology.model_config</c>.</item>
/// </list>
/// Everything that would change the computation and is not supported is refused with one <see cref="ModelException"/>
/// naming the file, the layer and the field. Fields that do not change it (name, dtype, trainable: true, seeds, ...) are
/// ignored. Softmax on the last layer is read as linear logits, because training applies softmax cross-entropy to the
/// logits; the returned notes say so.
/// </summary>
public static class KerasModelReader
{
    private const string SupportedClasses =
        "InputLayer, Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Dense, Dropout, BatchNormalization, Activation, ReLU, LeakyReLU";

    private const string SupportedActivations = "relu, leaky_relu, elu, gelu, tanh, sigmoid, linear, and softmax on the last layer";

    private const string SupportedInitializers = "glorot_uniform, glorot_normal, he_uniform, he_normal (or the same VarianceScaling), lecun_* (read as glorot_*), zeros, ones";

    public static ModelSpec Read(string json, string sourceName, KerasReadOptions? options = null) => Import(json, sourceName, options).Model;

    public static ModelSpec ReadFile(string path, KerasReadOptions? options = null) => ImportFile(path, options).Model;

    /// <summary>Reads a model file; a missing or unreadable file is a <see cref="ModelException"/> naming the path.</summary>
    public static ModelImport ImportFile(string path, KerasReadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string json;
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelException($"model file not found: '{path}'", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelException($"cannot read model file '{path}': {e.Message}", e);
        }

        return Import(json, path, options);
    }

    /// <summary>Reads model JSON; <paramref name="sourceName"/> (usually the file path) starts every error message.</summary>
    public static ModelImport Import(string json, string sourceName, KerasReadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(sourceName);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? $" at line {line + 1}, byte {(e.BytePositionInLine ?? 0) + 1}" : "";
            var message = e.Message;
            var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
            throw new ModelException($"{sourceName}: malformed JSON{where}: {(cut > 0 ? message[..cut] : message)}".ReplaceLineEndings("\\n"), e);
        }

        using (document)
        {
            return new Reader(sourceName, options ?? KerasReadOptions.Default).Read(document.RootElement);
        }
    }

    /// <summary>One entry of the layer list: its name (from the file, or Keras' automatic one), class and config object.</summary>
    private readonly record struct LayerRef(string Name, string Class, JsonElement Config, JsonElement Entry);

    private sealed class Reader(string source, KerasReadOptions options)
    {
        private readonly List<string> _notes = [];
        private DataFormat _format = DataFormat.ChannelsLast;

        public ModelImport Read(JsonElement root)
        {
            var sequential = FindSequential(root);
            var (entries, modelName, buildInputShape) = LayerList(sequential);
            var layers = Describe(entries);
            _format = FindDataFormat(layers);

            var specs = new List<LayerSpec>(layers.Count);
            SampleShape? input = null;
            var vector = false; // rank of the current output: image (N, H, W, C) or vector (N, features)
            for (var i = 0; i < layers.Count; i++)
            {
                var layer = layers[i];
                if (layer.Class == "InputLayer")
                {
                    if (i != 0)
                    {
                        throw Fail(layer, "class_name", "an InputLayer is allowed only as the first layer");
                    }

                    input = InputLayerShape(layer);
                    continue;
                }

                input ??= FirstLayerInput(layer, buildInputShape)
                    ?? throw Fail(layer, "batch_input_shape", "missing: the model has no input shape (no InputLayer, and its first layer has no batch_input_shape)");
                RejectFrozen(layer);
                var isLast = i == layers.Count - 1;
                LayerSpec spec = layer.Class switch
                {
                    "Conv2D" => Conv2D(layer, vector, isLast),
                    "MaxPooling2D" or "MaxPool2D" => Pool(layer, PoolKind.Max, vector),
                    "AveragePooling2D" or "AvgPool2D" => Pool(layer, PoolKind.Average, vector),
                    "Flatten" => new FlattenSpec(layer.Name), // Flatten's own data_format only permutes Dense inputs; no weights are read
                    "Dense" => Dense(layer, vector, isLast),
                    "Dropout" => Dropout(layer),
                    "BatchNormalization" => BatchNorm(layer, vector),
                    "Activation" => new ActivationSpec(layer.Name, ActivationOf(layer, "activation", isLast, required: true)),
                    "ReLU" => Relu(layer),
                    "LeakyReLU" => LeakyRelu(layer),
                    _ => throw Fail(layer, "class_name", UnknownClass(layer.Class)),
                };
                vector = spec is FlattenSpec or DenseSpec || (vector && spec is not (Conv2DSpec or Pool2DSpec));
                specs.Add(spec);
            }

            if (input is null || specs.Count == 0)
            {
                throw Fail("config", "the model has no layers besides its InputLayer");
            }

            var name = modelName ?? Path.GetFileNameWithoutExtension(source);
            var model = new ModelSpec(name, input.Value, specs.AsReadOnly()) { DataFormat = _format };
            long parameters;
            try
            {
                _ = model.OutputShapes();
                parameters = model.ParameterCount();
            }
            catch (ModelException e)
            {
                throw new ModelException($"{source}: {e.Message}", e);
            }

            if (options.MaxParameters is { } max && parameters > max)
            {
                throw Fail("parameters", string.Create(CultureInfo.InvariantCulture, $"the model has {parameters:N0} parameters, more than the limit of {max:N0} (--max-parameters)"));
            }

            return new ModelImport(model, _notes.AsReadOnly());
        }

        // ---- model level ----

        private JsonElement FindSequential(JsonElement root)
        {
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Fail("top level", "expected a JSON object: a Keras model.to_json() or a TensorFlow.js model.json");
            }

            var model = root;
            var field = "class_name";
            if (root.TryGetProperty("modelTopology", out var topology))
            {
                if (topology.ValueKind != JsonValueKind.Object)
                {
                    throw Fail("modelTopology", $"expected an object, got {Raw(topology)}");
                }

                model = topology;
                field = "modelTopology.class_name";
                if (topology.TryGetProperty("model_config", out var inner))
                {
                    if (inner.ValueKind != JsonValueKind.Object)
                    {
                        throw Fail("modelTopology.model_config", $"expected an object, got {Raw(inner)}");
                    }

                    model = inner;
                    field = "modelTopology.model_config.class_name";
                }
            }

            var className = model.TryGetProperty("class_name", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            return className switch
            {
                "Sequential" => model,
                "Functional" or "Model" => throw Fail(field, $"'{className}' is a functional model; only Sequential models are supported (rebuild it with keras.Sequential)"),
                null => throw Fail(field, "missing: expected a Keras model.to_json() with class_name 'Sequential', or a TensorFlow.js model.json with a modelTopology"),
                _ => throw Fail(field, $"'{className}' is not a Sequential model; only Sequential models are supported"),
            };
        }

        private (List<JsonElement> Layers, string? Name, JsonElement? BuildInputShape) LayerList(JsonElement model)
        {
            if (!model.TryGetProperty("config", out var config))
            {
                throw Fail("config", "missing: a Sequential model needs a config with its layers");
            }

            if (config.ValueKind == JsonValueKind.Array)
            {
                return (config.EnumerateArray().ToList(), null, null); // Keras 2.0–2.2.2
            }

            if (config.ValueKind == JsonValueKind.Object && config.TryGetProperty("layers", out var layers) && layers.ValueKind == JsonValueKind.Array)
            {
                var name = config.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
                JsonElement? build = config.TryGetProperty("build_input_shape", out var b) && b.ValueKind == JsonValueKind.Array ? b : null;
                return (layers.EnumerateArray().ToList(), name, build);
            }

            throw Fail("config", "expected a list of layers or an object with a 'layers' list");
        }

        private List<LayerRef> Describe(List<JsonElement> entries)
        {
            if (entries.Count == 0)
            {
                throw Fail("config", "the model has no layers");
            }

            var autoNames = new KerasNames();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var layers = new List<LayerRef>(entries.Count);
            for (var i = 0; i < entries.Count; i++)
            {
                var entry = entries[i];
                if (entry.ValueKind != JsonValueKind.Object
                    || !entry.TryGetProperty("class_name", out var c) || c.ValueKind != JsonValueKind.String)
                {
                    throw Fail($"layers[{i}]", $"expected an object with a class_name, got {Raw(entry)}");
                }

                var className = c.GetString()!;
                var autoName = autoNames.Next(className);
                if (!entry.TryGetProperty("config", out var config) || config.ValueKind != JsonValueKind.Object)
                {
                    throw Fail(new LayerRef(autoName, className, default, entry), "config", "missing: expected an object");
                }

                var name = config.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : autoName;
                var layer = new LayerRef(name, className, config, entry);
                if (!seen.Add(name))
                {
                    throw Fail(layer, "name", "is also the name of an earlier layer; layer names must be unique");
                }

                layers.Add(layer);
            }

            return layers;
        }

        /// <summary>The data_format of the convolution and pooling layers (all must agree); channels_last when none says.</summary>
        private DataFormat FindDataFormat(List<LayerRef> layers)
        {
            DataFormat? format = null;
            LayerRef first = default;
            foreach (var layer in layers)
            {
                if (layer.Class is not ("Conv2D" or "MaxPooling2D" or "MaxPool2D" or "AveragePooling2D" or "AvgPool2D")
                    || !layer.Config.TryGetProperty("data_format", out var value) || value.ValueKind == JsonValueKind.Null)
                {
                    continue;
                }

                DataFormat current = value.ValueKind == JsonValueKind.String ? value.GetString() switch
                {
                    "channels_last" => DataFormat.ChannelsLast,
                    "channels_first" => DataFormat.ChannelsFirst,
                    _ => throw Fail(layer, "data_format", $"{Raw(value)} is not supported; expected 'channels_last' or 'channels_first'"),
                } : throw Fail(layer, "data_format", $"expected a string, got {Raw(value)}");
                if (format is null)
                {
                    (format, first) = (current, layer);
                }
                else if (format != current)
                {
                    throw Fail(layer, "data_format", $"{Raw(value)} differs from layer '{first.Name}'; mixing data formats is not supported");
                }
            }

            return format ?? DataFormat.ChannelsLast;
        }

        // ---- input shape ----

        private SampleShape InputLayerShape(LayerRef layer)
        {
            foreach (var field in (ReadOnlySpan<string>)["batch_shape", "batch_input_shape"])
            {
                if (layer.Config.TryGetProperty(field, out var value) && value.ValueKind != JsonValueKind.Null)
                {
                    return ImageShape(layer, field, value);
                }
            }

            throw Fail(layer, "batch_input_shape", "missing: the InputLayer has neither batch_shape nor batch_input_shape");
        }

        private SampleShape? FirstLayerInput(LayerRef layer, JsonElement? buildInputShape)
        {
            foreach (var field in (ReadOnlySpan<string>)["batch_input_shape", "batch_shape"])
            {
                if (layer.Config.TryGetProperty(field, out var value) && value.ValueKind != JsonValueKind.Null)
                {
                    return ImageShape(layer, field, value);
                }
            }

            if (buildInputShape is { } build)
            {
                return ImageShape(layer, "build_input_shape", build);
            }

            if (layer.Entry.TryGetProperty("build_config", out var config) && config.ValueKind == JsonValueKind.Object
                && config.TryGetProperty("input_shape", out var shape) && shape.ValueKind == JsonValueKind.Array)
            {
                return ImageShape(layer, "build_config.input_shape", shape);
            }

            return null;
        }

        /// <summary>[batch, H, W, C] (channels_last) or [batch, C, H, W] (channels_first) → (C, H, W).</summary>
        private SampleShape ImageShape(LayerRef layer, string field, JsonElement value)
        {
            if (value.ValueKind != JsonValueKind.Array)
            {
                throw Fail(layer, field, $"expected a list like [null, 28, 28, 1], got {Raw(value)}");
            }

            var dims = value.EnumerateArray().ToArray();
            var order = _format == DataFormat.ChannelsLast ? "[batch, height, width, channels]" : "[batch, channels, height, width]";
            if (dims.Length != 4)
            {
                throw Fail(layer, field, $"{Raw(value)} is not an image input; expected {order}");
            }

            var sizes = new int[3];
            for (var k = 1; k < 4; k++)
            {
                if (dims[k].ValueKind == JsonValueKind.Null)
                {
                    throw Fail(layer, field, $"{Raw(value)} has a variable size (null); height, width and channels must be fixed");
                }

                if (!TryInt(dims[k], out sizes[k - 1]) || sizes[k - 1] <= 0)
                {
                    throw Fail(layer, field, $"{Raw(value)}: sizes must be positive integers, {order}");
                }
            }

            return _format == DataFormat.ChannelsLast
                ? new SampleShape(sizes[2], sizes[0], sizes[1])
                : new SampleShape(sizes[0], sizes[1], sizes[2]);
        }

        // ---- layers ----

        private Conv2DSpec Conv2D(LayerRef layer, bool vector, bool isLast)
        {
            RequireImage(layer, vector);
            RequireOne(layer, "dilation_rate", "dilated convolution is not supported");
            RequireOne(layer, "groups", "grouped convolution is not supported");
            var filters = Int(layer, "filters");
            var (kh, kw) = Pair(layer, "kernel_size", null);
            var (sh, sw) = Pair(layer, "strides", (1, 1));
            var padding = PaddingOf(layer);
            var useBias = Bool(layer, "use_bias", true);
            var activation = ActivationOf(layer, "activation", isLast, required: false);
            var initializer = KernelInitializer(layer);
            RequireConstantInitializer(layer, "bias_initializer", one: false, relevant: useBias);
            CheckRegularizers(layer, "kernel_regularizer", "bias_regularizer", "activity_regularizer");
            RequireNull(layer, "constraints are not supported", "kernel_constraint", "bias_constraint");
            RequireNull(layer, "low-rank adaptation is not supported", "lora_rank");
            return new Conv2DSpec(layer.Name, filters, kh, kw, sh, sw, padding, useBias, activation, initializer);
        }

        private Pool2DSpec Pool(LayerRef layer, PoolKind kind, bool vector)
        {
            RequireImage(layer, vector);
            var (ph, pw) = Pair(layer, "pool_size", (2, 2));
            var (sh, sw) = Pair(layer, "strides", (ph, pw)); // null strides mean the pool size
            return new Pool2DSpec(layer.Name, kind, ph, pw, sh, sw, PaddingOf(layer));
        }

        private DenseSpec Dense(LayerRef layer, bool vector, bool isLast)
        {
            if (!vector)
            {
                throw Fail(layer, "input", "Dense on an image (applied to each pixel) is not supported; put a Flatten before it");
            }

            var units = Int(layer, "units");
            var useBias = Bool(layer, "use_bias", true);
            var activation = ActivationOf(layer, "activation", isLast, required: false);
            var initializer = KernelInitializer(layer);
            RequireConstantInitializer(layer, "bias_initializer", one: false, relevant: useBias);
            CheckRegularizers(layer, "kernel_regularizer", "bias_regularizer", "activity_regularizer");
            RequireNull(layer, "constraints are not supported", "kernel_constraint", "bias_constraint");
            RequireNull(layer, "low-rank adaptation is not supported", "lora_rank");
            RequireNull(layer, "quantization is not supported", "quantization_config");
            return new DenseSpec(layer.Name, units, useBias, activation, initializer);
        }

        private DropoutSpec Dropout(LayerRef layer)
        {
            RequireNull(layer, "only element-wise dropout is supported", "noise_shape");
            return new DropoutSpec(layer.Name, (float)Double(layer, "rate", null));
        }

        private BatchNormSpec BatchNorm(LayerRef layer, bool vector)
        {
            var axisField = layer.Config.TryGetProperty("axis", out var axisValue) ? axisValue : default;
            var axis = axisField.ValueKind switch
            {
                JsonValueKind.Undefined or JsonValueKind.Null => -1,
                JsonValueKind.Number when TryInt(axisField, out var a) => a,
                JsonValueKind.Array when axisField.GetArrayLength() == 1 && TryInt(axisField[0], out var a) => a,
                _ => throw Fail(layer, "axis", $"{Raw(axisField)} is not supported; only the channel axis (one axis) is"),
            };
            var rank = vector ? 2 : 4; // including the batch axis
            var channelAxis = vector || _format == DataFormat.ChannelsFirst ? 1 : 3;
            if ((axis < 0 ? axis + rank : axis) != channelAxis)
            {
                var expected = channelAxis == rank - 1 ? $"{channelAxis} or -1" : $"{channelAxis}";
                throw Fail(layer, "axis", $"{axis} is not the channel axis ({expected} here); only per-channel batch normalization is supported");
            }

            var center = Bool(layer, "center", true);
            var scale = Bool(layer, "scale", true);
            RequireConstantInitializer(layer, "beta_initializer", one: false, relevant: center);
            RequireConstantInitializer(layer, "gamma_initializer", one: true, relevant: scale);
            RequireConstantInitializer(layer, "moving_mean_initializer", one: false, relevant: true);
            RequireConstantInitializer(layer, "moving_variance_initializer", one: true, relevant: true);
            CheckRegularizers(layer, "beta_regularizer", "gamma_regularizer");
            RequireNull(layer, "constraints are not supported", "beta_constraint", "gamma_constraint");
            RequireNull(layer, "not supported", "virtual_batch_size", "adjustment");
            if (Bool(layer, "renorm", false))
            {
                throw Fail(layer, "renorm", "batch renormalization is not supported");
            }

            return new BatchNormSpec(layer.Name, (float)Double(layer, "momentum", 0.99), (float)Double(layer, "epsilon", 1e-3), center, scale);
        }

        private ActivationSpec Relu(LayerRef layer)
        {
            RequireNull(layer, "a capped ReLU is not supported", "max_value");
            if (Double(layer, "threshold", 0) != 0)
            {
                throw Fail(layer, "threshold", "a thresholded ReLU is not supported; only 0 is");
            }

            var slope = Slope(layer, "negative_slope", 0);
            return new ActivationSpec(
                layer.Name,
                slope == 0 ? Activation.Relu : new Activation(ActivationKind.LeakyRelu, (float)slope),
                "ReLU");
        }

        private ActivationSpec LeakyRelu(LayerRef layer)
        {
            // Keras 3 calls it negative_slope, Keras 2 alpha; the layer's default is 0.3 in both.
            var slope = layer.Config.TryGetProperty("negative_slope", out _) ? Slope(layer, "negative_slope", 0.3) : Slope(layer, "alpha", 0.3);
            return new ActivationSpec(layer.Name, new Activation(ActivationKind.LeakyRelu, (float)slope), "LeakyReLU");
        }

        // ---- fields ----

        private double Slope(LayerRef layer, string field, double fallback)
        {
            var slope = Double(layer, field, fallback);
            return slope is >= 0 and < 1e6 ? slope : throw Fail(layer, field, string.Create(CultureInfo.InvariantCulture, $"must be a non-negative number, got {slope}"));
        }

        private Activation ActivationOf(LayerRef layer, string field, bool isLast, bool required)
        {
            if (!layer.Config.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return required ? throw Fail(layer, field, "missing") : Activation.Linear;
            }

            // A name, or Keras 3's {"module": "keras.activations", "class_name": "function", "config": "relu", ...}.
            var name = value.ValueKind switch
            {
                JsonValueKind.String => value.GetString()!,
                JsonValueKind.Object when value.TryGetProperty("config", out var c) && c.ValueKind == JsonValueKind.String => c.GetString()!,
                JsonValueKind.Object when value.TryGetProperty("class_name", out var c) && c.ValueKind == JsonValueKind.String => c.GetString()!,
                _ => throw Fail(layer, field, $"expected an activation name, got {Raw(value)}"),
            };
            if (name == "softmax")
            {
                if (!isLast)
                {
                    throw Fail(layer, field, "softmax is supported only on the last layer (where it is read as linear logits)");
                }

                Note(layer, field, "softmax on the last layer is read as linear logits; training applies softmax cross-entropy to them");
                return Activation.Linear;
            }

            return Activation.TryParse(name) ?? throw Fail(layer, field, $"'{name}' is not supported; supported: {SupportedActivations}");
        }

        private Initializer KernelInitializer(LayerRef layer)
        {
            const string field = "kernel_initializer";
            if (!layer.Config.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return Initializer.GlorotUniform;
            }

            var (name, config) = InitializerName(layer, field, value);
            switch (Key(name))
            {
                case "glorotuniform":
                    return Initializer.GlorotUniform;
                case "glorotnormal":
                    return Initializer.GlorotNormal;
                case "heuniform":
                    return Initializer.HeUniform;
                case "henormal":
                    return Initializer.HeNormal;
                case "zeros" or "zero":
                    return Initializer.Zeros;
                case "ones" or "one":
                    return Initializer.Ones;
                case "lecununiform":
                    Note(layer, field, $"'{name}' has no exact equivalent; using glorot_uniform");
                    return Initializer.GlorotUniform;
                case "lecunnormal":
                    Note(layer, field, $"'{name}' has no exact equivalent; using glorot_normal");
                    return Initializer.GlorotNormal;
                case "variancescaling":
                    return VarianceScaling(layer, field, config);
                default:
                    throw Fail(layer, field, $"'{name}' is not supported; supported: {SupportedInitializers}");
            }
        }

        /// <summary>
        /// VarianceScaling(1, fan_avg) is Glorot and VarianceScaling(2, fan_in) is He, uniform or (truncated) normal.
        /// Another fan mode with scale 1 or 2, or one the file lost (tfjs-layers 1.x writes mode and distribution as
        /// null), is read as the Glorot or He initializer of that scale with a note; other scales are refused.
        /// </summary>
        private Initializer VarianceScaling(LayerRef layer, string field, JsonElement config)
        {
            var scale = 1.0;
            string? mode = "fan_in", distribution = "truncated_normal"; // Keras' defaults when a key is absent
            if (config.ValueKind == JsonValueKind.Object)
            {
                if (config.TryGetProperty("scale", out var s) && s.ValueKind != JsonValueKind.Null)
                {
                    scale = s.ValueKind == JsonValueKind.Number ? s.GetDouble() : throw Fail(layer, field, $"VarianceScaling scale: expected a number, got {Raw(s)}");
                }

                mode = config.TryGetProperty("mode", out var m) ? NullableString(layer, field, m) : mode;
                distribution = config.TryGetProperty("distribution", out var d) ? NullableString(layer, field, d) : distribution;
            }

            var description = string.Create(CultureInfo.InvariantCulture, $"VarianceScaling(scale={scale}, mode={mode ?? "null"}, distribution={distribution ?? "null"})");
            var modeKey = mode is null ? null : Key(mode);
            if (modeKey is not (null or "fanin" or "fanout" or "fanavg"))
            {
                throw Fail(layer, field, $"{description}: unknown mode");
            }

            var uniform = distribution is not null && Key(distribution) == "uniform";
            if (distribution is not null && !uniform && Key(distribution) is not ("normal" or "truncatednormal" or "untruncatednormal"))
            {
                throw Fail(layer, field, $"{description}: unknown distribution");
            }

            Initializer glorot = uniform ? Initializer.GlorotUniform : Initializer.GlorotNormal;
            Initializer he = uniform ? Initializer.HeUniform : Initializer.HeNormal;
            if (Math.Abs(scale - 1) < 1e-6)
            {
                if (modeKey != "fanavg")
                {
                    Note(layer, field, $"{description} has no exact equivalent; using {KerasName(glorot)}");
                }

                return glorot;
            }

            if (Math.Abs(scale - 2) < 1e-6)
            {
                if (modeKey != "fanin")
                {
                    Note(layer, field, $"{description} has no exact equivalent; using {KerasName(he)}");
                }

                return he;
            }

            throw Fail(layer, field, $"{description} is not supported; supported: {SupportedInitializers}");
        }

        private string? NullableString(LayerRef layer, string field, JsonElement value) => value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Null => null,
            _ => throw Fail(layer, field, $"expected a string or null, got {Raw(value)}"),
        };

        private void RequireConstantInitializer(LayerRef layer, string field, bool one, bool relevant)
        {
            if (!relevant || !layer.Config.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return;
            }

            var (name, config) = InitializerName(layer, field, value);
            var key = Key(name);
            var expected = one ? 1.0 : 0.0;
            var matches = key == (one ? "ones" : "zeros") || key == (one ? "one" : "zero")
                || (key == "constant" && config.ValueKind == JsonValueKind.Object && config.TryGetProperty("value", out var v)
                    && v.ValueKind == JsonValueKind.Number && v.GetDouble() == expected);
            if (!matches)
            {
                throw Fail(layer, field, $"{Raw(value)} is not supported; only {(one ? "ones" : "zeros")} is");
            }
        }

        private (string Name, JsonElement Config) InitializerName(LayerRef layer, string field, JsonElement value)
        {
            if (value.ValueKind == JsonValueKind.String)
            {
                return (value.GetString()!, default);
            }

            if (value.ValueKind == JsonValueKind.Object && value.TryGetProperty("class_name", out var c) && c.ValueKind == JsonValueKind.String)
            {
                return (c.GetString()!, value.TryGetProperty("config", out var config) ? config : default);
            }

            throw Fail(layer, field, $"expected an initializer name or object, got {Raw(value)}");
        }

        /// <summary>Null and all-zero L1/L2/L1L2 regularizers are no regularizer; others are refused, or dropped with a note when allowed.</summary>
        private void CheckRegularizers(LayerRef layer, params ReadOnlySpan<string> fields)
        {
            foreach (var field in fields)
            {
                if (!layer.Config.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null || IsZeroRegularizer(value))
                {
                    continue;
                }

                var description = DescribeRegularizer(value);
                if (!options.IgnoreRegularizers)
                {
                    throw Fail(layer, field, $"{description} is not supported (the engine has no weight penalties); remove it, or read with IgnoreRegularizers to drop it");
                }

                Note(layer, field, $"{description} is ignored (the engine has no weight penalties)");
            }
        }

        private static bool IsZeroRegularizer(JsonElement value) =>
            value.ValueKind == JsonValueKind.Object
            && value.TryGetProperty("class_name", out var c) && c.ValueKind == JsonValueKind.String
            && Key(c.GetString()!) is "l1l2" or "l1" or "l2"
            && (!value.TryGetProperty("config", out var config)
                || (config.ValueKind == JsonValueKind.Object
                    && config.EnumerateObject().All(p => p.Value.ValueKind == JsonValueKind.Number && p.Value.GetDouble() == 0)));

        private static string DescribeRegularizer(JsonElement value)
        {
            if (value.ValueKind != JsonValueKind.Object || !value.TryGetProperty("class_name", out var c) || c.ValueKind != JsonValueKind.String)
            {
                return Raw(value);
            }

            var arguments = value.TryGetProperty("config", out var config) && config.ValueKind == JsonValueKind.Object
                ? string.Join(", ", config.EnumerateObject()
                    .Where(p => p.Value.ValueKind == JsonValueKind.Number)
                    .Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Name}={p.Value.GetDouble():G6}")))
                : "";
            return $"{c.GetString()}({arguments})";
        }

        private void RequireNull(LayerRef layer, string why, params ReadOnlySpan<string> fields)
        {
            foreach (var field in fields)
            {
                if (layer.Config.TryGetProperty(field, out var value) && value.ValueKind != JsonValueKind.Null)
                {
                    throw Fail(layer, field, $"{Raw(value)}: {why}");
                }
            }
        }

        /// <summary>Absent, null, 1 or [1, 1].</summary>
        private void RequireOne(LayerRef layer, string field, string why)
        {
            if (!layer.Config.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return;
            }

            var isOne = value.ValueKind switch
            {
                JsonValueKind.Number => TryInt(value, out var v) && v == 1,
                JsonValueKind.Array => value.GetArrayLength() is 1 or 2 && value.EnumerateArray().All(e => TryInt(e, out var v) && v == 1),
                _ => false,
            };
            if (!isOne)
            {
                throw Fail(layer, field, $"{Raw(value)}: {why}; only 1 is");
            }
        }

        private void RequireImage(LayerRef layer, bool vector)
        {
            if (vector)
            {
                throw Fail(layer, "input", "expects an image, but its input is a vector (it comes after a Flatten or Dense)");
            }
        }

        private void RejectFrozen(LayerRef layer)
        {
            if (layer.Config.TryGetProperty("trainable", out var value) && value.ValueKind == JsonValueKind.False)
            {
                throw Fail(layer, "trainable", "false (a frozen layer) is not supported: training updates every layer");
            }
        }

        private Padding PaddingOf(LayerRef layer)
        {
            if (!layer.Config.TryGetProperty("padding", out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return Padding.Valid;
            }

            return value.ValueKind == JsonValueKind.String ? value.GetString()!.ToUpperInvariant() switch
            {
                "VALID" => Padding.Valid,
                "SAME" => Padding.Same,
                _ => throw Fail(layer, "padding", $"{Raw(value)} is not supported; expected 'valid' or 'same'"),
            } : throw Fail(layer, "padding", $"expected 'valid' or 'same', got {Raw(value)}");
        }

        private int Int(LayerRef layer, string field)
        {
            if (!layer.Config.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                throw Fail(layer, field, "missing");
            }

            return TryInt(value, out var result)
                ? result
                : throw Fail(layer, field, $"expected an integer, got {Raw(value)}");
        }

        private (int H, int W) Pair(LayerRef layer, string field, (int, int)? fallback)
        {
            if (!layer.Config.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return fallback ?? throw Fail(layer, field, "missing");
            }

            if (TryInt(value, out var single))
            {
                return (single, single);
            }

            if (value.ValueKind == JsonValueKind.Array && value.GetArrayLength() == 2
                && TryInt(value[0], out var h) && TryInt(value[1], out var w))
            {
                return (h, w);
            }

            throw Fail(layer, field, $"expected an integer or a pair of integers, got {Raw(value)}");
        }

        private double Double(LayerRef layer, string field, double? fallback)
        {
            if (!layer.Config.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return fallback ?? throw Fail(layer, field, "missing");
            }

            return value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw Fail(layer, field, $"expected a number, got {Raw(value)}");
        }

        private bool Bool(LayerRef layer, string field, bool fallback)
        {
            if (!layer.Config.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return fallback;
            }

            return value.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Fail(layer, field, $"expected true or false, got {Raw(value)}"),
            };
        }

        // ---- messages ----

        private void Note(LayerRef layer, string field, string text) => _notes.Add($"layer '{layer.Name}' ({layer.Class}), {field}: {text}");

        // Names come from the file and may hold line breaks; the error stays one line.
        private ModelException Fail(LayerRef layer, string field, string problem) => new($"{source}: layer '{layer.Name}' ({layer.Class}), {field}: {problem}".ReplaceLineEndings("\\n"));

        private ModelException Fail(string field, string problem) => new($"{source}: {field}: {problem}".ReplaceLineEndings("\\n"));

        private static string UnknownClass(string className) => className switch
        {
            "Convolution2D" => "'Convolution2D' is a Keras 1 layer, not supported; re-save the model with Keras 2 or later (where it is Conv2D)",
            "Sequential" or "Functional" or "Model" => $"a nested '{className}' model is not supported; flatten it into one Sequential model",
            _ => $"'{className}' is not supported; supported classes: {SupportedClasses}",
        };

        /// <summary>An integer JSON number (TryGetInt32 alone throws on other kinds).</summary>
        private static bool TryInt(JsonElement value, out int result)
        {
            result = 0;
            return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out result);
        }

        private static string Key(string name) => name.Replace("_", "", StringComparison.Ordinal).ToLowerInvariant();

        private static string KerasName(Initializer initializer) => initializer switch
        {
            Initializer.GlorotUniform => "glorot_uniform",
            Initializer.GlorotNormal => "glorot_normal",
            Initializer.HeUniform => "he_uniform",
            Initializer.HeNormal => "he_normal",
            Initializer.Zeros => "zeros",
            _ => "ones",
        };

        private static string Raw(JsonElement value)
        {
            if (value.ValueKind == JsonValueKind.Undefined)
            {
                return "nothing";
            }

            // On one line, as the file has it when it is on one; a value spread over lines still gives a one-line message.
            var text = string.Join(' ', value.GetRawText().Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            return text.Length <= 80 ? text : string.Concat(text.AsSpan(0, 77), "...");
        }
    }
}
