namespace ClusterConv.Engine.Optimizers;

/// <summary>
/// An optimizer as a run describes it. Settings left null take the optimizer's default; a
/// setting that does not apply to the chosen optimizer is an error rather than silently ignored.
/// Keys in messages are spelled as in configuration: name, learning_rate, momentum, nesterov,
/// weight_decay, beta_1, beta_2, epsilon.
/// </summary>
public sealed record OptimizerSettings
{
    /// <summary>"sgd", "adam" or "adamw" (case-insensitive; Keras' "SGD", "Adam", "AdamW" work).</summary>
    public string Name { get; init; } = "adam";

    /// <summary>Base learning rate for the schedule; default sgd 0.01, adam and adamw 0.001 (Keras).</summary>
    public float? LearningRate { get; init; }

    /// <summary>sgd only; default 0.</summary>
    public float? Momentum { get; init; }

    /// <summary>sgd with momentum only.</summary>
    public bool Nesterov { get; init; }

    /// <summary>sgd and adam: coupled L2 added to the gradient; adamw: decoupled. Default 0, adamw 0.004 (Keras).</summary>
    public float? WeightDecay { get; init; }

    /// <summary>adam and adamw; default 0.9.</summary>
    public float? Beta1 { get; init; }

    /// <summary>adam and adamw; default 0.999.</summary>
    public float? Beta2 { get; init; }

    /// <summary>adam and adamw; default 1e-7 (Keras).</summary>
    public float? Epsilon { get; init; }

    /// <summary>The learning rate to start a schedule from: the setting or the optimizer's default.</summary>
    public float BaseLearningRate => LearningRate ?? (Optimizers.Normalize(Name) == "sgd" ? 0.01f : 0.001f);
}

/// <summary>Creates optimizers from settings.</summary>
public static class Optimizers
{
    /// <summary>The names <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["sgd", "adam", "adamw"];

    /// <summary>Builds the optimizer, or throws an <see cref="ArgumentException"/> whose message names the first bad setting.</summary>
    public static IOptimizer Create(OptimizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var name = Normalize(settings.Name);
        if (!Names.Contains(name))
        {
            throw Bad("name", $"unknown optimizer '{settings.Name}', expected one of {string.Join(", ", Names)}");
        }

        var lr = settings.BaseLearningRate;
        if (!float.IsFinite(lr) || lr <= 0f)
        {
            throw Bad("learning_rate", $"must be positive, got {lr}");
        }

        var weightDecay = settings.WeightDecay ?? (name == "adamw" ? 0.004f : 0f);
        if (!float.IsFinite(weightDecay) || weightDecay < 0f)
        {
            throw Bad("weight_decay", $"must be 0 or more, got {weightDecay}");
        }

        if (name == "sgd")
        {
            foreach (var (key, value) in new[] { ("beta_1", settings.Beta1), ("beta_2", settings.Beta2), ("epsilon", settings.Epsilon) })
            {
                if (value is not null)
                {
                    throw Bad(key, "applies to adam and adamw, not sgd");
                }
            }

            var momentum = settings.Momentum ?? 0f;
            if (!(momentum is >= 0f and < 1f))
            {
                throw Bad("momentum", $"must be in [0, 1), got {momentum}");
            }

            if (settings.Nesterov && momentum == 0f)
            {
                throw Bad("nesterov", "needs a momentum above 0");
            }

            return new Sgd(momentum, settings.Nesterov, weightDecay);
        }

        if (settings.Momentum is not null)
        {
            throw Bad("momentum", $"applies to sgd, not {name}");
        }

        if (settings.Nesterov)
        {
            throw Bad("nesterov", $"applies to sgd, not {name}");
        }

        var beta1 = settings.Beta1 ?? 0.9f;
        var beta2 = settings.Beta2 ?? 0.999f;
        var epsilon = settings.Epsilon ?? 1e-7f;
        if (!(beta1 is >= 0f and < 1f))
        {
            throw Bad("beta_1", $"must be in [0, 1), got {beta1}");
        }

        if (!(beta2 is >= 0f and < 1f))
        {
            throw Bad("beta_2", $"must be in [0, 1), got {beta2}");
        }

        if (!float.IsFinite(epsilon) || epsilon <= 0f)
        {
            throw Bad("epsilon", $"must be positive, got {epsilon}");
        }

        return new Adam(beta1, beta2, epsilon, weightDecay, decoupledWeightDecay: name == "adamw");
    }

    internal static string Normalize(string? name) => (name ?? string.Empty).Trim().ToLowerInvariant();

    private static ArgumentException Bad(string key, string problem) => new($"optimizer setting '{key}': {problem}", key);
}
