using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClusterConv.Cli.Hosting;
using ClusterConv.Cli.Output;
using ClusterConv.Cli.Training;
using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.IO;
using ClusterConv.Engine.Specs;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Spectre.Console;

namespace ClusterConv.Cli.Commands;

/// <summary>`clusterconv train`: trains a model and writes a run folder (summary.json, metrics.jsonl).</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var defaults = new TrainSettings();
        var model = CommonOptions.Model("A built-in model (keras-cnn, tf-cnn, lenet5) or a Keras JSON file.", defaults.Model);
        var data = CommonOptions.Data("fashion-mnist (found or downloaded), synthetic, or a folder of IDX files (MNIST format).", defaults.Data);
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
        var seed = CommonOptions.Seed("Seed of initialization, shuffling, dropout and augmentation.", defaults.Seed);
        var threads = CommonOptions.Threads();
        var trainLimit = CommonOptions.TrainLimit("Use only the first N training samples (quick runs).");
        var testLimit = CommonOptions.TestLimit("Evaluate on only the first N test samples.");
        var maxSteps = CommonOptions.MaxSteps("Stop after N steps.");
        var outDir = CommonOptions.OutDir("Run folder to write summary.json and metrics.jsonl into.", defaults.OutDir);
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
        var workers = new Option<int>("--workers") { Description = "Worker grains on an Orleans cluster (default: one per core); 0 trains in this process with the engine alone.", DefaultValueFactory = _ => defaults.Workers };
        workers.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 0)
            {
                r.AddError("--workers must be 0 or more");
            }
        });
        var microBatches = CommonOptions.OptionalPositive("--micro-batches", "Fixed micro-batches (and data shards) per global batch (default: max(4, workers)); the same value gives the same weights for any worker count dividing it.");
        var mode = new Option<string>("--mode") { Description = "Consistency: bsp (synchronous), ssp:K (no worker more than K steps ahead) or async.", DefaultValueFactory = _ => defaults.Mode };
        mode.Validators.Add(r =>
        {
            var v = r.GetValueOrDefault<string>();
            if (v is not ("bsp" or "async") && !(v is not null && v.StartsWith("ssp:", StringComparison.Ordinal) && int.TryParse(v.AsSpan(4), System.Globalization.CultureInfo.InvariantCulture, out var k) && k >= 0))
            {
                r.AddError($"--mode must be bsp, ssp:K (K >= 0) or async, got '{v}'");
            }
        });
        var psShards = CommonOptions.OptionalPositive("--ps-shards", "Parameter-server shards (default: one per 512 KiB of parameters, 1 to 8).");
        var backupWorkers = new Option<int>("--backup-workers") { Description = "bsp: apply each step with the first N-b workers' gradients and drop the rest." };
        backupWorkers.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 0)
            {
                r.AddError("--backup-workers must be 0 or more");
            }
        });
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Checkpoint the parameter servers every N steps (0: never).", DefaultValueFactory = _ => defaults.CheckpointEvery };
        checkpointEvery.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 0)
            {
                r.AddError("--checkpoint-every must be 0 or more");
            }
        });
        var resume = new Option<bool>("--resume") { Description = "Continue the job (same run folder or --job-id) from its last checkpoint." };
        var cluster = CommonOptions.Cluster("redis://HOST:PORT of a running cluster to submit to (default: an in-process silo).");
        var passwordFile = RedisAddress.PasswordFileOption();
        var (metricsPort, metricsHost) = MetricsListen.Options();
        var jobId = new Option<string?>("--job-id") { Description = "Job id (default: run folder name and seed)." };
        var compression = new Option<string>("--compression") { Description = "Gradient compression on the wire: none, fp16 or bf16 (with error feedback).", DefaultValueFactory = _ => defaults.Compression };
        compression.AcceptOnlyFromAmong("none", "fp16", "bf16");
        var maxRefusals = new Option<int>("--max-nonfinite-refusals") { Description = "Cluster: non-finite gradients the parameter servers may refuse (each skips its step) before the run stops as diverged (exit 3); 0 stops at the first.", DefaultValueFactory = _ => defaults.MaxNonFiniteRefusals };
        maxRefusals.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 0)
            {
                r.AddError($"--max-nonfinite-refusals must be 0 or more, got {r.GetValueOrDefault<int>()}");
            }
        });
        var divergenceFactor = new Option<double>("--divergence-factor") { Description = "Cluster, bsp: report a worker whose gradient norm exceeds this many times the median of the others' (or of its own recent steps with fewer than 3 workers); 0: off.", DefaultValueFactory = _ => defaults.DivergenceFactor };
        divergenceFactor.Validators.Add(r =>
        {
            var v = r.GetValueOrDefault<double>();
            if (!(v == 0 || (v > 1 && double.IsFinite(v))))
            {
                r.AddError($"--divergence-factor must be 0 (off) or a number above 1, got {v}");
            }
        });
        var maxParameters = CommonOptions.MaxParameters();
        var json = CommonOptions.Json("summary.json");
        var verbose = CommonOptions.Verbose();

        var command = new Command("train", "Train a model and write a run folder.")
        {
            model, data, epochs, batchSize, optimizer, lr, schedule, seed, threads, trainLimit, testLimit, maxSteps, outDir, statsEvery, logEvery, deadWindow, augment,
            workers, microBatches, mode, psShards, backupWorkers, checkpointEvery, resume, cluster, passwordFile, jobId, compression, maxRefusals, divergenceFactor, metricsPort, metricsHost, maxParameters, json, verbose,
        };
        var security = new SecurityOptions();
        security.AddTo(command);
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
                Workers = parse.GetValue(workers),
                MicroBatches = parse.GetValue(microBatches),
                Mode = parse.GetValue(mode)!,
                PsShards = parse.GetValue(psShards),
                BackupWorkers = parse.GetValue(backupWorkers),
                CheckpointEvery = parse.GetValue(checkpointEvery),
                Resume = parse.GetValue(resume),
                Cluster = parse.GetValue(cluster),
                JobId = parse.GetValue(jobId),
                Compression = parse.GetValue(compression)!,
                MaxNonFiniteRefusals = parse.GetValue(maxRefusals),
                DivergenceFactor = parse.GetValue(divergenceFactor),
            };
            var asJson = parse.GetValue(json);
            var metrics = MetricsListen.From(parse.GetValue(metricsPort), parse.GetValue(metricsHost));
            var limit = parse.GetValue(maxParameters);
            return CommandRunner.Run(parse.GetValue(verbose), token =>
            {
                // The client connects with the password; what is printed masks it (RedisAddress.Mask).
                var connect = settings.Cluster is { } address
                    ? settings with { Cluster = RedisAddress.Resolve(address, parse.GetValue(passwordFile), Environment.GetEnvironmentVariable(RedisAddress.PasswordVariable)).Connect }
                    : settings;
                return Execute(connect, asJson, token, metrics, limit, settings.Cluster is null ? null : security.Resolve(parse));
            });
        });
        return command;
    }

    public static int Execute(TrainSettings settings, bool asJson, CancellationToken cancellation, MetricsListen? metricsListen = null, long maxParameters = CommonOptions.DefaultMaxParameters, ClusterSecurity? security = null)
    {
        var console = asJson ? CommandRunner.ErrorConsole() : AnsiConsole.Console;
        var spec = CommonOptions.ResolveModel(settings.Model, maxParameters);
        var model = new Model(spec);
        // A client of a remote cluster leaves the data to the silos; here it is loaded and checked.
        DataSplits? data = null;
        if (settings.Cluster is null)
        {
            data = DataSources.Load(settings.Data, settings.Seed, console);
            if (new SampleShape(1, data.Train.Height, data.Train.Width) != model.InputShape)
            {
                throw new UserException($"--model {settings.Model} expects input {model.InputShape} but --data {settings.Data} has images of 1x{data.Train.Height}x{data.Train.Width}");
            }

            if (model.Classes < data.Train.ClassCount)
            {
                throw new UserException($"--model {settings.Model} outputs {model.Classes} classes but --data {settings.Data} has {data.Train.ClassCount}");
            }
        }

        var outDir = Path.GetFullPath(settings.OutDir);
        if (settings.Workers != 0)
        {
            // The job's own checks, before anything is written: a refused job leaves no run folder behind.
            try
            {
                Cluster.JobGrain.Validate(new ClusterTrainer(settings, model, data, NoDisplay.Instance).Spec(outDir));
            }
            catch (ArgumentException e)
            {
                throw new UserException(e.Message, ExitCodes.Usage);
            }
        }

        var guard = new RunFolderGuard(outDir);
        try
        {
            return Run(settings, asJson, cancellation, metricsListen, console, spec, model, data, outDir, security);
        }
        catch (Exception e) when (RunFolderGuard.IsRefusedAtStart(e))
        {
            // E.g. an unreachable --cluster: what this run wrote (step-0.ckpt, metrics.jsonl) would look like a run.
            guard.Rollback();
            throw;
        }
    }

    private static int Run(TrainSettings settings, bool asJson, CancellationToken cancellation, MetricsListen? metricsListen, IAnsiConsole console, ModelSpec spec, Model model, DataSplits? data, string outDir, ClusterSecurity? security)
    {
        Directory.CreateDirectory(outDir);
        var where = settings.Workers == 0
            ? $"engine only, {settings.Threads} threads"
            : $"{settings.Workers} workers ({settings.Mode}) on {(settings.Cluster is { } c ? RedisAddress.Mask(c) : "an in-process silo")}, {settings.Threads} threads";
        var source = data is null ? settings.Data : $"{data.Train.Name} ({data.Train.Count:N0} train, {data.Test.Count:N0} test) from {data.Source}";
        console.MarkupLineInterpolated($"training [bold]{spec.Name}[/] ({model.ParameterCount:N0} parameters) on [bold]{source}[/]; {where}; run folder {outDir}");

        // The initial filters, for the report: every mode initializes from the seed exactly as here.
        var initialPath = Inference.RunCheckpoints.StepPath(outDir, 0);
        if (!settings.Resume || !File.Exists(initialPath))
        {
            var initial = new Model(spec);
            initial.Initialize(settings.Seed);
            ModelCheckpoint.Capture(initial, 0, 0, InputNormalization.Scale, settings.Optimizer).SaveFile(initialPath);
        }

        TrainResult result;
        ClusterTrainer? clusterTrainer = null;
        using (var metrics = new MetricsLog(Path.Combine(outDir, "metrics.jsonl")))
        {
            if (settings.Workers == 0)
            {
                if (metricsListen is not null)
                {
                    // The metrics come from the grains; the engine alone records none.
                    console.MarkupLine("note: --metrics-port is ignored when training engine-only (--workers 0)");
                }

                result = TrainingDisplay.Run(console, display => new LocalTrainer(settings, model, data!, display).Run(metrics, cancellation, outDir));
            }
            else
            {
                result = TrainingDisplay.Run(console, display =>
                {
                    clusterTrainer = new ClusterTrainer(settings, model, data, display);
                    clusterTrainer.ConfigureServices = TrainTelemetry(clusterTrainer.Spec(outDir).JobId, settings.Cluster is null, metricsListen);
                    clusterTrainer.Security = security;
                    return clusterTrainer.RunAsync(metrics, outDir, cancellation).GetAwaiter().GetResult();
                });
            }
        }

        var text = WriteRunFiles(settings, spec, model, result, clusterTrainer?.FinalStatus, outDir);
        var last = result.Epochs.Count > 0 ? result.Epochs[^1] : null;
        console.MarkupLineInterpolated($"done: test accuracy [green]{last?.TestAccuracy:F4}[/], {result.TrainSamples / Math.Max(result.TrainSeconds, 1e-9):F0} samples/s, {result.WallSeconds:F1} s; wrote {Path.Combine(outDir, "summary.json")}");
        if (asJson)
        {
            Console.Out.Write(text);
        }

        return ExitCodes.Success;
    }

    /// <summary>For building a job spec before training starts; nothing is shown.</summary>
    private sealed class NoDisplay : ITrainingObserver
    {
        public static readonly NoDisplay Instance = new();

        public void EpochStarted(int epoch, int epochs, long stepsInEpoch)
        {
        }

        public void StepCompleted(int epoch, long stepInEpoch, double loss, double samplesPerSecond)
        {
        }

        public void EpochCompleted(EpochResult result)
        {
        }
    }

    /// <summary>Telemetry of the embedded silo ("train-JOB" is its name and service.instance.id) or of the client.</summary>
    private static Action<IServiceCollection> TrainTelemetry(string jobId, bool embedded, MetricsListen? listen) => services =>
    {
        var instance = $"train-{jobId}";
        if (embedded)
        {
            services.Configure<SiloOptions>(o => o.SiloName = instance);
        }

        HostTelemetry.Add(services, listen, new TelemetryIdentity(instance, embedded ? instance : null, jobId), embedded ? MetricsEndpoint.SiloHealth : MetricsEndpoint.ClientHealth);
    };

    private static string DatasetName(string data) => data is DataSources.FashionMnistName or DataSources.SyntheticName ? data : Path.GetFullPath(data);

    /// <summary>
    /// The files a finished run leaves beside metrics.jsonl: model.ckpt (the final weights), model.json and summary.json
    /// (returned as text); `train` and `attach` both end with it.
    /// </summary>
    internal static string WriteRunFiles(TrainSettings settings, ModelSpec spec, Model model, TrainResult result, Cluster.JobStatus? job, string outDir)
    {
        ModelCheckpoint.Capture(model, result.Steps, result.Epochs.Count, InputNormalization.Scale, settings.Optimizer).SaveFile(Path.Combine(outDir, "model" + ModelCheckpoint.FileExtension));
        AtomicFile.WriteAllText(Path.Combine(outDir, "model.json"), KerasModelWriter.Write(spec) + "\n");
        var text = Summary(settings, spec, result, job).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
        AtomicFile.WriteAllText(Path.Combine(outDir, "summary.json"), text);
        return text;
    }

    private static JsonObject Summary(TrainSettings s, ModelSpec spec, TrainResult r, Cluster.JobStatus? job)
    {
        var last = r.Epochs.Count > 0 ? r.Epochs[^1] : null;
        var summary = new JsonObject
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
            ["median_step_seconds"] = r.MedianStepSeconds > 0 ? Math.Round(r.MedianStepSeconds, 6) : null,
            ["median_step_samples_per_second"] = r.MedianStepSeconds > 0 ? Math.Round(s.BatchSize / r.MedianStepSeconds, 1) : null,
            ["weights_sha256"] = r.WeightsSha256,
            ["workers"] = s.Workers,
            ["silos"] = job?.Silos ?? 0,
            ["mode"] = s.Workers == 0 ? "local" : s.Mode,
            ["ps_shards"] = job?.PsShards ?? 0,
            ["micro_batches"] = s.Workers == 0 ? null : s.EffectiveMicroBatches,
            ["bytes_moved"] = job?.BytesMoved ?? 0,
            ["bytes_per_step"] = job is null || r.Steps == 0 ? 0 : job.BytesMoved / r.Steps,
            ["restarts"] = job?.Restarts ?? 0,
            ["rebalances"] = job?.Rebalances ?? 0,
            ["steps_recomputed"] = job?.StepsRecomputed ?? 0,
            ["dropped_contributions"] = job?.DroppedContributions ?? 0,
            ["nonfinite_refusals"] = job?.NonFiniteRefusals ?? 0,
            ["steps_skipped"] = job?.StepsSkipped ?? 0,
            ["gradient_outliers"] = job?.GradientOutliers ?? 0,
            ["weights_mismatches"] = job?.WeightsMismatches ?? 0,
            ["divergent_workers"] = new JsonArray((job?.DivergentWorkers ?? []).Select(w => (JsonNode?)MetricsLog.WorkerName(w)).ToArray()),
        };
        if (job is not null)
        {
            summary["job_id"] = job.JobId;
        }

        return summary;
    }
}
