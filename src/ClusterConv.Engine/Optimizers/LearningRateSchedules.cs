using System.Globalization;

namespace ClusterConv.Engine.Optimizers;

/// <summary>A learning rate as a function of the step: At(t) is the rate of the update after t completed steps (t = 0 for the first update).</summary>
public interface ILearningRateSchedule
{
    float At(long step);
}

/// <summary>The same rate at every step.</summary>
public sealed class ConstantSchedule(float learningRate) : ILearningRateSchedule
{
    public float LearningRate { get; } = learningRate;

    public float At(long step) => LearningRate;
}

/// <summary>lr · factor^⌊t / every⌋: the rate multiplied by factor every <c>every</c> steps.</summary>
public sealed class StepSchedule : ILearningRateSchedule
{
    public StepSchedule(float learningRate, long every, float factor)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(every);
        LearningRate = learningRate;
        Every = every;
        Factor = factor;
    }

    public float LearningRate { get; }

    public long Every { get; }

    public float Factor { get; }

    public float At(long step) => (float)(LearningRate * Math.Pow(Factor, Math.Max(step, 0) / Every));
}

/// <summary>
/// Optional linear warmup then cosine decay over the remaining steps:
/// t &lt; warmup: lr·(t + 1)/warmup (never 0 at the first step);
/// then min + (lr - min)·(1 + cos(π·p))/2 with p = (t - warmup)/(total - warmup), clamped to 1,
/// so the rate reaches min at t = total and stays there.
/// </summary>
public sealed class CosineSchedule : ILearningRateSchedule
{
    public CosineSchedule(float learningRate, long totalSteps, long warmupSteps = 0, float minLearningRate = 0f)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalSteps);
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        LearningRate = learningRate;
        TotalSteps = totalSteps;
        WarmupSteps = warmupSteps;
        MinLearningRate = minLearningRate;
    }

    public float LearningRate { get; }

    public long TotalSteps { get; }

    public long WarmupSteps { get; }

    public float MinLearningRate { get; }

    public float At(long step)
    {
        step = Math.Max(step, 0);
        if (step < WarmupSteps)
        {
            return (float)((double)LearningRate * (step + 1) / WarmupSteps);
        }

        var span = TotalSteps - WarmupSteps;
        var progress = span <= 0 ? 1.0 : Math.Min(1.0, (double)(step - WarmupSteps) / span);
        return (float)(MinLearningRate + ((LearningRate - (double)MinLearningRate) * 0.5 * (1.0 + Math.Cos(Math.PI * progress))));
    }
}

/// <summary>
/// Parses schedules: "constant", "step", "cosine", optionally with settings after a colon:
/// "step:every=1000,factor=0.5" (defaults: every = a third of the total steps, factor = 0.1),
/// "cosine:warmup=500,min=1e-5" (defaults 0 and 0). Errors name the schedule and the setting.
/// </summary>
public static class LearningRateSchedules
{
    public static IReadOnlyList<string> Names { get; } = ["constant", "step", "cosine"];

    /// <param name="schedule">Name with optional settings, e.g. "cosine:warmup=100".</param>
    /// <param name="learningRate">Base rate (the rate at step 0, or after warmup).</param>
    /// <param name="totalSteps">Steps of the whole run; cosine decays over them, step divides them by three by default.</param>
    public static ILearningRateSchedule Create(string schedule, float learningRate, long totalSteps)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        if (!float.IsFinite(learningRate) || learningRate <= 0f)
        {
            throw new ArgumentException($"learning rate must be positive, got {learningRate}", nameof(learningRate));
        }

        var colon = schedule.IndexOf(':', StringComparison.Ordinal);
        var name = (colon < 0 ? schedule : schedule[..colon]).Trim().ToLowerInvariant();
        var settings = ParseSettings(name, colon < 0 ? string.Empty : schedule[(colon + 1)..]);
        switch (name)
        {
            case "constant":
                Allow(name, settings);
                return new ConstantSchedule(learningRate);
            case "step":
            {
                Allow(name, settings, "every", "factor");
                var every = settings.TryGetValue("every", out var e) ? ToSteps(name, "every", e) : totalSteps / 3;
                if (every <= 0)
                {
                    throw Bad(name, "every", totalSteps <= 0 ? "must be given when the total steps are unknown" : $"must be positive, got {every}");
                }

                var factor = settings.TryGetValue("factor", out var f) ? f : 0.1;
                if (!(factor > 0 && factor <= 1))
                {
                    throw Bad(name, "factor", $"must be in (0, 1], got {factor}");
                }

                return new StepSchedule(learningRate, every, (float)factor);
            }

            case "cosine":
            {
                Allow(name, settings, "warmup", "min");
                if (totalSteps <= 0)
                {
                    throw Bad(name, "total steps", $"must be positive, got {totalSteps}");
                }

                var warmup = settings.TryGetValue("warmup", out var w) ? ToSteps(name, "warmup", w) : 0;
                if (warmup >= totalSteps)
                {
                    throw Bad(name, "warmup", $"must be fewer than the {totalSteps} total steps, got {warmup}");
                }

                var min = settings.TryGetValue("min", out var m) ? m : 0;
                if (!(min >= 0 && min <= learningRate))
                {
                    throw Bad(name, "min", $"must be in [0, {learningRate}], got {min}");
                }

                return new CosineSchedule(learningRate, totalSteps, warmup, (float)min);
            }

            default:
                throw new ArgumentException($"learning-rate schedule '{schedule}': unknown, expected one of {string.Join(", ", Names)}", nameof(schedule));
        }
    }

    private static Dictionary<string, double> ParseSettings(string name, string text)
    {
        var settings = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = item.IndexOf('=', StringComparison.Ordinal);
            var key = eq < 0 ? item : item[..eq].Trim().ToLowerInvariant();
            if (eq < 0 || !double.TryParse(item[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value))
            {
                throw Bad(name, key, $"expected key=number, got '{item}'");
            }

            settings[key] = value;
        }

        return settings;
    }

    private static void Allow(string name, Dictionary<string, double> settings, params string[] keys)
    {
        foreach (var key in settings.Keys)
        {
            if (!keys.Contains(key))
            {
                throw Bad(name, key, keys.Length == 0 ? "this schedule takes no settings" : $"unknown setting, expected {string.Join(" or ", keys)}");
            }
        }
    }

    private static long ToSteps(string name, string key, double value) =>
        value >= 0 && value == Math.Floor(value) && value <= long.MaxValue ? (long)value : throw Bad(name, key, $"must be a whole number of steps, got {value}");

    private static ArgumentException Bad(string name, string key, string problem) =>
        new($"learning-rate schedule '{name}', {key}: {problem}", "schedule");
}
