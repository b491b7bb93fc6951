using System.Diagnostics.CodeAnalysis;
using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Specs;

/// <summary>
/// Models known by name, all on one 28×28 grey image (1, 28, 28) with 10 classes and Keras' default
/// glorot_uniform kernels and zero biases. Layer names follow Keras' automatic names (tf.keras 2.3+ and Keras 3:
/// conv2d, max_pooling2d, conv2d_1, ...). The last Dense layer gives linear logits: what Keras writes as
/// Dense(10, activation="softmax") is trained here with softmax cross-entropy on the logits.
/// </summary>
public static class BuiltInModels
{
    public const string KerasCnnName = "keras-cnn";
    public const string TfCnnName = "tf-cnn";
    public const string LeNet5Name = "lenet5";

    private static readonly SampleShape Mnist = new(1, 28, 28);

    /// <summary>The reference model of every benchmark, the Keras MNIST example: Conv2D(32, 3×3, relu), MaxPooling2D(2),
    /// Conv2D(64, 3×3, relu), MaxPooling2D(2), Flatten, Dense(128, relu), Dense(10). 225,034 parameters.</summary>
    public static ModelSpec KerasCnn { get; } = Build(KerasCnnName, names =>
    [
        new Conv2DSpec(names.Next("Conv2D"), 32, 3, 3, Activation: Activation.Relu),
        new Pool2DSpec(names.Next("MaxPooling2D"), PoolKind.Max, 2, 2, 2, 2),
        new Conv2DSpec(names.Next("Conv2D"), 64, 3, 3, Activation: Activation.Relu),
        new Pool2DSpec(names.Next("MaxPooling2D"), PoolKind.Max, 2, 2, 2, 2),
        new FlattenSpec(names.Next("Flatten")),
        new DenseSpec(names.Next("Dense"), 128, Activation: Activation.Relu),
        new DenseSpec(names.Next("Dense"), 10),
    ]);

    /// <summary>The TensorFlow "layers" tutorial CNN: Conv2D(32, 5×5, same, relu), MaxPooling2D(2), Conv2D(64, 5×5, same, relu),
    /// MaxPooling2D(2), Flatten, Dense(1024, relu), Dropout(0.4), Dense(10). 3,274,634 parameters.</summary>
    public static ModelSpec TfCnn { get; } = Build(TfCnnName, names =>
    [
        new Conv2DSpec(names.Next("Conv2D"), 32, 5, 5, Padding: Padding.Same, Activation: Activation.Relu),
        new Pool2DSpec(names.Next("MaxPooling2D"), PoolKind.Max, 2, 2, 2, 2),
        new Conv2DSpec(names.Next("Conv2D"), 64, 5, 5, Padding: Padding.Same, Activation: Activation.Relu),
        new Pool2DSpec(names.Next("MaxPooling2D"), PoolKind.Max, 2, 2, 2, 2),
        new FlattenSpec(names.Next("Flatten")),
        new DenseSpec(names.Next("Dense"), 1024, Activation: Activation.Relu),
        new DropoutSpec(names.Next("Dropout"), 0.4f),
        new DenseSpec(names.Next("Dense"), 10),
    ]);

    /// <summary>LeNet-5 as LeCun drew it, adapted to 28×28 by "same" padding in the first convolution: Conv2D(6, 5×5, same, tanh),
    /// AveragePooling2D(2), Conv2D(16, 5×5, valid, tanh), AveragePooling2D(2), Flatten, Dense(120, tanh), Dense(84, tanh),
    /// Dense(10). tanh (not relu) keeps the classic network; glorot_uniform suits it. 61,706 parameters.</summary>
    public static ModelSpec LeNet5 { get; } = Build(LeNet5Name, names =>
    [
        new Conv2DSpec(names.Next("Conv2D"), 6, 5, 5, Padding: Padding.Same, Activation: Tanh),
        new Pool2DSpec(names.Next("AveragePooling2D"), PoolKind.Average, 2, 2, 2, 2),
        new Conv2DSpec(names.Next("Conv2D"), 16, 5, 5, Activation: Tanh),
        new Pool2DSpec(names.Next("AveragePooling2D"), PoolKind.Average, 2, 2, 2, 2),
        new FlattenSpec(names.Next("Flatten")),
        new DenseSpec(names.Next("Dense"), 120, Activation: Tanh),
        new DenseSpec(names.Next("Dense"), 84, Activation: Tanh),
        new DenseSpec(names.Next("Dense"), 10),
    ]);

    /// <summary>The built-in names, in the order they are listed to users.</summary>
    public static IReadOnlyList<string> Names { get; } = Array.AsReadOnly([KerasCnnName, TfCnnName, LeNet5Name]);

    private static Activation Tanh => new(ActivationKind.Tanh);

    /// <summary>The built-in model of that name (case-insensitive), or a <see cref="ModelException"/> listing the known names.</summary>
    public static ModelSpec Get(string name) =>
        TryGet(name, out var model) ? model : throw new ModelException($"unknown built-in model '{name}'; known: {string.Join(", ", Names)}");

    public static bool TryGet(string name, [NotNullWhen(true)] out ModelSpec? model)
    {
        ArgumentNullException.ThrowIfNull(name);
        model = name.ToLowerInvariant() switch
        {
            KerasCnnName => KerasCnn,
            TfCnnName => TfCnn,
            LeNet5Name => LeNet5,
            _ => null,
        };
        return model is not null;
    }

    /// <summary>
    /// The same model with every hidden non-linear activation (relu in keras-cnn and tf-cnn, tanh in lenet5, and any
    /// Activation, ReLU or LeakyReLU layer) replaced by <paramref name="activation"/>. The last layer and linear
    /// activations are kept. Swapped stand-alone layers become Keras "Activation" layers of the same name.
    /// </summary>
    public static ModelSpec WithHiddenActivation(this ModelSpec model, Activation activation)
    {
        ArgumentNullException.ThrowIfNull(model);
        var last = model.Layers.Count - 1;
        var layers = model.Layers.Select((layer, i) => i == last ? layer : layer switch
        {
            Conv2DSpec conv when conv.Activation.Kind != ActivationKind.Linear => conv with { Activation = activation },
            DenseSpec dense when dense.Activation.Kind != ActivationKind.Linear => dense with { Activation = activation },
            ActivationSpec standalone when standalone.Activation.Kind != ActivationKind.Linear =>
                standalone with { Activation = activation, KerasClass = "Activation" },
            _ => layer,
        }).ToArray();
        return model with { Layers = Array.AsReadOnly(layers) };
    }

    private static ModelSpec Build(string name, Func<KerasNames, LayerSpec[]> layers) =>
        new(name, Mnist, Array.AsReadOnly(layers(new KerasNames())));
}
