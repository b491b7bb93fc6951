using System.CommandLine;
using System.CommandLine.Parsing;

namespace ClusterConv.Cli.Commands;

/// <summary>Options several verbs share, with their validation.</summary>
internal static class CommonOptions
{
    public static Option<int> Positive(string name, string description, int defaultValue) =>
        Validated(new Option<int>(name) { Description = description, DefaultValueFactory = _ => defaultValue }, name);

    public static Option<int?> OptionalPositive(string name, string description) =>
        Validated(new Option<int?>(name) { Description = description }, name);

    public static Option<int> Threads() => Positive("--threads", "Compute threads (default: one per core).", Environment.ProcessorCount);

    public static Option<string> Model(string description, string defaultValue) =>
        new("--model") { Description = description, DefaultValueFactory = _ => defaultValue };

    public static Option<string> Data(string description, string defaultValue) =>
        new("--data") { Description = description, DefaultValueFactory = _ => defaultValue };

    public static Option<ulong> Seed(string description, ulong defaultValue) =>
        new("--seed") { Description = description, DefaultValueFactory = _ => defaultValue };

    public static Option<int?> TrainLimit(string description) => OptionalPositive("--train-limit", description);

    public static Option<int?> TestLimit(string description) => OptionalPositive("--test-limit", description);

    public static Option<int?> MaxSteps(string description) => OptionalPositive("--max-steps", description);

    public static Option<string> OutDir(string description, string defaultValue) =>
        new("--out") { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>--cluster redis://HOST:PORT (rediss:// for TLS): a running cluster to train on instead of a silo in this process.</summary>
    public static Option<string?> Cluster(string description)
    {
        var cluster = new Option<string?>("--cluster") { Description = description };
        cluster.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } v && !v.StartsWith("redis://", StringComparison.OrdinalIgnoreCase) && !v.StartsWith("rediss://", StringComparison.OrdinalIgnoreCase))
            {
                r.AddError($"--cluster must be redis://HOST:PORT, got '{Hosting.RedisAddress.Mask(v)}' (rediss://HOST:PORT for TLS)");
            }
        });
        return cluster;
    }

    /// <summary>Default of --max-parameters: ten times the largest built-in model would still fit, a typo in a file would not.</summary>
    public const long DefaultMaxParameters = 50_000_000;

    public static Option<long> MaxParameters()
    {
        var option = new Option<long>("--max-parameters")
        {
            Description = $"Refuse a model with more parameters than this (default: {DefaultMaxParameters:N0}).",
            DefaultValueFactory = _ => DefaultMaxParameters,
        };
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<long>() <= 0)
            {
                r.AddError($"--max-parameters must be a positive integer, got {r.GetValueOrDefault<long>()}");
            }
        });
        return option;
    }

    /// <summary>A built-in model or Keras file, refused when larger than <paramref name="maxParameters"/>.</summary>
    public static Engine.Specs.ModelSpec ResolveModel(string nameOrPath, long maxParameters = DefaultMaxParameters) =>
        Engine.Specs.ModelCatalog.Resolve(nameOrPath, new Engine.Specs.KerasReadOptions { MaxParameters = maxParameters });

    public static Option<bool> Json(string what) => new("--json") { Description = $"Print {what} as JSON on standard output." };

    public static Option<bool> Verbose() => new("--verbose") { Description = "Show stack traces on errors." };

    private static Option<T> Validated<T>(Option<T> option, string name)
    {
        option.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<T>();
            if (value is int i && i <= 0)
            {
                result.AddError($"{name} must be a positive integer, got {i}");
            }
        });
        return option;
    }
}
