namespace ClusterConv.Engine.Layers;

/// <summary>Element-wise activations; names as Keras spells them.</summary>
public enum ActivationKind
{
    Linear,
    Relu,
    LeakyRelu,
    Elu,
    Gelu,
    Tanh,
    Sigmoid,
}

/// <summary>An activation with its parameter (alpha for leaky_relu and elu).</summary>
public readonly record struct Activation(ActivationKind Kind, float Alpha = 0f)
{
    public static Activation Linear => new(ActivationKind.Linear);

    public static Activation Relu => new(ActivationKind.Relu);

    /// <summary>Keras name: "relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "linear".</summary>
    public string KerasName => Kind switch
    {
        ActivationKind.Linear => "linear",
        ActivationKind.Relu => "relu",
        ActivationKind.LeakyRelu => "leaky_relu",
        ActivationKind.Elu => "elu",
        ActivationKind.Gelu => "gelu",
        ActivationKind.Tanh => "tanh",
        ActivationKind.Sigmoid => "sigmoid",
        _ => throw new InvalidOperationException(),
    };

    /// <summary>Parses a Keras activation name, or returns null when unknown.</summary>
    public static Activation? TryParse(string name) => name switch
    {
        "linear" or "None" => Linear,
        "relu" => Relu,
        "leaky_relu" => new Activation(ActivationKind.LeakyRelu, 0.2f), // Keras 3's default alpha (negative_slope)
        "elu" => new Activation(ActivationKind.Elu, 1f),
        "gelu" => new Activation(ActivationKind.Gelu),
        "tanh" => new Activation(ActivationKind.Tanh),
        "sigmoid" => new Activation(ActivationKind.Sigmoid),
        _ => null,
    };
}
