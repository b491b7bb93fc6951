namespace ClusterConv.Engine.Tests.Specs;

/// <summary>
/// Small model files written for these tests, one per form Keras has written. Each holds the same tiny model:
/// input 8×8×1 → Conv2D(4, 3×3, relu) (6, 6, 4), 40 params → MaxPooling2D(2) (3, 3, 4) → Flatten (36)
/// → Dense(3, softmax) (3), 111 params. Total 151.
/// </summary>
internal static class KerasFixtures
{
    public const int TinyParameters = 151;

    /// <summary>Keras 2.0–2.2.2 model.to_json(): config is the layer list; the input shape sits on the first layer.</summary>
    public const string Keras22List = """
        {"class_name": "Sequential", "config": [
          {"class_name": "Conv2D", "config": {"name": "conv2d_1", "trainable": true, "batch_input_shape": [null, 8, 8, 1], "dtype": "float32",
            "filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
            "activation": "relu", "use_bias": true,
            "kernel_initializer": {"class_name": "VarianceScaling", "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": null}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null, "bias_regularizer": null,
            "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}},
          {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d_1", "trainable": true, "pool_size": [2, 2], "padding": "valid", "strides": [2, 2], "data_format": "channels_last"}},
          {"class_name": "Flatten", "config": {"name": "flatten_1", "trainable": true}},
          {"class_name": "Dense", "config": {"name": "dense_1", "trainable": true, "units": 3, "activation": "softmax", "use_bias": true,
            "kernel_initializer": {"class_name": "VarianceScaling", "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": null}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null, "bias_regularizer": null,
            "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}}
        ], "keras_version": "2.2.0", "backend": "tensorflow"}
        """;

    /// <summary>tf.keras 2.3+ layers (dict config); the first has no input shape, so a model needs an InputLayer or one added.</summary>
    public const string Conv = """
        {"class_name": "Conv2D", "config": {"name": "conv2d", "trainable": true, "dtype": "float32", "filters": 4, "kernel_size": [3, 3],
          "strides": [1, 1], "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "relu",
          "use_bias": true, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": null}},
          "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null, "bias_regularizer": null,
          "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}}
        """;

    public const string Pool = """
        {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d", "trainable": true, "dtype": "float32", "pool_size": [2, 2],
          "padding": "valid", "strides": [2, 2], "data_format": "channels_last"}}
        """;

    public const string Flatten = """{"class_name": "Flatten", "config": {"name": "flatten", "trainable": true, "dtype": "float32", "data_format": "channels_last"}}""";

    public const string Dense = """
        {"class_name": "Dense", "config": {"name": "dense", "trainable": true, "dtype": "float32", "units": 3, "activation": "softmax",
          "use_bias": true, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": null}},
          "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null, "bias_regularizer": null,
          "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}}
        """;

    public const string InputLayer = """
        {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 8, 8, 1], "dtype": "float32", "sparse": false, "ragged": false, "name": "conv2d_input"}}
        """;

    /// <summary>Keras 2.2.3+ / tf.keras: config {name, layers} starting with an InputLayer carrying batch_input_shape.</summary>
    public static readonly string Keras2WithInputLayer = Keras2(InputLayer, Conv, Pool, Flatten, Dense);

    /// <summary>Keras 2.2.3–2.3: no InputLayer; batch_input_shape on the first layer.</summary>
    public static readonly string Keras2WithoutInputLayer = Keras2(
        Conv.Replace("\"dtype\": \"float32\",", "\"batch_input_shape\": [null, 8, 8, 1], \"dtype\": \"float32\",", StringComparison.Ordinal),
        Pool,
        Flatten,
        Dense);

    /// <summary>Keras 3: module/registered_name wrappers, dtype policies as objects, InputLayer batch_shape.</summary>
    public const string Keras3 = """
        {"module": "keras", "class_name": "Sequential", "config": {"name": "sequential", "trainable": true,
          "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
          "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [null, 8, 8, 1], "dtype": "float32", "sparse": false, "name": "input_layer"}, "registered_name": null},
            {"module": "keras.layers", "class_name": "Conv2D", "config": {"name": "conv2d", "trainable": true,
              "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
              "filters": 4, "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
              "groups": 1, "activation": "relu", "use_bias": true,
              "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null}, "registered_name": null},
              "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
              "kernel_regularizer": null, "bias_regularizer": null, "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null},
              "registered_name": null, "build_config": {"input_shape": [null, 8, 8, 1]}},
            {"module": "keras.layers", "class_name": "MaxPooling2D", "config": {"name": "max_pooling2d", "trainable": true,
              "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
              "pool_size": [2, 2], "padding": "valid", "strides": [2, 2], "data_format": "channels_last"}, "registered_name": null},
            {"module": "keras.layers", "class_name": "Flatten", "config": {"name": "flatten", "trainable": true,
              "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
              "data_format": "channels_last"}, "registered_name": null, "build_config": {"input_shape": [null, 3, 3, 4]}},
            {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "trainable": true,
              "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
              "units": 3, "activation": "softmax", "use_bias": true,
              "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null}, "registered_name": null},
              "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
              "kernel_regularizer": null, "bias_regularizer": null, "kernel_constraint": null, "bias_constraint": null, "quantization_config": null},
              "registered_name": null, "build_config": {"input_shape": [null, 36]}}
          ], "build_input_shape": [null, 8, 8, 1]},
         "registered_name": null, "build_config": {"input_shape": [null, 8, 8, 1]}, "compile_config": {}}
        """;

    /// <summary>TensorFlow.js model.json written in the browser: modelTopology is the Sequential itself.</summary>
    public static readonly string TfjsDirect =
        $$"""{"modelTopology": {{Keras22List}}, "format": "layers-model", "generatedBy": "TensorFlow.js tfjs-layers v1.0.0", "convertedBy": null, "weightsManifest": []}""";

    /// <summary>TensorFlow.js model.json from the converter: modelTopology.model_config holds the Keras JSON.</summary>
    public static readonly string TfjsModelConfig =
        $$"""{"format": "layers-model", "modelTopology": {"keras_version": "2.10.0", "backend": "tensorflow", "model_config": {{Keras2WithInputLayer}}}, "weightsManifest": []}""";

    /// <summary>channels_first: input [batch, C, H, W] and every spatial layer channels_first.</summary>
    public static readonly string ChannelsFirst = Keras2WithInputLayer
        .Replace("[null, 8, 8, 1]", "[null, 1, 8, 8]", StringComparison.Ordinal)
        .Replace("\"channels_last\"", "\"channels_first\"", StringComparison.Ordinal);

    public static string Keras2(params string[] layers) =>
        $$"""{"class_name": "Sequential", "config": {"name": "sequential", "layers": [{{string.Join(", ", layers)}}]}, "keras_version": "2.10.0", "backend": "tensorflow"}""";

    /// <summary>Replaces text that must occur in the fixture (so a test cannot silently test the unchanged file).</summary>
    public static string With(this string json, string from, string to)
    {
        Assert.Contains(from, json, StringComparison.Ordinal);
        return json.Replace(from, to, StringComparison.Ordinal);
    }
}
