using System.CommandLine;
using ClusterConv.Cli.Hosting;
using ClusterConv.Cli.Output;
using ClusterConv.Cli.Training;
using ClusterConv.Cluster;
using ClusterConv.Engine;
using ClusterConv.Engine.Specs;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;

namespace ClusterConv.Cli.Commands;

/// <summary>`clusterconv status [JOB]`, `attach JOB`, `cancel JOB`: jobs on a Redis-clustered cluster.</summary>
internal static class JobCommands
{
    public static Command Status()
    {
        var job = new Argument<string?>("JOB") { Description = "Job id (default: every job).", Arity = ArgumentArity.ZeroOrOne };
        var cluster = ClusterOption();
        var passwordFile = RedisAddress.PasswordFileOption();
        var verbose = CommonOptions.Verbose();
        var command = new Command("status", "Show the jobs of a cluster, or one job.") { job, cluster, passwordFile, verbose };
        var security = new SecurityOptions();
        security.AddTo(command);
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(verbose), _ => WithClient(Address(parse.GetValue(cluster)!, parse.GetValue(passwordFile)), security.Resolve(parse), async client =>
        {
            var ids = parse.GetValue(job) is { } id ? [id] : await client.GetGrain<IJobRegistryGrain>(0).ListAsync();
            foreach (var jobId in ids)
            {
                var s = await client.GetGrain<IJobGrain>(jobId).GetStatusAsync();
                Console.WriteLine($"{s.JobId}: {s.Phase.ToString().ToLowerInvariant()} step {s.Step}/{s.TotalSteps} epoch {s.Epoch + 1} mode {s.Mode} workers {s.Workers} ps_shards {s.PsShards} silos {s.Silos} restarts {s.Restarts} steps_recomputed {s.StepsRecomputed} checkpoint {s.LastCheckpointStep}{(s.Error is null ? string.Empty : $" error: {s.Error}")}");
            }

            if (ids.Length == 0)
            {
                Console.WriteLine("no jobs");
            }

            return ExitCodes.Success;
        })));
        return command;
    }

    public static Command Attach()
    {
        var job = new Argument<string>("JOB") { Description = "Job id." };
        var cluster = ClusterOption();
        var passwordFile = RedisAddress.PasswordFileOption();
        var outDir = new Option<string?>("--out") { Description = "Run folder to write (default: runs/JOB)." };
        var verbose = CommonOptions.Verbose();
        var command = new Command("attach", "Follow a job's progress and write its run folder when it ends.") { job, cluster, passwordFile, outDir, verbose };
        var security = new SecurityOptions();
        security.AddTo(command);
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(verbose), token => WithClient(Address(parse.GetValue(cluster)!, parse.GetValue(passwordFile)), security.Resolve(parse), async client =>
        {
            var jobId = parse.GetValue(job)!;
            var grain = client.GetGrain<IJobGrain>(jobId);
            var spec = await grain.GetSpecAsync() ?? throw new UserException($"job '{jobId}' is not known to the cluster");
            var modelSpec = KerasModelReader.Read(spec.ModelJson, $"job {jobId}");
            var model = new Model(modelSpec);
            var dir = Path.GetFullPath(parse.GetValue(outDir) ?? Path.Combine("runs", jobId));
            Directory.CreateDirectory(dir);
            var settings = new TrainSettings
            {
                Workers = spec.Workers, Mode = JobGrain.ModeName(spec), Data = spec.Data, Epochs = spec.Epochs, BatchSize = spec.BatchSize, Seed = spec.Seed, OutDir = dir,
                Optimizer = spec.Optimizer, LearningRate = spec.LearningRate, Schedule = spec.Schedule, Threads = spec.ThreadsPerWorker * spec.Workers,
                TrainLimit = spec.TrainLimit, TestLimit = spec.TestLimit, MaxSteps = spec.MaxSteps, MicroBatches = spec.MicroBatches, PsShards = spec.PsShards,
                BackupWorkers = spec.BackupWorkers, CheckpointEvery = spec.CheckpointEvery, JobId = jobId,
            };
            var console = AnsiConsole.Console;
            TrainResult result;
            using (var metrics = new MetricsLog(Path.Combine(dir, "metrics.jsonl")))
            {
                result = TrainingDisplay.Run(console, display => new ClusterTrainer(settings, model, null, display).FollowAsync(client, grain, spec, metrics, token, detachOnCancel: true, runDirectory: dir).GetAwaiter().GetResult());
            }

            TrainCommand.WriteRunFiles(settings, modelSpec, model, result, await grain.GetStatusAsync(), dir);
            var last = result.Epochs.Count > 0 ? result.Epochs[^1] : null;
            console.MarkupLineInterpolated($"job {jobId} done: test accuracy [green]{last?.TestAccuracy:F4}[/], weights_sha256 {result.WeightsSha256}; wrote {Path.Combine(dir, "summary.json")}");
            return ExitCodes.Success;
        })));
        return command;
    }

    public static Command Cancel()
    {
        var job = new Argument<string>("JOB") { Description = "Job id." };
        var cluster = ClusterOption();
        var passwordFile = RedisAddress.PasswordFileOption();
        var verbose = CommonOptions.Verbose();
        var command = new Command("cancel", "Stop a job.") { job, cluster, passwordFile, verbose };
        var security = new SecurityOptions();
        security.AddTo(command);
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(verbose), _ => WithClient(Address(parse.GetValue(cluster)!, parse.GetValue(passwordFile)), security.Resolve(parse), async client =>
        {
            var s = await client.GetGrain<IJobGrain>(parse.GetValue(job)!).CancelAsync();
            Console.WriteLine($"{s.JobId}: cancel requested at step {s.Step}/{s.TotalSteps}");
            return ExitCodes.Success;
        })));
        return command;
    }

    private static Option<string?> ClusterOption()
    {
        var cluster = CommonOptions.Cluster("redis://HOST:PORT (rediss:// for TLS) of the cluster.");
        cluster.Required = true;
        return cluster;
    }

    private static string Address(string cluster, string? passwordFile) =>
        RedisAddress.Resolve(cluster, passwordFile, Environment.GetEnvironmentVariable(RedisAddress.PasswordVariable)).Connect;

    private static int WithClient(string cluster, ClusterSecurity security, Func<IClusterClient, Task<int>> body) => Task.Run(async () =>
    {
        using var host = await ClusterTrainer.StartClientAsync(cluster, security: security);
        try
        {
            return await body(host.Services.GetRequiredService<IClusterClient>());
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }).GetAwaiter().GetResult();
}
