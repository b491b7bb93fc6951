using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;
using Xunit.Abstractions;

namespace ClusterConv.Onnx.Tests;

public sealed class OnnxExportTests(ITestOutputHelper output)
{
    private const float Tolerance = 1e-4f;

    [Theory]
    [InlineData(BuiltInModels.KerasCnnName)]
    [InlineData(BuiltInModels.TfCnnName)]
    [InlineData(BuiltInModels.LeNet5Name)]
    public void Every_built_in_model_loads_in_ONNX_Runtime_and_its_logits_match_the_engine_on_real_test_images(string name)
    {
        var difference = CompareOnRealImages(TestData.Initialized(BuiltInModels.Get(name)), count: 64);
        output.WriteLine($"{name}: max |onnx - engine| = {difference:E2}");
        Assert.True(difference <= Tolerance, $"{name}: logits differ by {difference}");
    }

    [Theory]
    [InlineData(BuiltInModels.KerasCnnName)]
    [InlineData(BuiltInModels.TfCnnName)]
    [InlineData(BuiltInModels.LeNet5Name)]
    public void Every_built_in_models_accuracy_and_predictions_on_1000_test_images_equal_the_engines(string name)
    {
        var checkpoint = TestData.Initialized(BuiltInModels.Get(name));
        using var directory = new TempDirectory();
        var path = directory.File("model.onnx");
        File.WriteAllBytes(path, OnnxExporter.Export(checkpoint));
        using var engine = new EngineClassifier(checkpoint, threads: 2);
        using var onnx = new OnnxClassifier(path, threads: 2);
        var test = TestData.Test.Slice(0, 1000);
        var a = Cli.Inference.Evaluation.Run(engine, test);
        var b = Cli.Inference.Evaluation.Run(onnx, test);
        output.WriteLine($"{name}: engine accuracy {a.Accuracy:P1} loss {a.Loss:F6}, ONNX Runtime accuracy {b.Accuracy:P1} loss {b.Loss:F6}");
        Assert.Equal(a.Accuracy, b.Accuracy);
        Assert.Equal(a.Confusion, b.Confusion);
    }

    [Theory]
    [InlineData(13)]
    [InlineData(17)]
    [InlineData(20)]
    public void A_model_with_every_supported_layer_and_activation_matches_the_engine(int opset)
    {
        var difference = CompareOnRealImages(TestData.Initialized(EveryLayer()), count: 32, opset);
        output.WriteLine($"every layer, opset {opset}: max |onnx - engine| = {difference:E2}");
        Assert.True(difference <= Tolerance, $"logits differ by {difference}");
    }

    [Fact]
    public void Training_normalization_is_part_of_the_exported_graph()
    {
        var checkpoint = TestData.Initialized(BuiltInModels.LeNet5, normalization: new InputNormalization("standardize", 0.2860f, 0.3530f));
        var difference = CompareOnRealImages(checkpoint, count: 32);
        Assert.True(difference <= Tolerance, $"logits differ by {difference}");
        Assert.Contains(OnnxExporter.Build(checkpoint).Graph.Node, n => n.OpType == "Sub");
    }

    [Fact]
    public void Layers_after_a_dense_layer_and_a_dense_layer_without_flatten_are_reshaped_as_the_engine_holds_them()
    {
        var spec = new ModelSpec("shapes", new SampleShape(1, 28, 28),
        [
            new Conv2DSpec("conv", 4, 7, 7, 3, 3, Activation: Activation.Relu), // (4, 8, 8)
            new Pool2DSpec("pool", PoolKind.Max, 8, 8, 8, 8),                     // (4, 1, 1): Dense may follow directly
            new DenseSpec("dense", 6, Activation: Activation.Relu),              // (6)
            new Conv2DSpec("conv_on_vector", 5, 1, 1),                            // (5, 1, 1)
            new BatchNormSpec("norm"),
            new Pool2DSpec("pool_on_vector", PoolKind.Average, 1, 1, 1, 1),
            new DenseSpec("logits", 10),
        ]);
        var difference = CompareOnRealImages(TestData.Initialized(spec), count: 16);
        Assert.True(difference <= Tolerance, $"logits differ by {difference}");
    }

    [Fact]
    public void The_graph_has_input_named_input_with_a_dynamic_batch_output_logits_and_no_dropout()
    {
        var graph = OnnxExporter.Build(TestData.Initialized(BuiltInModels.TfCnn)).Graph;
        var input = Assert.Single(graph.Input);
        Assert.Equal("input", input.Name);
        var dims = input.Type.TensorType.Shape.Dim;
        Assert.Equal("batch", dims[0].DimParam);
        Assert.Equal([1L, 28, 28], dims.Skip(1).Select(d => d.DimValue));
        Assert.Equal("logits", Assert.Single(graph.Output).Name);
        Assert.DoesNotContain(graph.Node, n => n.OpType == "Dropout");
        Assert.Equal(["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm"], graph.Node.Select(n => n.OpType));
    }

    [Theory]
    [InlineData(12)]
    [InlineData(21)]
    public void An_opset_outside_13_to_20_is_refused_naming_the_supported_range(int opset)
    {
        var e = Assert.Throws<OnnxExportException>(() => OnnxExporter.Export(TestData.Initialized(BuiltInModels.LeNet5), opset));
        Assert.Contains($"opset {opset}", e.Message, StringComparison.Ordinal);
        Assert.Contains("13 to 20", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_layer_type_without_an_ONNX_form_is_refused_naming_the_layer()
    {
        var spec = BuiltInModels.LeNet5 with { Layers = [.. BuiltInModels.LeNet5.Layers.Take(4), new UnknownSpec("mystery"), .. BuiltInModels.LeNet5.Layers.Skip(4)] };
        var checkpoint = new ModelCheckpoint(spec, new float[new Model(BuiltInModels.LeNet5).ParameterCount], 0, 0, InputNormalization.Scale);
        var e = Assert.Throws<OnnxExportException>(() => OnnxExporter.Export(checkpoint));
        Assert.Contains("'mystery' (Mystery)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_activation_without_an_ONNX_form_is_refused_naming_the_layer()
    {
        var spec = BuiltInModels.LeNet5 with { Layers = [new Conv2DSpec("odd", 6, 5, 5, Activation: new Activation((ActivationKind)42)), .. BuiltInModels.LeNet5.Layers.Skip(1)] };
        var checkpoint = new ModelCheckpoint(spec, new float[new Model(spec).ParameterCount], 0, 0, InputNormalization.Scale);
        var e = Assert.Throws<OnnxExportException>(() => OnnxExporter.Export(checkpoint));
        Assert.Contains("'odd' (Conv2D)", e.Message, StringComparison.Ordinal);
        Assert.Contains("activation 42", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_normalization_with_a_zero_std_is_refused()
    {
        var checkpoint = TestData.Initialized(BuiltInModels.LeNet5, normalization: new InputNormalization("standardize", 0.5f, 0f));
        var e = Assert.Throws<OnnxExportException>(() => OnnxExporter.Export(checkpoint));
        Assert.Contains("std must be positive", e.Message, StringComparison.Ordinal);
    }

    /// <summary>Every layer type and activation, fused and stand-alone, with the awkward geometries.</summary>
    internal static ModelSpec EveryLayer() => new("every-layer", new SampleShape(1, 28, 28),
    [
        new Conv2DSpec("conv_same_stride2_rect_nobias", 8, 3, 5, 2, 1, Padding.Same, UseBias: false, Activation: Activation.Relu),
        new BatchNormSpec("bn_full"),
        new ActivationSpec("leaky", new Activation(ActivationKind.LeakyRelu, 0.1f), "LeakyReLU"),
        new Pool2DSpec("max_same", PoolKind.Max, 3, 3, 2, 2, Padding.Same),
        new Conv2DSpec("conv_elu", 6, 3, 3, Padding: Padding.Same, Activation: new Activation(ActivationKind.Elu, 0.7f)),
        new BatchNormSpec("bn_no_center", Center: false),
        new Pool2DSpec("avg_same", PoolKind.Average, 2, 3, 2, 2, Padding.Same),
        new ActivationSpec("gelu", new Activation(ActivationKind.Gelu)),
        new Conv2DSpec("conv_gelu_stride3", 6, 2, 2, 3, 3, Padding.Same, Activation: new Activation(ActivationKind.Gelu)),
        new BatchNormSpec("bn_no_scale", Scale: false),
        new Conv2DSpec("conv_leaky", 5, 1, 1, Activation: new Activation(ActivationKind.LeakyRelu, 0.3f)),
        new Conv2DSpec("conv_tanh", 5, 1, 1, Activation: new Activation(ActivationKind.Tanh)),
        new Conv2DSpec("conv_sigmoid", 5, 1, 1, Activation: new Activation(ActivationKind.Sigmoid)),
        new ActivationSpec("elu", new Activation(ActivationKind.Elu, 1.3f)),
        new ActivationSpec("tanh", new Activation(ActivationKind.Tanh)),
        new ActivationSpec("relu", Activation.Relu, "ReLU"),
        new ActivationSpec("linear", Activation.Linear),
        new Pool2DSpec("avg_valid", PoolKind.Average, 2, 2, 1, 1),
        new FlattenSpec("flatten"),
        new DenseSpec("dense_leaky", 24, Activation: new Activation(ActivationKind.LeakyRelu, 0.2f)),
        new DropoutSpec("dropout", 0.3f),
        new BatchNormSpec("bn_vector_plain", Center: false, Scale: false),
        new DenseSpec("dense_elu_nobias", 20, UseBias: false, Activation: new Activation(ActivationKind.Elu, 1f)),
        new DenseSpec("dense_gelu", 18, Activation: new Activation(ActivationKind.Gelu)),
        new DenseSpec("dense_tanh", 16, Activation: new Activation(ActivationKind.Tanh)),
        new DenseSpec("dense_sigmoid", 14, Activation: new Activation(ActivationKind.Sigmoid)),
        new DenseSpec("dense_relu", 12, Activation: Activation.Relu),
        new ActivationSpec("sigmoid", new Activation(ActivationKind.Sigmoid)),
        new DenseSpec("logits", 10),
    ]);

    private static float CompareOnRealImages(ModelCheckpoint checkpoint, int count, int opset = OnnxExporter.DefaultOpset)
    {
        using var directory = new TempDirectory();
        var path = directory.File("model.onnx");
        File.WriteAllBytes(path, OnnxExporter.Export(checkpoint, opset));
        using var engine = new EngineClassifier(checkpoint, threads: 2);
        using var onnx = new OnnxClassifier(path, threads: 2);
        Assert.Equal(engine.InputShape, onnx.InputShape);
        Assert.Equal(engine.Classes, onnx.Classes);
        var pixels = TestData.Pixels(100, count);
        var expected = new float[count * engine.Classes];
        var actual = new float[count * engine.Classes];
        engine.Logits(pixels, count, expected);
        onnx.Logits(pixels, count, actual);
        var spread = expected.Max() - expected.Min();
        Assert.True(spread > 0.05f, $"the engine's logits barely vary ({spread}): the comparison would prove little");
        return TestData.MaxAbsDifference(expected, actual);
    }

    private sealed record UnknownSpec(string Name) : LayerSpec(Name)
    {
        public override string TypeName => "Mystery";

        public override SampleShape OutputShape(SampleShape input) => input;
    }
}
