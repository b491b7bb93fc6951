using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ClusterConv.Cluster.Telemetry;

/// <summary>
/// The one ActivitySource and one Meter of ClusterConv, with every instrument, span name, attribute key and event name
/// (docs/TELEMETRY.md is the contract: dashboards and tests use these names).
/// </summary>
public static class ClusterTelemetry
{
    public const string Name = "ClusterConv";

    public static readonly ActivitySource Source = new(Name);

    public static readonly Meter Meter = new(Name);

    // Training.
    public static readonly Gauge<double> TrainLoss = Meter.CreateGauge<double>("clusterconv.train.loss", "{loss}", "Mean training loss of the last logged step");
    public static readonly Gauge<double> TrainAccuracy = Meter.CreateGauge<double>("clusterconv.train.accuracy", "1", "Training accuracy of the last logged step");
    public static readonly Gauge<double> TestLoss = Meter.CreateGauge<double>("clusterconv.test.loss", "{loss}", "Mean test loss after the last epoch");
    public static readonly Gauge<double> TestAccuracy = Meter.CreateGauge<double>("clusterconv.test.accuracy", "1", "Test accuracy after the last epoch");
    public static readonly Counter<long> TrainSamples = Meter.CreateCounter<long>("clusterconv.train.samples", "{sample}", "Training samples computed, by the worker that computed them");
    public static readonly Histogram<double> StepDuration = Meter.CreateHistogram<double>("clusterconv.step.duration", "s", "Wall time of one bsp step, from handing it to the workers to every shard having applied it");
    public static readonly Gauge<int> Epoch = Meter.CreateGauge<int>("clusterconv.epoch", "{epoch}", "Epoch in progress (1-based)");

    // Per filter, after aggregation (the job) and per worker before it.
    public static readonly Gauge<double> FilterGradientNorm = Meter.CreateGauge<double>("clusterconv.filter.gradient_norm", "{norm}", "L2 norm of the filter's aggregated kernel gradient");
    public static readonly Gauge<double> FilterWeightNorm = Meter.CreateGauge<double>("clusterconv.filter.weight_norm", "{norm}", "L2 norm of the filter's kernel after the update");
    public static readonly Gauge<double> FilterUpdateToWeight = Meter.CreateGauge<double>("clusterconv.filter.update_to_weight", "1", "L2 norm of the filter's update over the L2 norm of its kernel before it");
    public static readonly Gauge<double> FilterSparsity = Meter.CreateGauge<double>("clusterconv.filter.sparsity", "1", "Fraction of the filter's outputs exactly zero (relu) or at or below zero (other activations)");
    public static readonly Gauge<double> WorkerFilterGradientNorm = Meter.CreateGauge<double>("clusterconv.worker.filter.gradient_norm", "{norm}", "L2 norm of the filter's row of one worker's mean local gradient, before aggregation");
    public static readonly Gauge<double> WorkerFilterWeightNorm = Meter.CreateGauge<double>("clusterconv.worker.filter.weight_norm", "{norm}", "L2 norm of the filter's row of the weights one worker computed with");
    public static readonly Gauge<double> WorkerFilterSparsity = Meter.CreateGauge<double>("clusterconv.worker.filter.sparsity", "1", "Sparsity of the filter's outputs over one worker's samples");
    public static readonly Gauge<int> LayerDeadFilters = Meter.CreateGauge<int>("clusterconv.layer.dead_filters", "{filter}", "Filters of the layer with no positive output over the dead-filter window");
    public static readonly Counter<long> FilterSeriesDropped = Meter.CreateCounter<long>("clusterconv.filter.series_dropped", "{series}", "Per-filter series past the job's MaxFilterSeries cap, not recorded as metrics");

    // Cluster.
    public static readonly Histogram<double> PsAggregateDuration = Meter.CreateHistogram<double>("clusterconv.ps.aggregate.duration", "s", "Time a parameter-server shard takes to reduce one step's gradients over the tree");
    public static readonly Histogram<long> Staleness = Meter.CreateHistogram<long>("clusterconv.staleness", "{step}", "ssp and async: updates of other workers applied while a worker computed one round");
    public static readonly Gauge<long> WorkerLag = Meter.CreateGauge<long>("clusterconv.worker.lag", "{step}", "ssp and async: rounds a worker is behind the most advanced worker");
    public static readonly Counter<long> NetworkSent = Meter.CreateCounter<long>("clusterconv.network.sent", "By", "Payload bytes sent (weights by parameter servers, gradients by workers)");
    public static readonly Counter<long> NetworkReceived = Meter.CreateCounter<long>("clusterconv.network.received", "By", "Payload bytes received (gradients by parameter servers, weights by workers)");
    public static readonly Histogram<double> CheckpointDuration = Meter.CreateHistogram<double>("clusterconv.checkpoint.duration", "s", "Time to checkpoint every parameter-server shard");
    public static readonly Counter<long> JobRestarts = Meter.CreateCounter<long>("clusterconv.job.restarts", "{restart}", "Times a job continued from its last checkpoint (job grain reactivated, or a shard rollback)");
    public static readonly Counter<long> WorkerAlerts = Meter.CreateCounter<long>("clusterconv.worker.alerts", "{alert}", "Workers named by the job: a non-finite gradient refused, a gradient norm far above the others', weights that differ from the parameter servers'");

    private static readonly ConcurrentDictionary<(string Job, string Silo), int> WorkersBySilo = new();

    /// <summary>Observed at collection: worker activations per job and silo in this process.</summary>
    public static readonly ObservableGauge<int> SiloWorkers = Meter.CreateObservableGauge(
        "clusterconv.silo.workers",
        ObserveWorkers,
        "{worker}",
        "Worker grains of the job active on the silo");

    /// <summary>
    /// Observed at collection: the managed heap that survived the process's last full blocking collection, i.e. its
    /// live objects then (absent before the first). The runtime's own heap gauges count dead objects still waiting for
    /// a gen-2 collection too, so they rise and fall with the collector's timing; this one shows a leak.
    /// </summary>
    public static readonly ObservableGauge<long> LiveHeap = Meter.CreateObservableGauge(
        "clusterconv.gc.live_heap",
        ObserveLiveHeap,
        "By",
        "Managed heap that survived the last full blocking garbage collection");

    private static IEnumerable<Measurement<long>> ObserveLiveHeap()
    {
        var last = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        return last.Index == 0 ? [] : [new Measurement<long>(last.PromotedBytes)];
    }

    /// <summary>Counts a worker activation of <paramref name="job"/> on <paramref name="silo"/> (delta +1 or −1).</summary>
    public static void CountWorker(string job, string silo, int delta)
    {
        var count = WorkersBySilo.AddOrUpdate((job, silo), delta, (_, c) => c + delta);
        if (count <= 0)
        {
            WorkersBySilo.TryRemove(new KeyValuePair<(string, string), int>((job, silo), count));
        }
    }

    private static IEnumerable<Measurement<int>> ObserveWorkers() =>
        WorkersBySilo.Select(e => new Measurement<int>(e.Value, new KeyValuePair<string, object?>(Tags.Job, e.Key.Job), new KeyValuePair<string, object?>(Tags.Silo, e.Key.Silo)));

    /// <summary>Filter indices as label values, made once.</summary>
    public static string FilterLabel(int filter) => filter < FilterLabels.Length ? FilterLabels[filter] : filter.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static readonly string[] FilterLabels = Enumerable.Range(0, 4096).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Span names.</summary>
    public static class Spans
    {
        public const string Job = "clusterconv.job";
        public const string Epoch = "clusterconv.epoch";
        public const string Step = "clusterconv.step";
        public const string WorkerCompute = "clusterconv.worker.compute";
        public const string GradientPush = "clusterconv.gradient.push";
        public const string PsAggregate = "clusterconv.ps.aggregate";
        public const string PsApply = "clusterconv.ps.apply";
        public const string Checkpoint = "clusterconv.checkpoint";
        public const string Saved = "clusterconv.saved";
        public const string Phase = "clusterconv.phase";
        public const string Evaluate = "clusterconv.evaluate";
    }

    /// <summary>Metric label keys (Prometheus labels).</summary>
    public static class Tags
    {
        public const string Job = "job_id";
        public const string Worker = "worker";
        public const string Silo = "silo";
        public const string Layer = "layer";
        public const string Filter = "filter";
        public const string Role = "role";
        public const string Shard = "shard";
        public const string Kind = "kind";
        public const string RoleWorker = "worker";
        public const string RolePs = "ps";
    }

    /// <summary>Span attribute keys.</summary>
    public static class Attributes
    {
        public const string Job = "clusterconv.job";
        public const string Epoch = "clusterconv.epoch";
        public const string Step = "clusterconv.step";
        public const string Worker = "clusterconv.worker";
        public const string Silo = "clusterconv.silo";
        public const string Shard = "clusterconv.shard";
        public const string Mode = "clusterconv.mode";
        public const string Samples = "clusterconv.samples";
        public const string Loss = "clusterconv.loss";
        public const string Accuracy = "clusterconv.accuracy";
        public const string Bytes = "clusterconv.bytes";
        public const string Chunks = "clusterconv.chunks";
        public const string MissingNodes = "clusterconv.missing_nodes";
        public const string Workers = "clusterconv.workers";
        public const string PsShards = "clusterconv.ps_shards";
        public const string Version = "clusterconv.version";
        public const string Statistics = "clusterconv.statistics";
        public const string Layer = "clusterconv.layer";
        public const string Filter = "clusterconv.filter";
        public const string DeadSince = "clusterconv.dead_since";
        public const string Checkpoint = "clusterconv.checkpoint";
        public const string Saved = "clusterconv.saved";
        public const string Phase = "clusterconv.phase";
        public const string Moved = "clusterconv.moved";
        public const string Silos = "clusterconv.silos";
        public const string Error = "clusterconv.error";
        public const string GradientNormValue = "clusterconv.gradient_norm";
        public const string Median = "clusterconv.median";
        public const string Refusals = "clusterconv.refusals";

        /// <summary>double[]: per filter, the L2 norm of the layer's kernel gradient.</summary>
        public static string GradientNorm(string layer) => $"clusterconv.{layer}.gradient_norm";

        /// <summary>int: on a parameter-server aggregate span, the filter the layer's gradient-norm array starts at (the shard holds rows from there on).</summary>
        public static string FirstFilter(string layer) => $"clusterconv.{layer}.first_filter";

        /// <summary>double[]: per filter, the fraction of outputs exactly zero (relu) or at or below zero.</summary>
        public static string Sparsity(string layer) => $"clusterconv.{layer}.sparsity";

        /// <summary>int[]: filters with no positive output (this step on a worker; over the dead window on the job's step span).</summary>
        public static string DeadFilters(string layer) => $"clusterconv.{layer}.dead_filters";
    }

    /// <summary>Span event names.</summary>
    public static class Events
    {
        public const string FilterDead = "clusterconv.filter.dead";
        public const string NonFiniteGradient = "clusterconv.gradient.non_finite";
        public const string StepSkipped = "clusterconv.step.skipped";
        public const string GradientOutlier = "clusterconv.worker.gradient_outlier";
        public const string WeightsMismatch = "clusterconv.worker.weights_mismatch";
        public const string WorkerLost = "clusterconv.worker.lost";
        public const string WorkerReactivated = "clusterconv.worker.reactivated";
        public const string Rebalance = "clusterconv.rebalance";
        public const string CheckpointRestored = "clusterconv.checkpoint.restored";
    }
}
