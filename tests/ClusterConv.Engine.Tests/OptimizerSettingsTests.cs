using ClusterConv.Engine.Optimizers;

namespace ClusterConv.Engine.Tests;

public class OptimizerSettingsTests
{
    private static string ErrorKey(OptimizerSettings settings) =>
        Assert.Throws<ArgumentException>(() => Optimizers.Optimizers.Create(settings)).ParamName!;

    [Fact]
    public void Names_create_sgd_adam_and_adamw_as_settings_of_two_optimizers()
    {
        var sgd = Assert.IsType<Sgd>(Optimizers.Optimizers.Create(new OptimizerSettings { Name = "SGD", Momentum = 0.9f, Nesterov = true }));
        Assert.True(sgd.Nesterov);
        Assert.Equal(1, sgd.StateSlotsPerParameter);
        var adam = Assert.IsType<Adam>(Optimizers.Optimizers.Create(new OptimizerSettings { Name = "adam" }));
        Assert.False(adam.DecoupledWeightDecay);
        Assert.Equal((0.9f, 0.999f, 1e-7f, 0f), (adam.Beta1, adam.Beta2, adam.Epsilon, adam.WeightDecay));
        var adamw = Assert.IsType<Adam>(Optimizers.Optimizers.Create(new OptimizerSettings { Name = "AdamW" }));
        Assert.True(adamw.DecoupledWeightDecay);
        Assert.Equal(0.004f, adamw.WeightDecay);
    }

    [Fact]
    public void Default_learning_rates_are_keras_defaults()
    {
        Assert.Equal(0.01f, new OptimizerSettings { Name = "sgd" }.BaseLearningRate);
        Assert.Equal(0.001f, new OptimizerSettings { Name = "adamw" }.BaseLearningRate);
        Assert.Equal(0.3f, new OptimizerSettings { Name = "adam", LearningRate = 0.3f }.BaseLearningRate);
    }

    [Fact]
    public void Each_bad_setting_is_named_in_the_error()
    {
        Assert.Equal("name", ErrorKey(new OptimizerSettings { Name = "rmsprop" }));
        Assert.Equal("learning_rate", ErrorKey(new OptimizerSettings { LearningRate = 0f }));
        Assert.Equal("momentum", ErrorKey(new OptimizerSettings { Name = "sgd", Momentum = 1f }));
        Assert.Equal("momentum", ErrorKey(new OptimizerSettings { Name = "adam", Momentum = 0.9f }));
        Assert.Equal("nesterov", ErrorKey(new OptimizerSettings { Name = "sgd", Nesterov = true }));
        Assert.Equal("weight_decay", ErrorKey(new OptimizerSettings { WeightDecay = -1f }));
        Assert.Equal("beta_1", ErrorKey(new OptimizerSettings { Beta1 = 1f }));
        Assert.Equal("beta_2", ErrorKey(new OptimizerSettings { Beta2 = -0.1f }));
        Assert.Equal("epsilon", ErrorKey(new OptimizerSettings { Epsilon = 0f }));
        Assert.Equal("beta_1", ErrorKey(new OptimizerSettings { Name = "sgd", Beta1 = 0.9f }));
    }

    [Fact]
    public void Unknown_optimizer_error_lists_the_known_names()
    {
        var error = Assert.Throws<ArgumentException>(() => Optimizers.Optimizers.Create(new OptimizerSettings { Name = "rmsprop" }));
        Assert.Contains("sgd, adam, adamw", error.Message, StringComparison.Ordinal);
    }
}
