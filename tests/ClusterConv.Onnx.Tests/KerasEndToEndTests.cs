using ClusterConv.Cli.Commands;
using ClusterConv.Engine.Checkpoints;
using Xunit.Abstractions;

namespace ClusterConv.Onnx.Tests;

public sealed class KerasEndToEndTests(ITestOutputHelper output)
{
    /// <summary>A tf.keras 2 model.to_json() written for this test: convolution with batch normalization, both poolings with "same"
    /// padding, dropout, leaky_relu and gelu, and softmax on the last layer (read as logits).</summary>
    private const string KerasJson = """
        {"class_name": "Sequential", "config": {"name": "small_fashion", "layers": [
          {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 28, 28, 1], "dtype": "float32", "sparse": false, "ragged": false, "name": "image"}},
          {"class_name": "Conv2D", "config": {"name": "conv2d", "trainable": true, "dtype": "float32", "filters": 8, "kernel_size": [3, 3],
            "strides": [1, 1], "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "linear",
            "use_bias": false, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": null}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null, "bias_regularizer": null,
            "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}},
          {"class_name": "BatchNormalization", "config": {"name": "batch_normalization", "trainable": true, "dtype": "float32", "axis": [3],
            "momentum": 0.9, "epsilon": 0.001, "center": true, "scale": false,
            "beta_initializer": {"class_name": "Zeros", "config": {}}, "gamma_initializer": {"class_name": "Ones", "config": {}},
            "moving_mean_initializer": {"class_name": "Zeros", "config": {}}, "moving_variance_initializer": {"class_name": "Ones", "config": {}},
            "beta_regularizer": null, "gamma_regularizer": null, "beta_constraint": null, "gamma_constraint": null}},
          {"class_name": "LeakyReLU", "config": {"name": "leaky_re_lu", "trainable": true, "dtype": "float32", "alpha": 0.1}},
          {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d", "trainable": true, "dtype": "float32", "pool_size": [3, 3],
            "padding": "same", "strides": [2, 2], "data_format": "channels_last"}},
          {"class_name": "Conv2D", "config": {"name": "conv2d_1", "trainable": true, "dtype": "float32", "filters": 16, "kernel_size": [3, 3],
            "strides": [2, 2], "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "gelu",
            "use_bias": true, "kernel_initializer": {"class_name": "HeNormal", "config": {"seed": null}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null, "bias_regularizer": null,
            "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}},
          {"class_name": "AveragePooling2D", "config": {"name": "average_pooling2d", "trainable": true, "dtype": "float32", "pool_size": [2, 2],
            "padding": "same", "strides": [2, 2], "data_format": "channels_last"}},
          {"class_name": "Dropout", "config": {"name": "dropout", "trainable": true, "dtype": "float32", "rate": 0.25, "noise_shape": null, "seed": null}},
          {"class_name": "Flatten", "config": {"name": "flatten", "trainable": true, "dtype": "float32", "data_format": "channels_last"}},
          {"class_name": "Dense", "config": {"name": "dense", "trainable": true, "dtype": "float32", "units": 32, "activation": "elu",
            "use_bias": true, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": null}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null, "bias_regularizer": null,
            "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}},
          {"class_name": "Dense", "config": {"name": "dense_1", "trainable": true, "dtype": "float32", "units": 10, "activation": "softmax",
            "use_bias": true, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": null}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null, "bias_regularizer": null,
            "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}}
        ]}, "keras_version": "2.9.0", "backend": "tensorflow"}
        """;

    [Fact]
    public void A_Keras_JSON_model_file_is_trained_exported_and_evaluated_end_to_end()
    {
        using var directory = new TempDirectory();
        var modelFile = directory.File("small_fashion.json");
        File.WriteAllText(modelFile, KerasJson);
        var runDirectory = directory.File("run");
        var train = CliRunner.Run(TrainCommand.Create(), "--model", modelFile, "--data", "fashion-mnist", "--max-steps", "60", "--test-limit", "500", "--threads", "2", "--out", runDirectory);
        Assert.True(train.ExitCode == 0, train.Error);

        var onnx = directory.File("small_fashion.onnx");
        var export = CliRunner.Run(ExportCommand.Create(), runDirectory, "--onnx", onnx, "--verify");
        Assert.True(export.ExitCode == 0, export.Error);
        output.WriteLine(export.Out);

        var graph = OnnxExporter.Build(ModelCheckpoint.LoadFile(Path.Combine(runDirectory, "model.ckpt"))).Graph;
        Assert.Contains(graph.Node, n => n.OpType == "BatchNormalization");
        Assert.Contains(graph.Node, n => n.OpType == "Erf");
        Assert.DoesNotContain(graph.Node, n => n.OpType is "Dropout" or "Softmax");

        var results = new[] { Path.Combine(runDirectory, "model.ckpt"), onnx }.Select(model =>
        {
            var result = CliRunner.Run(EvaluateCommand.Create(), "--model", model, "--data", "fashion-mnist", "--limit", "2000", "--json", "--threads", "2");
            Assert.True(result.ExitCode == 0, result.Error);
            return result.Json;
        }).ToArray();
        output.WriteLine($"checkpoint accuracy {results[0]["accuracy"]}, ONNX accuracy {results[1]["accuracy"]}");
        Assert.True(results[0]["accuracy"]!.GetValue<double>() > 0.5);
        Assert.Equal(results[0]["accuracy"]!.GetValue<double>(), results[1]["accuracy"]!.GetValue<double>());
        Assert.Equal(results[0]["confusion_matrix"]!.ToJsonString(), results[1]["confusion_matrix"]!.ToJsonString());
    }
}
