using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClusterConv.Cli.Output;
using ClusterConv.Cli.Training;
using ClusterConv.Engine;
using ClusterConv.Engine.Specs;
using ClusterConv.Data;
using ClusterConv.Engine.Checkpoints;
using Spectre.Console;

namespace ClusterConv.Cli.Commands;

/// <summary>`clusterconv train`: trains a model and writes a run folder (summary.json, metrics.jsonl).</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var defaults = new TrainSettings();
        var model = new Option<string>("--model") { Description = "A built-in model (keras-cnn, tf-cnn, lenet5) or a Keras JSON file.", DefaultValueFactory = _ => defaults.Model };
        var data = new Option<string>("--data") { Description = "fashion-mnist (found or downloaded), synthetic, or a folder of IDX files (MNIST format).", DefaultValueFactory = _ => defaults.Data };
        var epochs = CommonOptions.Positive("--epochs", "Passes over the training data.", defaults.Epochs);
        var batchSize = CommonOptions.Positive("--batch-size", "Samples per step.", defaults.BatchSize);
        var optimizer = new Option<string>("--optimizer") { Description = "sgd, adam or adamw.", DefaultValueFactory = _ => defaults.Optimizer };
        optimizer.AcceptOnlyFromAmong("sgd", "adam", "adamw");
        var lr = new Option<float?>("--lr") { Description = "Learning rate (default: 0.002 for adam and adamw, 0.01 for sgd)." };
        lr.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<float?>() is { } v && !(v > 0f && float.IsFinite(v)))
            {
                r.AddError($"--lr must be a positive number, got {v}");
            }
        });
        var schedule = new Option<string>("--schedule") { Description = "Learning-rate schedule: constant, step or cosine.", DefaultValueFactory = _ => defaults.Schedule };
        schedule.AcceptOnlyFromAmong("constant", "step", "cosine");
        var seed = new Option<ulong>("--seed") { Description = "Seed of initialization, shuffling, dropout and augmentation.", DefaultValueFactory = _ => defaults.Seed };
        var threads = CommonOptions.Threads();
        var trainLimit = CommonOptions.OptionalPositive("--train-limit", "Use only the first N training samples (quick runs).");
        var testLimit = CommonOptions.OptionalPositive("--test-limit", "Evaluate on only the first N test samples.");
        var maxSteps = CommonOptions.OptionalPositive("--max-steps", "Stop after N steps.");
        var outDir = new Option<string>("--out") { Description = "Run folder to write summary.json and metrics.jsonl into.", DefaultValueFactory = _ => defaults.OutDir };
        var statsEvery = new Option<int>("--stats-every") { Description = "Per-filter statistics every N steps (0: never).", DefaultValueFactory = _ => defaults.StatsEvery };
        statsEvery.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 0)
            {
                r.AddError("--stats-every must be 0 or more");
            }
        });
        var logEvery = CommonOptions.Positive("--log-every", "A step line in metrics.jsonl every N steps.", defaults.LogEvery);
        var deadWindow = CommonOptions.Positive("--dead-window", "Steps without any positive output before a filter counts as dead.", defaults.DeadWindow);
        var augment = new Option<bool>("--augment") { Description = "Random shifts and horizontal flips of training images." };
        var json = CommonOptions.Json("summary.json");
        var verbose = CommonOptions.Verbose();

        var command = new Command("train", "Train a model and write a run folder.")
        {
            model, data, epochs, batchSize, optimizer, lr, schedule, seed, threads, trainLimit, testLimit, maxSteps, outDir, statsEvery, logEvery, deadWindow, augment, json, verbose,
        };
        command.SetAction(parse =>
        {
            var settings = new TrainSettings
            {
                Model = parse.GetValue(model)!,
                Data = parse.GetValue(data)!,
                Epochs = parse.GetValue(epochs),
                BatchSize = parse.GetValue(batchSize),
                Optimizer = parse.GetValue(optimizer)!,
                LearningRate = parse.GetValue(lr),
                Schedule = parse.GetValue(schedule)!,
                Seed = parse.GetValue(seed),
                Threads = parse.GetValue(threads),
                TrainLimit = parse.GetValue(trainLimit),
                TestLimit = parse.GetValue(testLimit),
                MaxSteps = parse.GetValue(maxSteps),
                OutDir = parse.GetValue(outDir)!,
                StatsEvery = parse.GetValue(statsEvery),
                LogEvery = parse.GetValue(logEvery),
                DeadWindow = parse.GetValue(deadWindow),
                Augment = parse.GetValue(augment),
            };
            var asJson = parse.GetValue(json);
            return CommandRunner.Run(parse.GetValue(verbose), token => Execute(settings, asJson, token));
        });
        return command;
    }

    public static int Execute(TrainSettings settings, bool asJson, CancellationToken cancellation)
    {
        var console = asJson ? CommandRunner.ErrorConsole() : AnsiConsole.Console;
        var spec = ModelCatalog.Resolve(settings.Model);
        var model = new Model(spec);
        var data = DataSources.Load(settings.Data, settings.Seed, console);
        if (new SampleShape(1, data.Train.Height, data.Train.Width) != model.InputShape)
        {
            throw new UserException($"--model {settings.Model} expects input {model.InputShape} but --data {settings.Data} has images of 1x{data.Train.Height}x{data.Train.Width}");
        }

        if (model.Classes < data.Train.ClassCount)
        {
            throw new UserException($"--model {settings.Model} outputs {model.Classes} classes but --data {settings.Data} has {data.Train.ClassCount}");
        }

        var outDir = Path.GetFullPath(settings.OutDir);
        Directory.CreateDirectory(outDir);
        console.MarkupLineInterpolated($"training [bold]{spec.Name}[/] ({model.ParameterCount:N0} parameters) on [bold]{data.Train.Name}[/] ({data.Train.Count:N0} train, {data.Test.Count:N0} test) from {data.Source}; {settings.Threads} threads; run folder {outDir}");

        TrainResult result;
        using (var metrics = new MetricsLog(Path.Combine(outDir, "metrics.jsonl")))
        {
            result = TrainingDisplay.Run(console, display => new LocalTrainer(settings, model, data, display).Run(metrics, cancellation));
        }

        ModelCheckpoint.Capture(model, result.Steps, result.Epochs.Count, InputNormalization.Scale, settings.Optimizer).SaveFile(Path.Combine(outDir, "model" + ModelCheckpoint.FileExtension));
        AtomicFile.WriteAllText(Path.Combine(outDir, "model.json"), KerasModelWriter.Write(spec) + "\n");
        var summary = Summary(settings, spec, data, result);
        var text = summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
        AtomicFile.WriteAllText(Path.Combine(outDir, "summary.json"), text);
        var last = result.Epochs.Count > 0 ? result.Epochs[^1] : null;
        console.MarkupLineInterpolated($"done: test accuracy [green]{last?.TestAccuracy:F4}[/], {result.TrainSamples / Math.Max(result.TrainSeconds, 1e-9):F0} samples/s, {result.WallSeconds:F1} s; wrote {Path.Combine(outDir, "summary.json")}");
        if (asJson)
        {
            Console.Out.Write(text);
        }

        return ExitCodes.Success;
    }

    private static string DatasetName(string data) => data is DataSources.FashionMnistName or DataSources.SyntheticName ? data : Path.GetFullPath(data);

    private static JsonObject Summary(TrainSettings s, ModelSpec spec, Data.DataSplits data, TrainResult r)
    {
        var last = r.Epochs.Count > 0 ? r.Epochs[^1] : null;
        return new JsonObject
        {
            ["model"] = spec.Name,
            ["dataset"] = DatasetName(s.Data),
            ["epochs"] = r.Epochs.Count,
            ["batch_size"] = s.BatchSize,
            ["seed"] = s.Seed,
            ["optimizer"] = s.Optimizer,
            ["learning_rate"] = s.BaseLearningRate,
            ["schedule"] = s.Schedule,
            ["threads"] = s.Threads,
            ["train_samples"] = r.TrainSamples,
            ["steps"] = r.Steps,
            ["parameters"] = r.ParameterCount,
            ["test_accuracy"] = last?.TestAccuracy,
            ["test_loss"] = last?.TestLoss,
            ["train_accuracy"] = last?.TrainAccuracy,
            ["train_loss"] = last?.TrainLoss,
            ["wall_seconds"] = Math.Round(r.WallSeconds, 3),
            ["train_seconds"] = Math.Round(r.TrainSeconds, 3),
            ["samples_per_second"] = Math.Round(r.TrainSamples / Math.Max(r.TrainSeconds, 1e-9), 1),
            ["weights_sha256"] = r.WeightsSha256,
        };
    }
}
