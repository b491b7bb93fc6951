using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using ClusterConv.Cli.Inference;
using ClusterConv.Cli.Output;
using ClusterConv.Cluster;
using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.IO;
using ClusterConv.Engine.Specs;
using ClusterConv.Engine.Statistics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ClusterConv.Cli.Training;

/// <summary>
/// Trains on an Orleans cluster: in embedded mode it starts a silo in this process (localhost clustering, checkpoint
/// files in the run folder), otherwise it connects as a client to a Redis-clustered cluster. Either way it submits
/// the job, follows its events into metrics.jsonl and the display, saves the weights at epoch ends into
/// checkpoints/step-N.ckpt, and reads the final weights.
/// </summary>
public sealed class ClusterTrainer
{
    private readonly TrainSettings settings;
    private readonly Model model;
    private readonly DataSplits? data;
    private readonly ITrainingObserver observer;

    public ClusterTrainer(TrainSettings settings, Model model, DataSplits? data, ITrainingObserver observer)
    {
        this.settings = settings;
        this.model = model;
        this.data = data;
        this.observer = observer;
    }

    /// <summary>Adds telemetry and the metrics listener to the embedded silo's or the client's host (Hosting/HostTelemetry).</summary>
    public Action<IServiceCollection>? ConfigureServices { get; set; }

    /// <summary>Redis CA and cluster TLS of a client (--redis-ca, --tls-*); null: from the CLUSTERCONV_* variables.</summary>
    public Hosting.ClusterSecurity? Security { get; set; }

    /// <summary>What the cluster reported besides the engine's numbers (summary.json fields).</summary>
    public JobStatus? FinalStatus { get; private set; }

    public JobSpec Spec(string outDir)
    {
        var (mode, staleness) = ParseMode(settings.Mode);
        var jobId = settings.JobId ?? $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(outDir))}-{settings.Seed}";
        var workers = Math.Max(1, settings.Workers);
        return new JobSpec
        {
            JobId = jobId,
            ModelJson = KerasModelWriter.Write(model.Spec),
            Data = settings.Data is DataSources.FashionMnistName or DataSources.SyntheticName ? settings.Data : Path.GetFullPath(settings.Data),
            SyntheticTrain = DataSources.SyntheticTrain,
            SyntheticTest = DataSources.SyntheticTest,
            TrainLimit = settings.TrainLimit,
            TestLimit = settings.TestLimit,
            Epochs = settings.Epochs,
            BatchSize = settings.BatchSize,
            MicroBatches = settings.EffectiveMicroBatches,
            Workers = workers,
            PsShards = settings.PsShards ?? JobPlan.DefaultPsShards(model.TrainableParameterCount),
            Mode = mode,
            Staleness = staleness,
            BackupWorkers = settings.BackupWorkers,
            Optimizer = settings.Optimizer,
            LearningRate = settings.BaseLearningRate,
            Schedule = settings.Schedule,
            Seed = settings.Seed,
            MaxSteps = settings.MaxSteps,
            StatsEvery = settings.StatsEvery,
            LogEvery = settings.LogEvery,
            DeadWindow = settings.DeadWindow,
            Augment = settings.Augment,
            CheckpointEvery = settings.CheckpointEvery,
            Resume = settings.Resume,
            ThreadsPerWorker = Math.Max(1, settings.Threads / workers),
            Compression = settings.Compression switch
            {
                "fp16" => GradientCompression.Fp16,
                "bf16" => GradientCompression.Bf16,
                _ => GradientCompression.None,
            },
            MaxNonFiniteRefusals = settings.MaxNonFiniteRefusals,
            DivergenceFactor = settings.DivergenceFactor,
        };
    }

    public static (ConsistencyMode Mode, int Staleness) ParseMode(string mode)
    {
        ArgumentNullException.ThrowIfNull(mode);
        if (mode == "bsp")
        {
            return (ConsistencyMode.Bsp, 0);
        }

        if (mode == "async")
        {
            return (ConsistencyMode.Async, 0);
        }

        if (mode.StartsWith("ssp:", StringComparison.Ordinal) && int.TryParse(mode.AsSpan(4), System.Globalization.CultureInfo.InvariantCulture, out var k) && k >= 0)
        {
            return (ConsistencyMode.Ssp, k);
        }

        throw new UserException($"--mode must be bsp, ssp:K (K >= 0) or async, got '{mode}'");
    }

    public async Task<TrainResult> RunAsync(MetricsLog metrics, string outDir, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var spec = Spec(outDir);
        try
        {
            JobGrain.Validate(spec);
        }
        catch (ArgumentException e)
        {
            throw new UserException(e.Message);
        }

        using var host = settings.Cluster is null ? await StartEmbeddedSiloAsync(Path.Combine(outDir, "checkpoints"), ConfigureServices) : await StartClientAsync(settings.Cluster, ConfigureServices, Security);
        var client = host.Services.GetRequiredService<IClusterClient>();
        if (data is not null && settings.Cluster is null)
        {
            host.Services.GetRequiredService<TrainingDataCache>().Preload(spec, data);
        }

        try
        {
            var job = client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var result = await FollowAsync(client, job, spec, metrics, cancellation, detachOnCancel: settings.Cluster is not null, runDirectory: outDir);
            return result;
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>How long one wait for new events may take: the job grain answers as soon as there are any.</summary>
    private static readonly TimeSpan EventWait = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Follows the job's events (a long poll: <see cref="IJobGrain.WaitForEventsAsync"/>) into metrics.jsonl (a step line, then one worker_step line per worker that took part)
    /// and the display until it ends; reads the final weights into the model.
    /// </summary>
    /// <param name="runDirectory">Run folder to save checkpoints/step-N.ckpt into (see <see cref="StepSnapshots"/>), or null.</param>
    public async Task<TrainResult> FollowAsync(IClusterClient client, IJobGrain job, JobSpec spec, MetricsLog metrics, CancellationToken cancellation, bool detachOnCancel, string? runDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(metrics);
        var epochs = new List<EpochResult>();
        var incarnation = string.Empty;
        long after = -1;
        var startedEpoch = -1;
        long stepsInEpoch = 0;
        var snapshots = runDirectory is not null ? new StepSnapshots(job, spec, model.Spec, runDirectory) : null;
        JobStatus status;
        var cancelSent = false;
        while (true)
        {
            if (cancellation.IsCancellationRequested && !cancelSent)
            {
                if (detachOnCancel)
                {
                    // The job belongs to the cluster: leaving does not stop it (clusterconv cancel does).
                    cancellation.ThrowIfCancellationRequested();
                }

                await job.CancelAsync();
                cancelSent = true;
            }

            JobEvents batch;
            try
            {
                // Ctrl-C ends the wait at once; the next turn sends the cancel (or leaves, when detaching). Bounded: a call
                // that reached the job grain's silo just before it died is otherwise only answered by Orleans' 30 s
                // response timeout; a new call reaches the reactivated job grain.
                batch = await WithRetryAsync(() => job.WaitForEventsAsync(incarnation, after, EventWait).WaitAsync(PollTimeout), cancellation, detachOnCancel).WaitAsync(cancelSent ? CancellationToken.None : cancellation);
            }
            catch (OperationCanceledException) when (!cancelSent && cancellation.IsCancellationRequested)
            {
                continue;
            }

            if (batch.Incarnation != incarnation)
            {
                incarnation = batch.Incarnation;
                after = -1;
            }

            foreach (var e in batch.Events)
            {
                after = e.Sequence;
                stepsInEpoch = e.StepsInEpoch;
                if (e.Alert is { } alert)
                {
                    // A worker refused or reported as divergent: a line in metrics.jsonl and a warning on stderr.
                    metrics.WriteAlert(e.Epoch, e.WallSeconds, alert);
                    Console.Error.WriteLine($"warning: {alert.Message}");
                    continue;
                }

                if (e.IsEpoch && epochs.Any(x => x.Epoch == e.Epoch && x.Step == e.Step))
                {
                    // Sent again by a job grain that moved to another silo.
                    continue;
                }

                if (e.IsEpoch)
                {
                    var result = new EpochResult(e.Epoch, e.Step, e.WallSeconds, e.Loss, e.Accuracy, e.TestLoss, e.TestAccuracy);
                    metrics.WriteEpoch(result.Epoch, result.Step, result.WallSeconds, result.TrainLoss, result.TrainAccuracy, result.TestLoss, result.TestAccuracy);
                    epochs.RemoveAll(x => x.Epoch >= result.Epoch);
                    epochs.Add(result);
                    if (snapshots is not null)
                    {
                        await snapshots.AtEpochEndAsync(e.Step, e.Epoch);
                    }

                    observer.EpochCompleted(result);
                    continue;
                }

                if (e.Epoch != startedEpoch)
                {
                    startedEpoch = e.Epoch;
                    observer.EpochStarted(e.Epoch, spec.Epochs, e.StepsInEpoch);
                }

                WriteStepEvent(metrics, e);
                observer.StepCompleted(e.Epoch, (e.Step % Math.Max(1, e.StepsInEpoch)) + 1, e.Loss, e.SamplesPerSecond);
            }

            status = batch.Status;
            if (snapshots is not null && spec.Mode == ConsistencyMode.Bsp)
            {
                // ssp and async have no one step that every shard is at mid-run: their files are the epochs' ends.
                await snapshots.AtProgressAsync(status, stepsInEpoch);
            }

            if (status.Phase is JobPhase.Completed or JobPhase.Failed or JobPhase.Cancelled && batch.Events.Length == 0)
            {
                break;
            }
        }

        FinalStatus = status;
        if (status.Phase == JobPhase.Failed)
        {
            var error = status.Error ?? "unknown error";
            throw new UserException($"job {status.JobId} failed: {error}", status.BadInput ? ExitCodes.BadInput : error.Contains("diverged", StringComparison.Ordinal) ? ExitCodes.TrainingFailed : ExitCodes.InternalError);
        }

        if (status.Phase == JobPhase.Cancelled)
        {
            throw new OperationCanceledException($"job {status.JobId} was cancelled");
        }

        var servers = Enumerable.Range(0, spec.PsShards).Select(p => client.GetGrain<IParameterServerGrain>(p, spec.JobId)).ToArray();
        var vector = new ClusterVector(model);
        var weights = await WithRetryAsync(() => JobGrain.ReadWeightsAsync(spec, servers, vector.Length), cancellation, detachOnCancel);
        vector.Load(model, weights);
        var sha = model.WeightsSha256();
        if (status.WeightsSha256 is { } reported && reported != sha)
        {
            throw new UserException($"job {status.JobId}: the weights read back (sha256 {sha}) differ from the job's final weights ({reported})", ExitCodes.InternalError);
        }

        return new TrainResult(epochs, status.Step, status.WallSeconds, status.TrainSeconds, status.TrainSamples, sha, model.ParameterCount, status.MedianStepSeconds);
    }

    /// <summary>A logged step's lines in metrics.jsonl: the step line, then one worker_step line per worker that took part.</summary>
    public static void WriteStepEvent(MetricsLog metrics, JobEvent e)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(e);
        metrics.WriteStep(e.Epoch, e.Step, e.WallSeconds, e.Loss, e.Accuracy, e.LearningRate, e.Filters?.Select(ToEngine).ToArray());
        foreach (var worker in e.Workers ?? [])
        {
            metrics.WriteWorkerStep(e.Epoch, e.Step, worker);
        }
    }

    /// <summary>
    /// A call to the cluster, retried for up to two minutes: when the silo this client's gateway (or the job grain)
    /// was on dies, calls fail until membership declares it dead and the grain reactivates elsewhere.
    /// </summary>
    private static async Task<T> WithRetryAsync<T>(Func<Task<T>> call, CancellationToken cancellation, bool stopOnCancel)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await call();
            }
            catch (Exception e) when (e is not (ArgumentException or OutOfMemoryException or UserException) && clock.Elapsed < TimeSpan.FromMinutes(2))
            {
                if (stopOnCancel)
                {
                    cancellation.ThrowIfCancellationRequested();
                }

                await Task.Delay(TimeSpan.FromMilliseconds(500), CancellationToken.None);
            }
        }
    }

    /// <summary>A silo in this process on free loopback ports, with checkpoint files in the run folder.</summary>
    public static async Task<IHost> StartEmbeddedSiloAsync(string checkpointDirectory, Action<IServiceCollection>? configureServices = null)
    {
        var builder = Hosting.CommandHost.CreateBuilder();
        QuietLogging(builder.Logging);
        builder.Services.AddSingleton<IHostLifetime, CommandLifetime>();
        configureServices?.Invoke(builder.Services);
        var siloPort = FreePort();
        var gatewayPort = FreePort();
        builder.UseOrleans(silo =>
        {
            silo.UseLocalhostClustering(siloPort, gatewayPort, serviceId: "clusterconv-embedded", clusterId: $"embedded-{Environment.ProcessId}");
            silo.AddClusterConv(new ClusterConvSiloOptions { CheckpointDirectory = checkpointDirectory });
        });
        var host = builder.Build();
        await host.StartAsync();
        return host;
    }

    /// <summary>A client of a Redis-clustered ClusterConv cluster.</summary>
    public static async Task<IHost> StartClientAsync(string cluster, Action<IServiceCollection>? configureServices = null, Hosting.ClusterSecurity? security = null)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        security ??= Hosting.ClusterSecurity.FromEnvironment();
        var builder = Hosting.CommandHost.CreateBuilder();
        QuietLogging(builder.Logging);
        var watch = new Hosting.ConnectionFailureWatch();
        Hosting.ConnectionFailureWatch.Add(builder.Logging, watch);
        builder.Services.AddSingleton<IHostLifetime, CommandLifetime>();
        configureServices?.Invoke(builder.Services);
        // Every client verb honours CLUSTERCONV_REDIS_PASSWORD; an address already carrying password= is left as it is.
        var connect = Hosting.RedisAddress.Resolve(cluster, null, Environment.GetEnvironmentVariable(Hosting.RedisAddress.PasswordVariable)).Connect;
        var shown = Hosting.RedisAddress.Mask(cluster);
        await ProbeRedisAsync(shown, connect, security.RedisTrustedRoots);
        builder.UseOrleansClient(client =>
        {
            client.UseClusterConvRedis(connect, redisTrustedRoots: security.RedisTrustedRoots).AddClusterConvClient();
            if (security.Tls is { } tls)
            {
                client.UseClusterConvTls(tls);
            }
        });

        var host = builder.Build();
        var clock = Stopwatch.StartNew();
        try
        {
            // Bounded: StackExchange.Redis gives up on a closed port at once and on an unanswering host after its
            // connect timeout (5 s), but a gateway that accepts and never answers would otherwise hold the verb forever.
            var start = host.StartAsync();
            if (await Task.WhenAny(start, watch.Failed).WaitAsync(ConnectTimeout) != start)
            {
                throw new IOException(await watch.Failed);
            }

            await start;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            host.Dispose();
            var why = e is TimeoutException ? $"no answer within {ConnectTimeout.TotalSeconds:F0} s" : FirstSentences(e.GetBaseException().Message);
            // A TLS handshake refused on either side shows in Orleans only as a closed connection: say what TLS saw.
            var rejected = CertificateTrust.LastRejection;
            why = rejected is null ? why : $"TLS refused the cluster's certificate: {rejected}";
            var tls = rejected is not null ? string.Empty
                : security.Tls is null ? " (if the cluster's silos use TLS, give --tls-cert and --tls-ca)" : " (the silos may have refused this client's certificate: is it signed by a CA their --tls-ca trusts?)";
            throw new UserException($"--cluster {shown}: could not connect after {clock.Elapsed.TotalSeconds:F1} s: {why}{tls}", e, ExitCodes.IoError);
        }

        return host;
    }

    /// <summary>
    /// A TCP connect to Redis before Orleans starts: a closed port or a silent host is then one clear error in at most
    /// <see cref="ProbeTimeout"/>, where the Orleans client's retries took 0 to 16 s depending on the machine's load.
    /// With TLS (rediss://) the probe also does the handshake, so an untrusted server certificate is named at once.
    /// </summary>
    private static async Task ProbeRedisAsync(string cluster, string connect, System.Security.Cryptography.X509Certificates.X509Certificate2Collection? roots)
    {
        var clock = Stopwatch.StartNew();
        var options = StackExchange.Redis.ConfigurationOptions.Parse(ClusterHosting.RedisEndpoint(connect));
        var problems = new List<string>();
        foreach (var endpoint in options.EndPoints)
        {
            var (host, port) = endpoint switch
            {
                DnsEndPoint d => (d.Host, d.Port),
                IPEndPoint i => (i.Address.ToString(), i.Port),
                _ => (endpoint.ToString() ?? "?", 0),
            };
            port = port == 0 ? (options.Ssl ? 6380 : 6379) : port;
            using var tcp = new TcpClient();
            using var timeout = new CancellationTokenSource(ProbeTimeout);
            try
            {
                await tcp.ConnectAsync(host, port, timeout.Token);
            }
            catch (OperationCanceledException)
            {
                problems.Add($"{host}:{port} did not answer within {ProbeTimeout.TotalSeconds:F0} s");
                continue;
            }
            catch (SocketException e)
            {
                problems.Add($"{host}:{port}: {e.Message}");
                continue;
            }

            if (!options.Ssl)
            {
                return;
            }

            using var tls = new SslStream(tcp.GetStream(), false, (_, certificate, _, errors) => CertificateTrust.IsTrusted(certificate, errors, roots, checkName: true));
            try
            {
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = options.SslHost ?? host }, timeout.Token);
                return;
            }
            catch (System.Security.Authentication.AuthenticationException e)
            {
                var why = CertificateTrust.LastRejection ?? e.Message;
                var hint = roots is null ? "; give the CA that signed it with --redis-ca" : string.Empty;
                throw new UserException($"--cluster {cluster}: Redis at {host}:{port} refused over TLS after {clock.Elapsed.TotalSeconds:F1} s: {why}{hint}", e, ExitCodes.IoError);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                problems.Add($"{host}:{port} did not complete a TLS handshake (is it a TLS port?): {(e is OperationCanceledException ? $"no answer within {ProbeTimeout.TotalSeconds:F0} s" : e.Message)}");
            }
        }

        throw new UserException($"--cluster {cluster}: cannot reach Redis after {clock.Elapsed.TotalSeconds:F1} s: {string.Join("; ", problems)}", ExitCodes.IoError);
    }

    /// <summary>How long one poll of the job's events may take before it is sent again.</summary>
    public static readonly TimeSpan PollTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long the Redis probe waits for a TCP connection.</summary>
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(3);

    /// <summary>How long a client waits for the cluster before giving up with an error.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(20);

    /// <summary>StackExchange.Redis' message without its advice on abortConnect, which is about its API, not the CLI.</summary>
    private static string FirstSentences(string message)
    {
        var cut = message.IndexOf(" To allow this multiplexer", StringComparison.Ordinal);
        return (cut > 0 ? message[..cut] : message).ReplaceLineEndings(" ");
    }

    public static void QuietLogging(ILoggingBuilder logging)
    {
        ArgumentNullException.ThrowIfNull(logging);
        logging.ClearProviders();
        var level = Environment.GetEnvironmentVariable("CLUSTERCONV_LOG_LEVEL") is { } text && Enum.TryParse<LogLevel>(text, true, out var parsed) ? parsed : LogLevel.Error;
        // CLUSTERCONV_LOG_LEVEL applies to ClusterConv's grains; Orleans itself only reports errors unless it asks for more.
        logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Trace);
        logging.AddFilter((category, l) => l >= (category?.StartsWith("ClusterConv", StringComparison.Ordinal) == true ? level : LogLevel.Error));

        // A host that fails to start (port in use, Redis unreachable) logs the exception with its stack trace; the verb
        // reports the same failure once, as one line (the trace with --verbose).
        logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
        logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The verb, not the console's signals, decides when an embedded silo or client stops.</summary>
    private sealed class CommandLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>
    /// checkpoints/step-N.ckpt of a cluster run, for the report's filters at initialization, midway and end (as the
    /// engine-only trainer writes them): at each epoch's end and, when no epoch ends strictly inside the run (one epoch,
    /// or --max-steps within the first), at half the steps. The job grain keeps the weights of those steps, read while it
    /// waits (<see cref="IJobGrain.GetSnapshotAsync"/>), so in bsp each file holds exactly the step it is named after. In
    /// ssp and async only the epochs' ends, named after the slowest worker's round (faster ones may be a few rounds on).
    /// </summary>
    private sealed class StepSnapshots(IJobGrain job, JobSpec spec, ModelSpec modelSpec, string runDirectory)
    {
        private readonly Model layout = new(modelSpec);
        private bool middleSaved;

        public async Task AtEpochEndAsync(long step, int epochsDone)
        {
            // A resumed job sends its earlier epochs again; their weights were saved before it stopped.
            if (!(spec.Resume && File.Exists(RunCheckpoints.StepPath(runDirectory, step))))
            {
                await SaveAsync(step, epochsDone);
            }
        }

        public async Task AtProgressAsync(JobStatus status, long stepsInEpoch)
        {
            var middle = status.TotalSteps / 2;
            if (middleSaved || stepsInEpoch <= 0 || status.TotalSteps > stepsInEpoch || middle < 1 || status.Step < middle)
            {
                return;
            }

            // Asked again on the next progress while the job runs if its weights are not there (yet).
            middleSaved = await SaveAsync(middle, status.Epoch) || status.Phase != JobPhase.Running;
        }

        /// <summary>False when the job grain does not hold the step's weights.</summary>
        private async Task<bool> SaveAsync(long step, int epochsDone)
        {
            try
            {
                // Null when the job grain moved since (a new activation keeps no snapshots): that moment goes unrecorded.
                if (await job.GetSnapshotAsync(step) is not { } bytes)
                {
                    return false;
                }

                var vector = new ClusterVector(layout);
                var weights = new float[vector.Length];
                WireFormat.FromBytes(bytes, weights);
                vector.Load(layout, weights);
                var checkpoint = ModelCheckpoint.Capture(layout, step, epochsDone, InputNormalization.Scale, spec.Optimizer);
                AtomicFile.Write(RunCheckpoints.StepPath(runDirectory, step), checkpoint.Save);
                return true;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // These files only feed the report's pictures of the filters: the training goes on without one, and
                // the report says the moment was not recorded.
                return true;
            }
        }
    }

    private static FilterStatistics ToEngine(LayerStatistics s) =>
        new(s.Layer, s.LayerType, s.GradientNorm, s.WeightNorm, s.UpdateRatio, s.Sparsity, s.SparsityMetric, s.Activation, s.DeadFilters);
}
