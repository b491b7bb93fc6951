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
