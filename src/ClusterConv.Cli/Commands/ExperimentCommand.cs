using System.CommandLine;
using System.Text.Json.Nodes;
using ClusterConv.Cli.Output;
using ClusterConv.Cli.Training;
using ClusterConv.Engine.IO;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;
using ClusterConv.Reports;
using static ClusterConv.Reports.Stats;
using Spectre.Console;

namespace ClusterConv.Cli.Commands;

/// <summary>What `experiment activations` was asked to do.</summary>
internal sealed record ExperimentSettings
{
    public static readonly IReadOnlyList<string> DefaultActivations = ["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"];

    public IReadOnlyList<string> Activations { get; init; } = DefaultActivations;

    public string Model { get; init; } = BuiltInModels.KerasCnnName;

    public string Data { get; init; } = DataSources.FashionMnistName;

    public int Epochs { get; init; } = 1;

    public long? MaxSteps { get; init; }

    public int? TrainLimit { get; init; }

    public int? TestLimit { get; init; }

    public ulong Seed { get; init; } = 1;

    public int Threads { get; init; } = Environment.ProcessorCount;

    public string OutDir { get; init; } = "runs/activations";

    /// <summary>"redis://HOST:PORT" of a running cluster to train on; null: a silo in this process.</summary>
    public string? Cluster { get; init; }
}

/// <summary>
/// `clusterconv experiment activations`: trains the same model, data, seed and budget once per activation (on a silo
/// in this process, or on a running cluster with --cluster, as `train` does), each into DIR/&lt;activation&gt;/, then
/// compares them: a terminal table, DIR/experiment.json and DIR/report.html. A run whose folder already has
/// summary.json is reused.
/// </summary>
internal static class ExperimentCommand
{
    public static Command Create()
    {
        var defaults = new ExperimentSettings();
        var activations = new Option<string>("--activations") { Description = "Comma-separated hidden activations to compare.", DefaultValueFactory = _ => string.Join(',', defaults.Activations) };
        activations.Validators.Add(r =>
        {
            foreach (var name in Split(r.GetValueOrDefault<string>() ?? string.Empty))
            {
                if (Activation.TryParse(name) is not { } a || a.Kind == ActivationKind.Linear)
                {
                    r.AddError($"--activations: unknown activation '{name}'; known: {string.Join(", ", ExperimentSettings.DefaultActivations)}");
                }
            }
        });
        var model = CommonOptions.Model("A built-in model or a Keras JSON file; its hidden activations are replaced.", defaults.Model);
        var data = CommonOptions.Data("fashion-mnist, synthetic, or a folder of IDX files.", defaults.Data);
        var epochs = CommonOptions.Positive("--epochs", "Passes over the training data, per activation.", defaults.Epochs);
        var maxSteps = CommonOptions.MaxSteps("Stop each run after N steps.");
        var trainLimit = CommonOptions.TrainLimit("Use only the first N training samples.");
        var testLimit = CommonOptions.TestLimit("Evaluate on only the first N test samples.");
        var seed = CommonOptions.Seed("Seed shared by every run.", defaults.Seed);
        var threads = CommonOptions.Threads();
        var outDir = CommonOptions.OutDir("Experiment folder: one run folder per activation, experiment.json, report.html.", defaults.OutDir);
        var cluster = CommonOptions.Cluster("redis://HOST:PORT of a running cluster to train each run on (default: an in-process silo).");
        var json = CommonOptions.Json("experiment.json");
        var verbose = CommonOptions.Verbose();
        var activationsCommand = new Command("activations", "Train the same model, data, seed and budget once per activation and compare how the conv filters learn.")
        {
            activations, model, data, epochs, maxSteps, trainLimit, testLimit, seed, threads, outDir, cluster, json, verbose,
        };
        activationsCommand.SetAction(parse =>
        {
            var settings = new ExperimentSettings
            {
                Activations = Split(parse.GetValue(activations)!),
                Model = parse.GetValue(model)!,
                Data = parse.GetValue(data)!,
                Epochs = parse.GetValue(epochs),
                MaxSteps = parse.GetValue(maxSteps),
                TrainLimit = parse.GetValue(trainLimit),
                TestLimit = parse.GetValue(testLimit),
                Seed = parse.GetValue(seed),
                Threads = parse.GetValue(threads),
                OutDir = parse.GetValue(outDir)!,
                Cluster = parse.GetValue(cluster),
            };
            var asJson = parse.GetValue(json);
            return CommandRunner.Run(parse.GetValue(verbose), token => Execute(settings, asJson, token));
        });
        return new Command("experiment", "Experiments that compare runs, on a silo in this process or on a running cluster.") { activationsCommand };
    }

    private static string[] Split(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToArray();

    public static int Execute(ExperimentSettings settings, bool asJson, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var console = asJson ? CommandRunner.ErrorConsole() : AnsiConsole.Console;
        if (settings.Activations.Count == 0)
        {
            throw new UserException("--activations: name at least one activation", ExitCodes.Usage);
        }

        var baseSpec = CommonOptions.ResolveModel(settings.Model);
        var outDir = Path.GetFullPath(settings.OutDir);
        var experimentGuard = new RunFolderGuard(outDir);
        Directory.CreateDirectory(outDir);
        var rows = new List<ActivationRow>();
        foreach (var name in settings.Activations)
        {
            cancellation.ThrowIfCancellationRequested();
            var activation = Activation.TryParse(name) ?? throw new UserException($"--activations: unknown activation '{name}'", ExitCodes.Usage);
            var runDir = Path.Combine(outDir, name);
            if (File.Exists(Path.Combine(runDir, "summary.json")))
            {
                console.MarkupLineInterpolated($"[grey]{name}: {runDir} already has summary.json; reusing it[/]");
            }
            else
            {
                // A run refused at start takes back its folder; runs finished before it stay.
                var runGuard = new RunFolderGuard(runDir);
                try
                {
                    Train(settings, baseSpec.WithHiddenActivation(activation), name, runDir, console, cancellation);
                }
                catch (Exception e) when (RunFolderGuard.IsRefusedAtStart(e))
                {
                    runGuard.Rollback();
                    if (rows.Count == 0)
                    {
                        experimentGuard.Rollback();
                    }

                    throw;
                }
            }

            rows.Add(ActivationComparison.Summarize(name, runDir));
        }

        var settingsJson = new JsonObject
        {
            ["model"] = baseSpec.Name,
            ["data"] = settings.Data,
            ["seed"] = settings.Seed,
            ["epochs"] = settings.Epochs,
            ["max_steps"] = settings.MaxSteps,
            ["train_limit"] = settings.TrainLimit,
            ["test_limit"] = settings.TestLimit,
            ["cluster"] = settings.Cluster ?? "in-process silo",
            ["activations"] = new JsonArray(settings.Activations.Select(a => (JsonNode)a).ToArray()),
        };
        var experiment = ActivationComparison.ToJson(settingsJson, rows);
        var text = ActivationComparison.JsonText(experiment);
        AtomicFile.WriteAllText(Path.Combine(outDir, "experiment.json"), text);
        var report = ActivationComparison.WriteReport(Path.Combine(outDir, "report.html"), settingsJson, rows);
        foreach (var table in Tables(rows))
        {
            console.Write(table);
        }

        console.MarkupLine("[grey]mean sparsity: conv outputs exactly zero (=0, relu) or at or below zero (<=0, other activations) at the last measured step; gradient norms: per filter, over the second half of the measured steps[/]");
        console.MarkupLineInterpolated($"wrote {Path.Combine(outDir, "experiment.json")} and {report}");
        if (asJson)
        {
            Console.Out.Write(text);
        }

        return ExitCodes.Success;
    }

    private static void Train(ExperimentSettings settings, ModelSpec spec, string name, string runDir, IAnsiConsole console, CancellationToken cancellation)
    {
        Directory.CreateDirectory(runDir);
        var specPath = Path.Combine(runDir, "experiment-model.json");
        AtomicFile.WriteAllText(specPath, KerasModelWriter.Write(spec) + "\n");
        var train = new TrainSettings
        {
            Model = specPath,
            Data = settings.Data,
            Epochs = settings.Epochs,
            MaxSteps = settings.MaxSteps,
            TrainLimit = settings.TrainLimit,
            TestLimit = settings.TestLimit,
            Seed = settings.Seed,
            Threads = settings.Threads,
            OutDir = runDir,
            Cluster = settings.Cluster,

            // On a shared cluster the job id names the experiment too, so two experiments' relu runs do not meet.
            JobId = settings.Cluster is null ? null : $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetDirectoryName(runDir)!))}-{name}-{settings.Seed}",
        };
        console.MarkupLineInterpolated($"[bold]{name}[/]: training into {runDir}");

        // train prints its progress on the console it is given and, asked for JSON, the summary on standard output:
        // standard output belongs to the experiment, so the summaries go to standard error.
        var stdout = Console.Out;
        Console.SetOut(Console.Error);
        try
        {
            TrainCommand.Execute(train, asJson: true, cancellation);
        }
        finally
        {
            Console.SetOut(stdout);
        }
    }

    /// <summary>The comparison for the terminal: one row per activation, then the gradient-norm spread of every layer.</summary>
    internal static IEnumerable<Table> Tables(IReadOnlyList<ActivationRow> rows)
    {
        var main = new Table().AddColumns("activation", "test accuracy", "time (s)", "mean sparsity", "dead filters");
        foreach (var r in rows)
        {
            main.AddRow(
                r.Activation,
                r.TestAccuracy is { } a ? Inv($"{a:0.0000}") : "n/a",
                r.WallSeconds is { } w ? Inv($"{w:0.0}") : "n/a",
                Percent(r.MeanSparsity) + (r.SparsityMetric == "sparsity" ? " (=0)" : " (<=0)"),
                Inv($"{r.DeadFilters}/{r.ConvFilters} ({Percent(r.DeadFraction)})"));
        }

        yield return main;
        var gradients = new Table().AddColumns("activation", "layer", "grad norm p10", "median", "p90");
        foreach (var r in rows)
        {
            foreach (var g in r.Gradients)
            {
                gradients.AddRow(r.Activation, g.Layer, G(g.P10), G(g.Median), G(g.P90));
            }
        }

        yield return gradients;
    }
}
