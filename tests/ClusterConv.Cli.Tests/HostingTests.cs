using System.Diagnostics.Metrics;
using ClusterConv.Cli.Hosting;

namespace ClusterConv.Cli.Tests;

/// <summary>The Redis password rules and the telemetry export settings of src/ClusterConv.Cli/Hosting.</summary>
public sealed class HostingTests
{
    [Fact]
    public void A_password_in_the_address_wins_over_the_file_and_the_environment()
    {
        var address = RedisAddress.Resolve("redis:6379,password=inline", "/does/not/exist", "from-env");
        Assert.Equal("redis:6379,password=inline", address.Connect);
        Assert.Equal("redis:6379,password=***", address.Display);
    }

    [Fact]
    public void The_password_file_comes_before_the_environment_and_loses_its_trailing_newline()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "from-file\n");
            var address = RedisAddress.Resolve("redis://127.0.0.1:6379/", file, "from-env");
            Assert.Equal("redis://127.0.0.1:6379,password=from-file", address.Connect);
            Assert.Equal("redis://127.0.0.1:6379,password=***", address.Display);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void The_environment_password_is_used_when_nothing_else_gives_one()
    {
        Assert.Equal("127.0.0.1:6379,password=from-env", RedisAddress.Resolve("127.0.0.1:6379", null, "from-env").Connect);
        Assert.Equal("127.0.0.1:6379", RedisAddress.Resolve("127.0.0.1:6379", null, null).Connect);
        Assert.Equal("127.0.0.1:6379", RedisAddress.Resolve("127.0.0.1:6379", null, string.Empty).Connect);
    }

    [Fact]
    public void Every_password_in_a_message_is_masked()
    {
        Assert.Equal("--cluster redis://h:1,password=*** and h:2,password=***,ssl=true", RedisAddress.Mask("--cluster redis://h:1,PASSWORD=a and h:2,password=b,ssl=true"));
    }

    [Fact]
    public void A_password_file_that_is_empty_or_a_password_with_a_comma_is_refused()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "\n");
            Assert.Equal(ExitCodes.BadInput, Assert.Throws<UserException>(() => RedisAddress.Resolve("h:1", file, null)).ExitCode);
            var comma = Assert.Throws<UserException>(() => RedisAddress.Resolve("h:1", null, "a,b"));
            Assert.DoesNotContain("a,b", comma.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("silo", "--redis", "127.0.0.1:1")]
    [InlineData("train", "--cluster", "redis://127.0.0.1:1")]
    [InlineData("status", "--cluster", "redis://127.0.0.1:1")]
    [InlineData("cancel", "some-job", "--cluster", "redis://127.0.0.1:1")]
    public void An_unreadable_password_file_ends_the_verb_with_the_io_error_code(params string[] verb)
    {
        var result = CliRunner.Run([.. verb, "--redis-password-file", "/nonexistent/redis-password"]);
        Assert.True(result.ExitCode == ExitCodes.IoError, $"exit {result.ExitCode}: {result.Stderr}{result.Stdout}");
        Assert.Contains("--redis-password-file /nonexistent/redis-password", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, null, null, null, false)]
    [InlineData("http://collector:4317", null, null, null, true)]
    [InlineData("http://collector:4317", null, "none", null, false)]
    [InlineData("http://collector:4317", null, "prometheus,otlp", null, true)]
    [InlineData(null, "http://collector:4318/v1/metrics", null, null, true)]
    [InlineData(null, null, null, "http://collector:4318/v1/traces", false)]
    public void Otlp_metric_export_follows_the_standard_variables(string? endpoint, string? metricsEndpoint, string? exporter, string? tracesEndpoint, bool expected)
    {
        var environment = new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint,
            ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = metricsEndpoint,
            ["OTEL_METRICS_EXPORTER"] = exporter,
            ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = tracesEndpoint,
        };
        Assert.Equal(expected, TelemetrySetup.OtlpEnabled("METRICS", name => environment.GetValueOrDefault(name)));
    }

    [Fact]
    public void Unit_one_gauges_are_exported_with_the_ratio_suffix_and_per_filter_instruments_with_a_larger_series_limit()
    {
        using var meter = new Meter("ClusterConv");
        using var orleans = new Meter("Microsoft.Orleans");
        var ratio = TelemetrySetup.ExportedStream(meter.CreateGauge<double>("clusterconv.test.accuracy", "1"));
        Assert.Equal("clusterconv.test.accuracy_ratio", ratio?.Name);
        Assert.Null(ratio?.CardinalityLimit);

        var perFilterRatio = TelemetrySetup.ExportedStream(meter.CreateGauge<double>("clusterconv.worker.filter.sparsity", "1"));
        Assert.Equal("clusterconv.worker.filter.sparsity_ratio", perFilterRatio?.Name);
        Assert.Equal(TelemetrySetup.PerFilterCardinalityLimit, perFilterRatio?.CardinalityLimit);

        var perFilter = TelemetrySetup.ExportedStream(meter.CreateGauge<double>("clusterconv.filter.gradient_norm", "{norm}"));
        Assert.Null(perFilter?.Name);
        Assert.Equal(TelemetrySetup.PerFilterCardinalityLimit, perFilter?.CardinalityLimit);

        Assert.Null(TelemetrySetup.ExportedStream(meter.CreateCounter<long>("clusterconv.train.samples", "{sample}")));
        Assert.Null(TelemetrySetup.ExportedStream(meter.CreateHistogram<double>("clusterconv.step.duration", "s")));
        Assert.Null(TelemetrySetup.ExportedStream(orleans.CreateGauge<double>("orleans-something", "1")));
    }

    [Fact]
    public void Train_with_an_embedded_silo_serves_metrics_on_a_port_it_picks_and_prints()
    {
        var run = CliRunner.TempDirectory();
        try
        {
            var result = CliRunner.Run(
                "train", "--data", "synthetic", "--train-limit", "640", "--test-limit", "64", "--epochs", "1", "--batch-size", "64", "--workers", "1",
                "--threads", "1", "--stats-every", "5", "--checkpoint-every", "0", "--metrics-port", "0", "--out", run.FullName);
            Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
            Assert.Matches(@"metrics on http://127\.0\.0\.1:[1-9][0-9]*/metrics", result.Stderr);
        }
        finally
        {
            run.Delete(recursive: true);
        }
    }
}
