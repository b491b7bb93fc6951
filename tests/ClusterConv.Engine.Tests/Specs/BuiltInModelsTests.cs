using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Tests.Specs;

public class BuiltInModelsTests
{
    [Fact]
    public void Keras_cnn_has_the_225_034_parameters_Keras_reports()
    {
        Assert.Equal(225_034, BuiltInModels.KerasCnn.ParameterCount());
    }

    [Fact]
    public void Keras_cnn_has_the_layer_shapes_Keras_reports()
    {
        var rows = ModelSummary.Create(BuiltInModels.KerasCnn).Rows;

        Assert.Equal(
            ["(None, 26, 26, 32)", "(None, 13, 13, 32)", "(None, 11, 11, 64)", "(None, 5, 5, 64)", "(None, 1600)", "(None, 128)", "(None, 10)"],
            rows.Select(r => r.OutputShape));
        Assert.Equal([320L, 0, 18_496, 0, 0, 204_928, 1_290], rows.Select(r => r.Parameters));
    }

    [Fact]
    public void Tf_cnn_has_the_3_274_634_parameters_Keras_reports()
    {
        Assert.Equal(3_274_634, BuiltInModels.TfCnn.ParameterCount());
    }

    [Fact]
    public void Tf_cnn_keeps_28_by_28_through_same_padding_and_halves_it_in_each_pool()
    {
        Assert.Equal(
            ["(None, 28, 28, 32)", "(None, 14, 14, 32)", "(None, 14, 14, 64)", "(None, 7, 7, 64)", "(None, 3136)", "(None, 1024)", "(None, 1024)", "(None, 10)"],
            ModelSummary.Create(BuiltInModels.TfCnn).Rows.Select(r => r.OutputShape));
    }

    [Fact]
    public void Lenet5_has_61_706_parameters()
    {
        Assert.Equal(61_706, BuiltInModels.LeNet5.ParameterCount());
    }

    [Fact]
    public void Built_in_layers_have_the_names_Keras_gives_automatically()
    {
        Assert.Equal(
            ["conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "flatten", "dense", "dropout", "dense_1"],
            BuiltInModels.TfCnn.Layers.Select(l => l.Name));
    }

    [Fact]
    public void Every_built_in_ends_in_linear_logits()
    {
        Assert.All(BuiltInModels.Names, name => Assert.Equal(Activation.Linear, ((DenseSpec)BuiltInModels.Get(name).Layers[^1]).Activation));
    }

    [Fact]
    public void Looks_up_a_built_in_by_name_ignoring_case()
    {
        Assert.Same(BuiltInModels.KerasCnn, BuiltInModels.Get("Keras-CNN"));
    }

    [Fact]
    public void An_unknown_name_is_refused_with_the_known_names()
    {
        var error = Assert.Throws<ModelException>(() => BuiltInModels.Get("resnet50"));

        Assert.Equal("unknown built-in model 'resnet50'; known: keras-cnn, tf-cnn, lenet5", error.Message);
    }

    [Fact]
    public void WithHiddenActivation_swaps_every_hidden_activation_and_keeps_the_output_linear()
    {
        var elu = new Activation(ActivationKind.Elu, 1f);

        var model = BuiltInModels.KerasCnn.WithHiddenActivation(elu);

        Assert.Equal(
            [elu, elu, elu, Activation.Linear],
            model.Layers.Select(l => l switch { Conv2DSpec c => c.Activation, DenseSpec d => d.Activation, _ => (Activation?)null }).OfType<Activation>());
        Assert.Equal(BuiltInModels.KerasCnn.ParameterCount(), model.ParameterCount());
    }

    [Fact]
    public void WithHiddenActivation_swaps_stand_alone_activation_layers_into_Activation_layers()
    {
        var model = new ModelSpec("m", new SampleShape(1, 4, 4), [
            new Conv2DSpec("conv2d", 2, 3, 3),
            new ActivationSpec("leaky_re_lu", new Activation(ActivationKind.LeakyRelu, 0.3f), "LeakyReLU"),
            new FlattenSpec("flatten"),
            new DenseSpec("dense", 2),
        ]);

        var swapped = (ActivationSpec)model.WithHiddenActivation(Activation.Relu).Layers[1];

        Assert.Equal(new ActivationSpec("leaky_re_lu", Activation.Relu, "Activation"), swapped);
    }

    [Theory]
    [InlineData("Conv2D", "conv2d")]
    [InlineData("MaxPooling2D", "max_pooling2d")]
    [InlineData("BatchNormalization", "batch_normalization")]
    [InlineData("LeakyReLU", "leaky_re_lu")]
    public void Automatic_names_are_Keras_snake_case_class_names(string kerasClass, string name)
    {
        Assert.Equal(name, KerasNames.SnakeCase(kerasClass));
    }
}
