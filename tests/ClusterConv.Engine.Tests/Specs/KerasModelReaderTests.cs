using Activation = ClusterConv.Engine.Layers.Activation;
using ActivationKind = ClusterConv.Engine.Layers.ActivationKind;
using ModelException = ClusterConv.Engine.Layers.ModelException;
using ClusterConv.Engine.Specs;
using static ClusterConv.Engine.Tests.Specs.KerasFixtures;

namespace ClusterConv.Engine.Tests.Specs;

public class KerasModelReaderTests
{
    private const string Source = "fixture.json";
    private const string GlorotUniform = "{\"class_name\": \"GlorotUniform\", \"config\": {\"seed\": null}}";

    // ---- accepted forms ----

    [Fact]
    public void Reads_the_Keras_2_2_list_form_with_the_input_shape_on_the_first_layer()
    {
        var model = KerasModelReader.Read(Keras22List, Source);

        AssertTinyModel(model, "conv2d_1", "dense_1");
        Assert.Equal(Initializer.GlorotUniform, ((Conv2DSpec)model.Layers[0]).KernelInitializer); // VarianceScaling(1, fan_avg, uniform)
    }

    [Fact]
    public void Reads_the_later_form_with_an_InputLayer_carrying_batch_input_shape()
    {
        var model = KerasModelReader.Read(Keras2WithInputLayer, Source);

        AssertTinyModel(model, "conv2d", "dense");
        Assert.Equal("sequential", model.Name);
    }

    [Fact]
    public void Reads_the_Keras_3_form_with_batch_shape_and_module_wrappers()
    {
        AssertTinyModel(KerasModelReader.Read(Keras3, Source), "conv2d", "dense");
    }

    [Fact]
    public void Reads_the_later_form_without_an_InputLayer_from_the_first_layers_batch_input_shape()
    {
        AssertTinyModel(KerasModelReader.Read(Keras2WithoutInputLayer, Source), "conv2d", "dense");
    }

    [Fact]
    public void Reads_a_TensorFlow_js_model_json_whose_modelTopology_is_the_model()
    {
        AssertTinyModel(KerasModelReader.Read(TfjsDirect, Source), "conv2d_1", "dense_1");
    }

    [Fact]
    public void Reads_a_TensorFlow_js_model_json_whose_modelTopology_holds_model_config()
    {
        AssertTinyModel(KerasModelReader.Read(TfjsModelConfig, Source), "conv2d", "dense");
    }

    [Fact]
    public void Reads_a_channels_first_input_as_channels_height_width()
    {
        var model = KerasModelReader.Read(ChannelsFirst, Source);

        Assert.Equal(DataFormat.ChannelsFirst, model.DataFormat);
        Assert.Equal(new SampleShape(1, 8, 8), model.Input);
        Assert.Equal(TinyParameters, model.ParameterCount());
    }

    [Fact]
    public void Names_the_model_after_the_file_when_the_list_form_has_no_name()
    {
        Assert.Equal("tiny", KerasModelReader.Read(Keras22List, "models/tiny.json").Name);
    }

    // ---- fields ----

    [Fact]
    public void Reads_softmax_on_the_last_layer_as_linear_logits_and_says_so()
    {
        var import = KerasModelReader.Import(Keras2WithInputLayer, Source);

        Assert.Equal(Activation.Linear, ((DenseSpec)import.Model.Layers[^1]).Activation);
        var note = Assert.Single(import.Notes);
        Assert.Contains("layer 'dense' (Dense), activation: softmax", note, StringComparison.Ordinal);
    }

    [Fact]
    public void Reads_strides_and_same_padding_and_he_initializer_of_a_convolution()
    {
        var conv = Conv
            .With("\"strides\": [1, 1], \"padding\": \"valid\"", "\"strides\": [2, 2], \"padding\": \"same\"")
            .With(GlorotUniform, "\"he_normal\"");

        var spec = (Conv2DSpec)KerasModelReader.Read(Keras2(InputLayer, conv, Pool, Flatten, Dense), Source).Layers[0];

        Assert.Equal((2, 2, Padding.Same, Initializer.HeNormal), (spec.StrideH, spec.StrideW, spec.Padding, spec.KernelInitializer));
    }

    [Fact]
    public void Reads_pooling_strides_of_null_as_the_pool_size()
    {
        var pool = Pool.With("\"pool_size\": [2, 2]", "\"pool_size\": [3, 3]").With("\"strides\": [2, 2]", "\"strides\": null");

        var spec = (Pool2DSpec)KerasModelReader.Read(Keras2(InputLayer, Conv, pool, Flatten, Dense), Source).Layers[1];

        Assert.Equal((3, 3), (spec.StrideH, spec.StrideW));
    }

    [Fact]
    public void Reads_AveragePooling2D_as_average_pooling()
    {
        var json = Keras2WithInputLayer.With("\"MaxPooling2D\"", "\"AveragePooling2D\"");

        Assert.Equal(PoolKind.Average, ((Pool2DSpec)KerasModelReader.Read(json, Source).Layers[1]).Kind);
    }

    [Theory]
    [InlineData("\"alpha\": 0.1", 0.1f)] // Keras 2
    [InlineData("\"negative_slope\": 0.1", 0.1f)] // Keras 3
    [InlineData("\"trainable\": true", 0.3f)] // neither: the LeakyReLU layer's default
    public void Reads_the_LeakyReLU_slope_from_alpha_or_negative_slope_with_default_0_3(string field, float slope)
    {
        var leaky = $$$"""{"class_name": "LeakyReLU", "config": {"name": "leaky_re_lu", {{{field}}}}}""";

        var layer = (ActivationSpec)KerasModelReader.Read(Keras2(InputLayer, Conv, leaky, Pool, Flatten, Dense), Source).Layers[1];

        Assert.Equal(new Activation(ActivationKind.LeakyRelu, slope), layer.Activation);
        Assert.Equal("LeakyReLU", layer.TypeName);
    }

    [Fact]
    public void Reads_Activation_and_ReLU_layers_keeping_their_Keras_class()
    {
        var activation = """{"class_name": "Activation", "config": {"name": "activation", "trainable": true, "activation": "tanh"}}""";
        var relu = """{"class_name": "ReLU", "config": {"name": "re_lu", "max_value": null, "negative_slope": 0.0, "threshold": 0.0}}""";

        var layers = KerasModelReader.Read(Keras2(InputLayer, Conv, activation, relu, Pool, Flatten, Dense), Source).Layers;

        Assert.Equal(("Activation", ActivationKind.Tanh), (layers[1].TypeName, ((ActivationSpec)layers[1]).Activation.Kind));
        Assert.Equal(("ReLU", ActivationKind.Relu), (layers[2].TypeName, ((ActivationSpec)layers[2]).Activation.Kind));
    }

    [Fact]
    public void Reads_BatchNormalization_on_the_channel_axis_of_an_image_and_after_Flatten()
    {
        var imageNorm = """{"class_name": "BatchNormalization", "config": {"name": "batch_normalization", "axis": [3], "momentum": 0.9, "epsilon": 0.001, "center": true, "scale": false}}""";
        var vectorNorm = """{"class_name": "BatchNormalization", "config": {"name": "batch_normalization_1", "axis": 1}}""";

        var model = KerasModelReader.Read(Keras2(InputLayer, Conv, imageNorm, Pool, Flatten, vectorNorm, Dense), Source);

        var norm = (BatchNormSpec)model.Layers[1];
        Assert.Equal((0.9f, false), (norm.Momentum, norm.Scale));
        Assert.IsType<BatchNormSpec>(model.Layers[4]);
        Assert.Equal(TinyParameters + (4 * 3) + (36 * 4), model.ParameterCount()); // beta + 2 moving (image, 4 channels); 4 per feature (36)
    }

    [Fact]
    public void Treats_an_all_zero_L1L2_regularizer_as_none()
    {
        var json = Keras2WithInputLayer.With("\"kernel_regularizer\": null", "\"kernel_regularizer\": {\"class_name\": \"L1L2\", \"config\": {\"l1\": 0.0, \"l2\": 0.0}}");

        Assert.Equal(TinyParameters, KerasModelReader.Read(json, Source).ParameterCount());
    }

    [Fact]
    public void Drops_a_regularizer_with_a_note_when_asked_to_ignore_regularizers()
    {
        var json = Keras2WithInputLayer.With("\"kernel_regularizer\": null", "\"kernel_regularizer\": {\"class_name\": \"L2\", \"config\": {\"l2\": 0.01}}");

        var import = KerasModelReader.Import(json, Source, new KerasReadOptions { IgnoreRegularizers = true });

        Assert.Contains(import.Notes, n => n.Contains("layer 'conv2d' (Conv2D), kernel_regularizer: L2(l2=0.01) is ignored", StringComparison.Ordinal));
    }

    [Fact]
    public void Reads_a_VarianceScaling_initializer_without_mode_as_the_nearest_with_a_note()
    {
        // tfjs-layers 1.x writes VarianceScaling's mode and distribution as null.
        var conv = Conv.With(GlorotUniform, "{\"class_name\": \"VarianceScaling\", \"config\": {\"scale\": 1, \"mode\": null, \"distribution\": null, \"seed\": null}}");

        var import = KerasModelReader.Import(Keras2(InputLayer, conv, Pool, Flatten, Dense), Source);

        Assert.Equal(Initializer.GlorotNormal, ((Conv2DSpec)import.Model.Layers[0]).KernelInitializer);
        Assert.Contains(import.Notes, n => n.Contains("layer 'conv2d' (Conv2D), kernel_initializer: VarianceScaling(scale=1, mode=null", StringComparison.Ordinal));
    }

    // ---- refusals: one ModelException naming the file, the layer and the field ----

    [Fact]
    public void Refuses_a_dilation_rate_other_than_1()
    {
        AssertRefused(Keras2WithInputLayer.With("\"dilation_rate\": [1, 1]", "\"dilation_rate\": [2, 2]"), "layer 'conv2d' (Conv2D), dilation_rate:");
    }

    [Fact]
    public void Refuses_groups_other_than_1()
    {
        AssertRefused(Keras2WithInputLayer.With("\"groups\": 1", "\"groups\": 2"), "layer 'conv2d' (Conv2D), groups:");
    }

    [Theory]
    [InlineData("Conv2DTranspose")]
    [InlineData("Reshape")]
    [InlineData("SeparableConv2D")]
    public void Refuses_a_layer_class_outside_the_supported_set(string className)
    {
        var message = AssertRefused(Keras2WithInputLayer.With("\"Conv2D\"", $"\"{className}\""), $"layer 'conv2d' ({className}), class_name: '{className}' is not supported");

        Assert.Contains("supported classes: InputLayer, Conv2D", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_the_Keras_1_Convolution2D_class_pointing_to_Conv2D()
    {
        var message = AssertRefused(Keras22List.With("\"Conv2D\"", "\"Convolution2D\""), "layer 'conv2d_1' (Convolution2D), class_name:");

        Assert.Contains("Keras 1", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_an_unknown_activation()
    {
        AssertRefused(Keras2WithInputLayer.With("\"activation\": \"relu\"", "\"activation\": \"swish\""), "layer 'conv2d' (Conv2D), activation: 'swish' is not supported");
    }

    [Fact]
    public void Refuses_softmax_on_a_hidden_layer()
    {
        AssertRefused(Keras2WithInputLayer.With("\"activation\": \"relu\"", "\"activation\": \"softmax\""), "layer 'conv2d' (Conv2D), activation: softmax is supported only on the last layer");
    }

    [Fact]
    public void Refuses_a_functional_model()
    {
        AssertRefused(Keras3.With("\"class_name\": \"Sequential\"", "\"class_name\": \"Functional\""), "class_name: 'Functional' is a functional model");
    }

    [Fact]
    public void Refuses_a_TensorFlow_js_functional_Model()
    {
        AssertRefused(TfjsDirect.With("\"class_name\": \"Sequential\"", "\"class_name\": \"Model\""), "modelTopology.class_name: 'Model' is a functional model");
    }

    [Fact]
    public void Refuses_an_input_that_is_not_an_image()
    {
        AssertRefused(Keras2WithInputLayer.With("[null, 8, 8, 1]", "[null, 64]"), "layer 'conv2d_input' (InputLayer), batch_input_shape: [null, 64] is not an image input");
    }

    [Fact]
    public void Refuses_an_input_of_variable_size()
    {
        AssertRefused(Keras3.With("\"batch_shape\": [null, 8, 8, 1]", "\"batch_shape\": [null, null, null, 1]"), "layer 'input_layer' (InputLayer), batch_shape:");
    }

    [Fact]
    public void Refuses_zero_filters()
    {
        AssertRefused(Keras2WithInputLayer.With("\"filters\": 4", "\"filters\": 0"), "layer 'conv2d' (Conv2D), filters: must be positive");
    }

    [Fact]
    public void Refuses_negative_units()
    {
        AssertRefused(Keras2WithInputLayer.With("\"units\": 3", "\"units\": -3"), "layer 'dense' (Dense), units: must be positive");
    }

    [Fact]
    public void Refuses_malformed_JSON_naming_the_file_and_the_position()
    {
        var error = Assert.Throws<ModelException>(() => KerasModelReader.Read("{\"class_name\": \"Sequential\", \"config\": [}", Source));

        Assert.StartsWith($"{Source}: malformed JSON at line 1, byte 41", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_a_kernel_size_that_is_not_integers()
    {
        AssertRefused(Keras2WithInputLayer.With("\"kernel_size\": [3, 3]", "\"kernel_size\": [\"3\", \"3\"]"), "layer 'conv2d' (Conv2D), kernel_size: expected an integer or a pair of integers, got [\"3\", \"3\"]");
    }

    [Fact]
    public void Refuses_a_model_without_an_input_shape()
    {
        AssertRefused(Keras2(Conv, Pool, Flatten, Dense), "layer 'conv2d' (Conv2D), batch_input_shape: missing");
    }

    [Fact]
    public void Refuses_a_kernel_larger_than_its_input()
    {
        AssertRefused(Keras2WithInputLayer.With("[null, 8, 8, 1]", "[null, 2, 2, 1]"), "layer 'conv2d' (Conv2D), kernel_size: kernel 3x3 is larger than its input 2x2");
    }

    [Fact]
    public void Refuses_a_non_zero_regularizer()
    {
        AssertRefused(
            Keras2WithInputLayer.With("\"kernel_regularizer\": null", "\"kernel_regularizer\": {\"class_name\": \"L1L2\", \"config\": {\"l1\": 0.0, \"l2\": 0.05}}"),
            "layer 'conv2d' (Conv2D), kernel_regularizer: L1L2(l1=0, l2=0.05) is not supported");
    }

    [Fact]
    public void Refuses_a_constraint()
    {
        AssertRefused(
            Keras2WithInputLayer.With("\"kernel_constraint\": null", "\"kernel_constraint\": {\"class_name\": \"MaxNorm\", \"config\": {\"max_value\": 2}}"),
            "layer 'conv2d' (Conv2D), kernel_constraint:");
    }

    [Fact]
    public void Refuses_BatchNormalization_over_an_axis_other_than_the_channels()
    {
        var norm = """{"class_name": "BatchNormalization", "config": {"name": "batch_normalization", "axis": 1}}""";

        AssertRefused(Keras2(InputLayer, Conv, norm, Pool, Flatten, Dense), "layer 'batch_normalization' (BatchNormalization), axis: 1 is not the channel axis");
    }

    [Fact]
    public void Refuses_a_frozen_layer()
    {
        AssertRefused(Keras2WithInputLayer.With("\"name\": \"dense\", \"trainable\": true", "\"name\": \"dense\", \"trainable\": false"), "layer 'dense' (Dense), trainable:");
    }

    [Fact]
    public void Refuses_an_unsupported_kernel_initializer()
    {
        var conv = Conv.With(GlorotUniform, "{\"class_name\": \"Orthogonal\", \"config\": {\"gain\": 1.0}}");

        AssertRefused(Keras2(InputLayer, conv, Pool, Flatten, Dense), "layer 'conv2d' (Conv2D), kernel_initializer: 'Orthogonal' is not supported");
    }

    [Fact]
    public void Refuses_a_non_zero_bias_initializer()
    {
        var conv = Conv.With("{\"class_name\": \"Zeros\", \"config\": {}}", "{\"class_name\": \"Constant\", \"config\": {\"value\": 0.1}}");

        AssertRefused(Keras2(InputLayer, conv, Pool, Flatten, Dense), "layer 'conv2d' (Conv2D), bias_initializer:");
    }

    [Fact]
    public void Refuses_layers_of_different_data_formats()
    {
        AssertRefused(Keras2WithInputLayer.With("\"strides\": [2, 2], \"data_format\": \"channels_last\"", "\"strides\": [2, 2], \"data_format\": \"channels_first\""), "layer 'max_pooling2d' (MaxPooling2D), data_format:");
    }

    [Fact]
    public void Refuses_Dense_on_an_image_without_a_Flatten()
    {
        AssertRefused(Keras2(InputLayer, Conv, Pool, Dense), "layer 'dense' (Dense), input: Dense on an image");
    }

    [Fact]
    public void Refuses_two_layers_of_the_same_name()
    {
        AssertRefused(Keras2(InputLayer, Conv, Conv, Pool, Flatten, Dense), "layer 'conv2d' (Conv2D), name:");
    }

    [Fact]
    public void Refuses_a_missing_file_naming_its_path()
    {
        var path = Path.Combine(Path.GetTempPath(), "clusterconv-no-such-model.json");

        var error = Assert.Throws<ModelException>(() => KerasModelReader.ReadFile(path));

        Assert.Equal($"model file not found: '{path}'", error.Message);
    }

    private static void AssertTinyModel(ModelSpec model, string convName, string denseName)
    {
        Assert.Equal(new SampleShape(1, 8, 8), model.Input);
        Assert.Equal(DataFormat.ChannelsLast, model.DataFormat);
        Assert.Collection(
            model.Layers,
            l => Assert.Equal(new Conv2DSpec(convName, 4, 3, 3, Activation: Activation.Relu), l),
            l => Assert.Equal(PoolKind.Max, Assert.IsType<Pool2DSpec>(l).Kind),
            l => Assert.IsType<FlattenSpec>(l),
            l => Assert.Equal(new DenseSpec(denseName, 3), l));
        Assert.Equal(
            [new SampleShape(4, 6, 6), new SampleShape(4, 3, 3), SampleShape.Vector(36), SampleShape.Vector(3)],
            model.OutputShapes());
        Assert.Equal(TinyParameters, model.ParameterCount());
    }

    private static string AssertRefused(string json, string expected)
    {
        var error = Assert.Throws<ModelException>(() => KerasModelReader.Read(json, Source));
        Assert.StartsWith($"{Source}: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        return error.Message;
    }
}
