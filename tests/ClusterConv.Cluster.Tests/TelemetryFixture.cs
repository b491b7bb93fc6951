using System.Diagnostics;
using ClusterConv.Cluster.Telemetry;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Orleans.TestingHost;

namespace ClusterConv.Cluster.Tests;

/// <summary>
/// A two-silo cluster with the OpenTelemetry SDK listening: ClusterConv's meter into an InMemory metric exporter and
/// its spans (plus Orleans' application source, which carries trace context across grain calls) into an InMemory span
/// exporter. Meters and sources are process-wide and other test classes run jobs at the same time, so every query
/// filters by job id.
/// </summary>
public sealed class TelemetryFixture : IAsyncLifetime
{
    private readonly List<MetricSnapshot> metrics = [];
    private readonly LockedList<Activity> spans = new();
    private readonly JobSpanEnds spanEnds = new();
    private MeterProvider? meterProvider;
    private TracerProvider? tracerProvider;
    private string directory = string.Empty;

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        meterProvider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(ClusterTelemetry.Name)
            // Jobs of other test classes record series too: keep far more than the default 2000 per metric.
            .AddView(instrument => instrument.Meter.Name == ClusterTelemetry.Name ? new MetricStreamConfiguration { CardinalityLimit = 200_000 } : null)
            .AddInMemoryExporter(metrics, o => o.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = 3_600_000)
            .Build();
        tracerProvider = Sdk.CreateTracerProviderBuilder()
            .AddSource(ClusterTelemetry.Name, "Microsoft.Orleans.Application")
            .SetSampler(new AlwaysOnSampler())
            .AddProcessor(new OwnSpansOnly(new SimpleActivityExportProcessor(new InMemoryExporter<Activity>(spans)), spanEnds))
            .Build();
        (Cluster, directory) = await TestClusters.StartAsync(2);
    }

    public async Task DisposeAsync()
    {
        await Cluster.DisposeAsync();
        TestClusters.Delete(directory);
        meterProvider?.Dispose();
        tracerProvider?.Dispose();
    }

    /// <summary>Runs a job to its end; returns its status and events.</summary>
    public async Task<(JobStatus Status, JobEvent[] Events)> RunAsync(JobSpec spec)
    {
        var job = Cluster.Client.GetGrain<IJobGrain>(spec.JobId);
        await job.StartAsync(spec);
        var status = await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(120));
        await WaitForJobSpanAsync(spec.JobId);
        var events = (await job.GetEventsAsync(string.Empty, -1)).Events;
        return (status, events);
    }

    /// <summary>Until job <paramref name="jobId"/>'s span has been exported (it ends just after the status reads finished).</summary>
    public Task WaitForJobSpanAsync(string jobId) => spanEnds.WaitAsync(jobId);

    /// <summary>Runs the job, which must complete, and returns its spans.</summary>
    public async Task<IReadOnlyList<Activity>> RunToSpansAsync(JobSpec spec)
    {
        var (status, _) = await RunAsync(spec);
        Assert.Equal(JobPhase.Completed, status.Phase);
        return Spans(spec.JobId);
    }

    /// <summary>Collects now; the points of metric <paramref name="name"/> recorded for job <paramref name="jobId"/>, with their tags.</summary>
    public IReadOnlyList<(Dictionary<string, string> Tags, MetricPoint Point)> Points(string name, string jobId)
    {
        lock (metrics)
        {
            metrics.Clear();
            meterProvider!.ForceFlush();
            var result = new List<(Dictionary<string, string>, MetricPoint)>();
            foreach (var metric in metrics.Where(m => m.Name == name))
            {
                foreach (var point in metric.MetricPoints)
                {
                    var tags = new Dictionary<string, string>();
                    foreach (var tag in point.Tags)
                    {
                        tags[tag.Key] = tag.Value?.ToString() ?? string.Empty;
                    }

                    if (tags.GetValueOrDefault(ClusterTelemetry.Tags.Job) == jobId)
                    {
                        result.Add((tags, point));
                    }
                }
            }

            return result;
        }
    }

    /// <summary>Spans of ClusterConv's source tagged with job <paramref name="jobId"/>.</summary>
    public IReadOnlyList<Activity> Spans(string jobId)
    {
        tracerProvider!.ForceFlush();
        return spans.Snapshot().Where(a => a.GetTagItem(ClusterTelemetry.Attributes.Job) as string == jobId).ToArray();
    }

    /// <summary>Exports ClusterConv's spans only: Orleans' call spans are sampled (so context flows) but not kept.</summary>
    private sealed class OwnSpansOnly(BaseProcessor<Activity> inner, JobSpanEnds ends) : BaseProcessor<Activity>
    {
        public override void OnEnd(Activity data)
        {
            if (data.Source.Name == ClusterTelemetry.Name)
            {
                inner.OnEnd(data);
                ends.Observe(data);
            }
        }

        protected override bool OnForceFlush(int timeoutMilliseconds) => inner.ForceFlush(timeoutMilliseconds);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    /// <summary>A list the exporter adds to from many threads while a test reads it.</summary>
    private sealed class LockedList<T> : ICollection<T>
    {
        private readonly List<T> items = [];

        public int Count
        {
            get
            {
                lock (items)
                {
                    return items.Count;
                }
            }
        }

        public bool IsReadOnly => false;

        public void Add(T item)
        {
            lock (items)
            {
                items.Add(item);
            }
        }

        public T[] Snapshot()
        {
            lock (items)
            {
                return items.ToArray();
            }
        }

        public void Clear()
        {
            lock (items)
            {
                items.Clear();
            }
        }

        public bool Contains(T item) => Snapshot().Contains(item);

        public void CopyTo(T[] array, int arrayIndex) => Snapshot().CopyTo(array, arrayIndex);

        public bool Remove(T item)
        {
            lock (items)
            {
                return items.Remove(item);
            }
        }

        public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)Snapshot()).GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
