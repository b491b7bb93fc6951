using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace ClusterConv.Cli.Hosting;

/// <summary>Who is reporting: <paramref name="Instance"/> becomes service.instance.id unless OTEL_RESOURCE_ATTRIBUTES sets it.</summary>
internal sealed record TelemetryIdentity(string Instance, string? Silo, string? Job);

/// <summary>
/// The OpenTelemetry SDK of a silo or client process, in one place (docs/TELEMETRY.md, "Export"): ClusterConv's and
/// Orleans' meters and activity sources; a Prometheus exporter when a metrics port is served; OTLP when the standard
/// OTEL_* variables ask for it.
/// </summary>
internal static class TelemetrySetup
{
    public const string ServiceNameDefault = "clusterconv";

    /// <summary>Per-filter instruments carry up to MaxFilterSeries (2048) series per job: eight jobs. The SDK default is 2000.</summary>
    public const int PerFilterCardinalityLimit = 16_384;

    /// <summary>"System.Runtime" is .NET's own meter (GC heap, working set, thread pool): what a soak run watches.</summary>
    public static readonly string[] Meters = ["ClusterConv", "Microsoft.Orleans", "System.Runtime"];

    public static readonly string[] ActivitySources = ["ClusterConv", "Microsoft.Orleans.Application"];


    /// <summary>
    /// OTLP export of one signal ("METRICS" or "TRACES") is on when an OTLP endpoint is configured and OTEL_{signal}_EXPORTER
    /// does not turn it off (Kubernetes sets OTEL_METRICS_EXPORTER=none: Prometheus scrapes /metrics there).
    /// </summary>
    public static bool OtlpEnabled(string signal, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var endpoint = environment($"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") ?? environment("OTEL_EXPORTER_OTLP_ENDPOINT");
        if (string.IsNullOrWhiteSpace(endpoint))
        {
            return false;
        }

        var exporters = environment($"OTEL_{signal}_EXPORTER");
        return string.IsNullOrWhiteSpace(exporters)
            || exporters.Split(',', StringSplitOptions.TrimEntries).Contains("otlp", StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Adds the SDK to a host's services; nothing when neither Prometheus nor OTLP would receive anything.</summary>
    public static void AddClusterConvTelemetry(this IServiceCollection services, TelemetryIdentity identity, bool prometheus)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(identity);
        var otlpMetrics = OtlpEnabled("METRICS", Environment.GetEnvironmentVariable);
        var otlpTraces = OtlpEnabled("TRACES", Environment.GetEnvironmentVariable);
        if (!prometheus && !otlpMetrics && !otlpTraces)
        {
            return;
        }

        var otel = services.AddOpenTelemetry().ConfigureResource(resource => Describe(resource, identity));
        if (prometheus || otlpMetrics)
        {
            otel.WithMetrics(metrics =>
            {
                metrics.AddMeter(Meters).AddView(ExportedStream);

                if (prometheus)
                {
                    // No response cache: a scrape right after a step sees it.
                    metrics.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
                }

                if (otlpMetrics)
                {
                    metrics.AddOtlpExporter();
                }
            });
        }

        if (otlpTraces)
        {
            otel.WithTracing(tracing => tracing.AddSource(ActivitySources).AddOtlpExporter());
        }
    }

    /// <summary>
    /// How a ClusterConv instrument is exported (one view: an instrument matching two would be exported twice). Per-filter
    /// instruments get <see cref="PerFilterCardinalityLimit"/>. Gauges of unit "1" are exported as NAME_ratio: the
    /// Prometheus exporter (1.20.1-beta.1) adds no unit suffix for "1", so the names docs/TELEMETRY.md promises
    /// (clusterconv_test_accuracy_ratio) come from the stream name; the collector's Prometheus exporter does not add
    /// "_ratio" twice, so OTLP gives the same names.
    /// </summary>
    public static MetricStreamConfiguration? ExportedStream(Instrument instrument)
    {
        ArgumentNullException.ThrowIfNull(instrument);
        if (instrument.Meter.Name != Meters[0])
        {
            return null;
        }

        var perFilter = instrument.Name.StartsWith("clusterconv.filter.", StringComparison.Ordinal) || instrument.Name.StartsWith("clusterconv.worker.filter.", StringComparison.Ordinal);
        var ratio = instrument.Unit == "1" && IsGauge(instrument) && !instrument.Name.EndsWith("_ratio", StringComparison.Ordinal);
        if (!perFilter && !ratio)
        {
            return null;
        }

        var stream = new MetricStreamConfiguration();
        if (ratio)
        {
            stream.Name = instrument.Name + "_ratio";
        }

        if (perFilter)
        {
            stream.CardinalityLimit = PerFilterCardinalityLimit;
        }

        return stream;
    }

    private static bool IsGauge(Instrument instrument)
    {
        var type = instrument.GetType();
        return type.IsGenericType && (type.GetGenericTypeDefinition() == typeof(Gauge<>) || type.GetGenericTypeDefinition() == typeof(ObservableGauge<>));
    }

    /// <summary>
    /// service.name "clusterconv", service.instance.id and the clusterconv.* attributes first, then the OTEL_* variables,
    /// so OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them (a later resource wins a merge).
    /// </summary>
    public static ResourceBuilder Describe(ResourceBuilder resource, TelemetryIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(resource);
        ArgumentNullException.ThrowIfNull(identity);
        var attributes = new List<KeyValuePair<string, object>>();
        if (identity.Silo is { } silo)
        {
            attributes.Add(new("clusterconv.silo", silo));
        }

        if (identity.Job is { } job)
        {
            attributes.Add(new("clusterconv.job", job));
        }

        return resource.Clear()
            .AddService(ServiceNameDefault, serviceInstanceId: identity.Instance, autoGenerateServiceInstanceId: false)
            .AddAttributes(attributes)
            .AddTelemetrySdk()
            .AddEnvironmentVariableDetector();
    }
}

/// <summary>Telemetry and the metrics listener of one host: what the silo verb, the embedded silo and the client share.</summary>
internal static class HostTelemetry
{
    /// <summary>Call before UseOrleans/UseOrleansClient, so the listener starts before the silo joins.</summary>
    public static void Add(IServiceCollection services, MetricsListen? listen, TelemetryIdentity identity, HealthProbe health)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (listen is not null)
        {
            MetricsEndpoint.Add(services, listen, health);
        }

        services.AddClusterConvTelemetry(identity, prometheus: listen is not null);
    }
}
