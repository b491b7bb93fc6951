using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using Orleans.Runtime;

namespace ClusterConv.Cli.Hosting;

/// <summary>Where <c>--metrics-port</c> and <c>--metrics-host</c> put the HTTP listener.</summary>
internal sealed record MetricsListen(string Host, int Port)
{
    public const string DefaultHost = "127.0.0.1";

    public static (System.CommandLine.Option<int?> Port, System.CommandLine.Option<string> Host) Options()
    {
        var port = new System.CommandLine.Option<int?>("--metrics-port")
        {
            Description = "Serve /metrics (Prometheus), /healthz and /livez on this port (0: a free one, printed).",
        };
        port.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is { } p && p is < 0 or > 65535)
            {
                r.AddError($"--metrics-port must be 0 to 65535, got {p}");
            }
        });
        var host = new System.CommandLine.Option<string>("--metrics-host")
        {
            Description = "Address the metrics listener binds to (0.0.0.0: every interface).",
            DefaultValueFactory = _ => DefaultHost,
        };
        host.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is { } h && !IPAddress.TryParse(h, out _) && h != "localhost")
            {
                r.AddError($"--metrics-host must be an IP address or localhost, got '{h}'");
            }
        });
        return (port, host);
    }

    public static MetricsListen? From(int? port, string? host) => port is { } p ? new MetricsListen(host ?? DefaultHost, p) : null;
}

/// <summary>What /healthz answers: null while healthy, else one word (starting, joining, stopping).</summary>
internal delegate string? HealthProbe(IServiceProvider services);

/// <summary>
/// One Kestrel listener for /metrics, /healthz and /livez (GET and HEAD), beside the Orleans host. Kestrel rather
/// than the exporter's HttpListener: the Prometheus middleware shares a port with the probes, and Kestrel binds
/// 0.0.0.0 without URL ACLs. It starts before every other hosted service (so before the silo joins) and stops
/// after them (so /livez answers while the silo leaves).
/// </summary>
internal sealed class MetricsEndpoint : IHostedLifecycleService, IAsyncDisposable
{
    private readonly MetricsListen listen;
    private readonly IServiceProvider services;
    private readonly HealthProbe health;
    private readonly IHostApplicationLifetime lifetime;
    private WebApplication? app;

    public MetricsEndpoint(MetricsListen listen, IServiceProvider services, HealthProbe health)
    {
        this.listen = listen;
        this.services = services;
        this.health = health;
        lifetime = services.GetRequiredService<IHostApplicationLifetime>();
    }

    /// <summary>The port listened on (the chosen one when asked for 0).</summary>
    public int Port { get; private set; }

    /// <summary>Serves the endpoint in a host's lifetime; call before UseOrleans so it starts first.</summary>
    public static void Add(IServiceCollection services, MetricsListen listen, HealthProbe health)
    {
        services.AddSingleton(sp => new MetricsEndpoint(listen, sp, health));
        services.AddHostedService(sp => sp.GetRequiredService<MetricsEndpoint>());
    }

    /// <summary>A silo is healthy while Active in the membership.</summary>
    public static string? SiloHealth(IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested)
        {
            return "stopping";
        }

        return services.GetService<ISiloStatusOracle>()?.CurrentStatus switch
        {
            SiloStatus.Active => null,
            SiloStatus.Joining => "joining",
            SiloStatus.ShuttingDown or SiloStatus.Stopping or SiloStatus.Dead => "stopping",
            _ => "starting",
        };
    }

    /// <summary>A client is healthy once its host has started (connected to a gateway) until it stops.</summary>
    public static string? ClientHealth(IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        var lifetime = services.GetRequiredService<IHostApplicationLifetime>();
        return lifetime.ApplicationStopping.IsCancellationRequested ? "stopping"
            : lifetime.ApplicationStarted.IsCancellationRequested ? null
            : "starting";
    }

    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        // The empty builder reads no configuration (no ASPNETCORE_URLS, no appsettings watcher) and logs nothing.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            if (listen.Host == "localhost")
            {
                k.ListenLocalhost(listen.Port);
            }
            else
            {
                k.Listen(IPAddress.Parse(listen.Host), listen.Port);
            }
        });
        app = builder.Build();
        app.Use((context, next) =>
        {
            if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
            {
                context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
                context.Response.Headers.Allow = "GET, HEAD";
                return Task.CompletedTask;
            }

            return next(context);
        });
        if (services.GetService<MeterProvider>() is { } meters)
        {
            app.UseOpenTelemetryPrometheusScrapingEndpoint(meters, c => c.Request.Path == "/metrics", path: null, configureBranchedPipeline: null, optionsName: null);
        }

        app.Run(context => context.Request.Path.Value switch
        {
            "/healthz" => Answer(context, health(services)),
            "/livez" => Answer(context, lifetime.ApplicationStopped.IsCancellationRequested ? "stopped" : null),
            _ => Answer(context, "not found", StatusCodes.Status404NotFound),
        });
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException e)
        {
            throw new UserException($"--metrics-port {listen.Port}: cannot listen on {listen.Host}:{listen.Port}: {e.Message}", e, ExitCodes.IoError);
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
        Port = address is not null && Uri.TryCreate(address, UriKind.Absolute, out var uri) ? uri.Port : listen.Port;
        Console.Error.WriteLine($"metrics on http://{listen.Host}:{Port}/metrics (health /healthz, /livez)");
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        if (app is not null)
        {
            await app.StopAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (app is not null)
        {
            await app.DisposeAsync();
            app = null;
        }
    }

    private static Task Answer(HttpContext context, string? problem, int failure = StatusCodes.Status503ServiceUnavailable)
    {
        context.Response.StatusCode = problem is null ? StatusCodes.Status200OK : failure;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : context.Response.WriteAsync((problem ?? "ok") + "\n");
    }
}
