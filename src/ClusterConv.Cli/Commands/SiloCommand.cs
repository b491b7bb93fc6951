using System.CommandLine;
using System.Net;
using ClusterConv.Cli.Hosting;
using ClusterConv.Cli.Training;
using ClusterConv.Cluster;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;

namespace ClusterConv.Cli.Commands;

/// <summary>`clusterconv silo`: runs a silo that joins a cluster whose membership and checkpoints live in Redis.</summary>
internal static class SiloCommand
{
    public static Command Create()
    {
        var redis = new Option<string>("--redis") { Description = "HOST:PORT (or redis://HOST:PORT, rediss://HOST:PORT for TLS, or a StackExchange.Redis configuration string) of the Redis server holding membership and checkpoints.", Required = true };
        var passwordFile = RedisAddress.PasswordFileOption();
        var (metricsPort, metricsHost) = MetricsListen.Options();
        var siloPort = new Option<int>("--silo-port") { Description = "Port for silo-to-silo traffic.", DefaultValueFactory = _ => 11111 };
        var gatewayPort = new Option<int>("--gateway-port") { Description = "Port clients connect to.", DefaultValueFactory = _ => 30000 };
        foreach (var port in new[] { siloPort, gatewayPort })
        {
            port.Validators.Add(r =>
            {
                if (r.GetValueOrDefault<int>() is < 1 or > 65535)
                {
                    r.AddError($"{port.Name} must be a port number 1 to 65535, got {r.GetValueOrDefault<int>()}");
                }
            });
        }

        var name = new Option<string?>("--name") { Description = "Silo name (default: silo-PORT)." };
        var advertise = new Option<string>("--advertise") { Description = "IP address other silos and clients reach this one at.", DefaultValueFactory = _ => "127.0.0.1" };
        var verbose = CommonOptions.Verbose();
        var command = new Command("silo", "Run a silo of a Redis-clustered ClusterConv cluster until SIGTERM or Ctrl-C.")
        {
            redis, passwordFile, siloPort, gatewayPort, name, advertise, metricsPort, metricsHost, verbose,
        };
        var security = new SecurityOptions();
        security.AddTo(command);
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(verbose), token =>
        {
            var address = RedisAddress.Resolve(parse.GetValue(redis)!, parse.GetValue(passwordFile), Environment.GetEnvironmentVariable(RedisAddress.PasswordVariable));
            var metrics = MetricsListen.From(parse.GetValue(metricsPort), parse.GetValue(metricsHost));
            return RunAsync(address, security.Resolve(parse), parse.GetValue(siloPort), parse.GetValue(gatewayPort), parse.GetValue(name), parse.GetValue(advertise)!, metrics, parse.GetValue(verbose), token).GetAwaiter().GetResult();
        }));
        return command;
    }

    private static async Task<int> RunAsync(RedisAddress redis, ClusterSecurity security, int siloPort, int gatewayPort, string? name, string advertise, MetricsListen? metrics, bool verbose, CancellationToken cancellation)
    {
        if (!IPAddress.TryParse(advertise, out var address))
        {
            throw new UserException($"--advertise must be an IP address, got '{advertise}'");
        }

        // Orleans would fail deep in its start with a stack trace that names no port; say which one is taken.
        EnsureFree(address, siloPort, "--silo-port");
        EnsureFree(address, gatewayPort, "--gateway-port");
        var siloName = name ?? $"silo-{siloPort}";
        var builder = CommandHost.CreateBuilder();
        ClusterTrainer.QuietLogging(builder.Logging);

        // A silo that cannot start (Redis unreachable) is reported once, below; Orleans would log it with stack traces.
        var started = false;
        builder.Logging.AddFilter("Orleans", level => level >= LogLevel.Error && (Volatile.Read(ref started) || verbose));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        HostTelemetry.Add(builder.Services, metrics, new TelemetryIdentity(siloName, siloName, null), MetricsEndpoint.SiloHealth);
        builder.UseOrleans(silo =>
        {
            silo.Configure<EndpointOptions>(o =>
            {
                o.AdvertisedIPAddress = address;
                o.SiloPort = siloPort;
                o.GatewayPort = gatewayPort;
            });
            silo.Configure<SiloOptions>(o => o.SiloName = siloName);

            // Failure-detection timings from configuration, e.g. Orleans__Membership__ProbeTimeout=00:00:01 in the environment.
            silo.Services.Configure<ClusterMembershipOptions>(builder.Configuration.GetSection("Orleans:Membership"));
            silo.AddClusterConv(new ClusterConvSiloOptions { Redis = ClusterHosting.RedisEndpoint(redis.Connect), RedisTrustedRoots = security.RedisTrustedRoots, Tls = security.Tls });
        });
        using var host = builder.Build();
        try
        {
            await host.StartAsync(cancellation);
        }
        catch (Microsoft.AspNetCore.Connections.AddressInUseException e)
        {
            // Taken between the check above and the bind.
            throw new UserException($"--silo-port {siloPort} or --gateway-port {gatewayPort}: address {address} already in use", e, ExitCodes.IoError);
        }
        catch (Exception e) when (RedisFailure(e) is not null)
        {
            var message = RedisFailure(e)!.Message;
            var cut = message.IndexOf(" To allow this multiplexer", StringComparison.Ordinal);
            var tls = CertificateTrust.LastRejection is { } rejected ? $"; TLS refused Redis' certificate: {rejected}" : string.Empty;
            throw new UserException($"--redis {redis.Display}: could not connect: {(cut > 0 ? message[..cut] : message).ReplaceLineEndings(" ")}{tls}", e, ExitCodes.IoError);
        }

        Volatile.Write(ref started, true);

        Console.WriteLine($"silo {siloName} running: silo port {siloPort}, gateway port {gatewayPort}, redis {redis.Display}, {security.Describe()}");
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        using (cancellation.Register(lifetime.StopApplication))
        {
            // Graceful stop (SIGTERM, Ctrl-C): Orleans deactivates this silo's grains so they reactivate elsewhere.
            // Shutdown can hang (Orleans retries its membership update): leave after the shutdown timeout regardless,
            // and after a few seconds when Redis is gone, as neither the leave nor any hand-over state can be recorded.
            using var watchdog = lifetime.ApplicationStopping.Register(() => _ = WatchdogAsync(redis, siloName));
            await host.WaitForShutdownAsync(CancellationToken.None);
        }

        Console.WriteLine($"silo {siloName} stopped");
        return ExitCodes.Success;
    }

    /// <summary>The Redis connection failure in <paramref name="e"/>'s chain (a TLS or password refusal has an inner exception of its own).</summary>
    private static Exception? RedisFailure(Exception e)
    {
        for (Exception? x = e; x is not null; x = x is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : x.InnerException)
        {
            if (x.GetType().Name == "RedisConnectionException")
            {
                return x;
            }
        }

        return null;
    }

    private static async Task WatchdogAsync(RedisAddress redis, string siloName)
    {
        if (!await RedisReachableAsync(redis.Connect))
        {
            Console.Error.WriteLine($"silo {siloName}: Redis {redis.Display} unreachable while stopping; leaving without recording it (the other silos declare this one dead)");
            await Task.Delay(UnreachableGrace);
        }
        else
        {
            await Task.Delay(ShutdownWatchdog);
        }

        Environment.Exit(ExitCodes.Success);
    }

    /// <summary>How long a stopping silo may take before it exits regardless (orchestrators allow 45 s).</summary>
    internal static readonly TimeSpan ShutdownWatchdog = TimeSpan.FromSeconds(30);

    /// <summary>How long a stopping silo whose Redis is gone lets its grains deactivate before it exits.</summary>
    internal static readonly TimeSpan UnreachableGrace = TimeSpan.FromSeconds(3);

    /// <summary>True when a TCP connection to one of Redis' endpoints opens within 2 s.</summary>
    private static async Task<bool> RedisReachableAsync(string connect)
    {
        foreach (var endpoint in StackExchange.Redis.ConfigurationOptions.Parse(ClusterHosting.RedisEndpoint(connect)).EndPoints)
        {
            var (host, port) = endpoint switch
            {
                DnsEndPoint d => (d.Host, d.Port),
                IPEndPoint i => (i.Address.ToString(), i.Port),
                _ => (endpoint.ToString() ?? string.Empty, 0),
            };
            using var tcp = new System.Net.Sockets.TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                await tcp.ConnectAsync(host, port == 0 ? 6379 : port, timeout.Token);
                return true;
            }
            catch (Exception e) when (e is OperationCanceledException or System.Net.Sockets.SocketException)
            {
            }
        }

        return false;
    }

    private static void EnsureFree(IPAddress address, int port, string option)
    {
        var probe = new System.Net.Sockets.TcpListener(address, port);
        try
        {
            probe.Start();
        }
        catch (System.Net.Sockets.SocketException e) when (e.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse)
        {
            throw new UserException($"{option} {port}: {address}:{port} is already in use (another silo or program listens on it)", e, ExitCodes.IoError);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new UserException($"{option} {port}: cannot listen on {address}:{port}: {e.Message}", e, ExitCodes.IoError);
        }
        finally
        {
            probe.Stop();
        }
    }
}
