using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Connections.Security;
using Orleans.Hosting;
using Orleans.Serialization;
using Orleans.Storage;
using StackExchange.Redis;

namespace ClusterConv.Cluster;

/// <summary>Where a silo keeps checkpoints and how it finds the cluster.</summary>
public sealed class ClusterConvSiloOptions
{
    /// <summary>Redis "host:port": membership (clustering) and checkpoints (grain storage, binary serializer) live there.</summary>
    public string? Redis { get; set; }

    /// <summary>Without Redis: a folder for checkpoint files (embedded mode); null keeps them in memory.</summary>
    public string? CheckpointDirectory { get; set; }

    /// <summary>With a TLS Redis (rediss://): the CA certificates its server certificate must chain to; null: the system's.</summary>
    public X509Certificate2Collection? RedisTrustedRoots { get; set; }

    /// <summary>Mutual TLS between silos and from clients; null: plain TCP.</summary>
    public ClusterTls? Tls { get; set; }

    public string ClusterId { get; set; } = "clusterconv";

    public string ServiceId { get; set; } = "clusterconv";
}

/// <summary>Validates <see cref="ClusterConvSiloOptions"/>, naming the setting to fix.</summary>
public sealed class ClusterConvSiloOptionsValidator : IValidateOptions<ClusterConvSiloOptions>
{
    public ValidateOptionsResult Validate(string? name, ClusterConvSiloOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Redis is not null && options.CheckpointDirectory is not null)
        {
            return ValidateOptionsResult.Fail("ClusterConvSiloOptions: set Redis (--redis) or CheckpointDirectory, not both");
        }

        if (options.Redis is { } redis && !redis.Contains(':', StringComparison.Ordinal))
        {
            return ValidateOptionsResult.Fail($"ClusterConvSiloOptions.Redis (--redis) must be HOST:PORT, got '{redis}'");
        }

        return ValidateOptionsResult.Success;
    }
}

/// <summary>
/// Mutual TLS for Orleans connections: this process shows <paramref name="Certificate"/> (with its private key) and
/// accepts a peer only if the peer's certificate chains to <paramref name="TrustedRoots"/> (null: the system's roots).
/// </summary>
public sealed record ClusterTls(X509Certificate2 Certificate, X509Certificate2Collection? TrustedRoots);

/// <summary>Whether a TLS peer's certificate is trusted, and why the last one was not (for the CLI's one-line error).</summary>
public static class CertificateTrust
{
    private static string? lastRejection;

    /// <summary>Why the most recent certificate was refused in this process, or null.</summary>
    public static string? LastRejection => Volatile.Read(ref lastRejection);

    /// <param name="checkName">
    /// True for Redis (one server, reached by its name); false for silos, which are reached by IP address and
    /// share a cluster certificate: for them trust comes from the CA alone.
    /// </param>
    public static bool IsTrusted(X509Certificate? certificate, SslPolicyErrors errors, X509Certificate2Collection? roots, bool checkName)
    {
        if (certificate is null)
        {
            return Reject("the peer sent no certificate");
        }

        var subject = certificate.Subject;
        if (checkName && errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            return Reject($"certificate '{subject}' does not name the host connected to");
        }

        if (roots is null)
        {
            return !errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors) || Reject($"certificate '{subject}' (issuer '{certificate.Issuer}') does not chain to a root this system trusts");
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        // Intermediates may sit in the CA file beside the root.
        chain.ChainPolicy.ExtraStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        var certificate2 = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(certificate2) || Reject($"certificate '{subject}' (issuer '{certificate.Issuer}') is not signed by a trusted CA: {string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Distinct())}");
    }

    private static bool Reject(string why)
    {
        Volatile.Write(ref lastRejection, why);
        return false;
    }
}

public static class ClusterHosting
{
    /// <summary>
    /// Turns "redis://host:port", "rediss://host:port" (TLS) or "redis://host:port?ssl=true&amp;k=v" into the
    /// "host:port,ssl=true,k=v" StackExchange.Redis parses; any other text (already such a string) is kept.
    /// </summary>
    public static string RedisEndpoint(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        string rest;
        var tls = false;
        if (address.StartsWith("rediss://", StringComparison.OrdinalIgnoreCase))
        {
            tls = true;
            rest = address["rediss://".Length..];
        }
        else if (address.StartsWith("redis://", StringComparison.OrdinalIgnoreCase))
        {
            rest = address["redis://".Length..];
        }
        else
        {
            return address;
        }

        // ",password=..." may follow the URL (RedisAddress adds it).
        var comma = rest.IndexOf(',', StringComparison.Ordinal);
        var (head, tail) = comma < 0 ? (rest, string.Empty) : (rest[..comma], rest[comma..]);
        var parts = new List<string>();
        var query = head.IndexOf('?', StringComparison.Ordinal);
        if (query >= 0)
        {
            parts.AddRange(head[(query + 1)..].Split('&', StringSplitOptions.RemoveEmptyEntries));
            head = head[..query];
        }

        if (tls && !parts.Any(p => p.StartsWith("ssl=", StringComparison.OrdinalIgnoreCase)))
        {
            parts.Insert(0, "ssl=true");
        }

        return string.Join(',', parts.Prepend(head.TrimEnd('/'))) + tail;
    }

    /// <summary>StackExchange.Redis options for <paramref name="address"/>; with TLS, the server's certificate must chain to <paramref name="trustedRoots"/> when given.</summary>
    public static ConfigurationOptions RedisConfiguration(string address, X509Certificate2Collection? trustedRoots)
    {
        var options = ConfigurationOptions.Parse(RedisEndpoint(address));
        if (trustedRoots is not null)
        {
            options.CertificateValidation += (_, certificate, _, errors) => CertificateTrust.IsTrusted(certificate, errors, trustedRoots, checkName: true);
        }

        return options;
    }

    /// <summary>Mutual TLS on this silo's silo and gateway ports and on its connections to other silos.</summary>
    public static ISiloBuilder UseClusterConvTls(this ISiloBuilder silo, ClusterTls tls)
    {
        ArgumentNullException.ThrowIfNull(tls);
        return silo.UseTls(tls.Certificate, o => ConfigureTls(o, tls));
    }

    /// <summary>TLS to the gateways, showing the client's certificate (the silos require one).</summary>
    public static IClientBuilder UseClusterConvTls(this IClientBuilder client, ClusterTls tls)
    {
        ArgumentNullException.ThrowIfNull(tls);
        return client.UseTls(tls.Certificate, o => ConfigureTls(o, tls));
    }

    private static void ConfigureTls(TlsOptions options, ClusterTls tls)
    {
        options.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.RemoteCertificateValidation = (certificate, _, errors) => CertificateTrust.IsTrusted(certificate, errors, tls.TrustedRoots, checkName: false);
    }

    /// <summary>The grains' services: data cache, spread placement, checkpoint storage; Redis clustering when asked.</summary>
    public static ISiloBuilder AddClusterConv(this ISiloBuilder silo, ClusterConvSiloOptions options)
    {
        ArgumentNullException.ThrowIfNull(silo);
        ArgumentNullException.ThrowIfNull(options);
        var check = new ClusterConvSiloOptionsValidator().Validate(null, options);
        if (check.Failed)
        {
            throw new OptionsValidationException(nameof(ClusterConvSiloOptions), typeof(ClusterConvSiloOptions), check.Failures);
        }

        // Trace context crosses grain calls, so a step's worker and parameter-server spans join the job's step trace.
        silo.AddActivityPropagation();
        silo.Services.AddSingleton<TrainingDataCache>();
        silo.Services.AddPlacementDirector<SpreadPlacement, SpreadPlacementDirector>();
        if (options.Redis is { } redis)
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = options.ClusterId;
                o.ServiceId = options.ServiceId;
            });
            silo.UseRedisClustering(o => o.ConfigurationOptions = RedisConfiguration(redis, options.RedisTrustedRoots));

            // Where each grain lives, kept in Redis too. Orleans' default in-cluster directory deactivates the grains whose
            // entries a leaving silo held, wherever they run: a job grain on a surviving silo then restarted from its
            // checkpoint when another silo stopped (SIGTERM) or died. An external directory loses only the leaving silo's own.
            silo.UseRedisGrainDirectoryAsDefault(o => o.ConfigurationOptions = RedisConfiguration(redis, options.RedisTrustedRoots));
            silo.AddRedisGrainStorage(ParameterServerGrain.StorageName, builder => builder.Configure<Serializer>((o, serializer) =>
            {
                o.ConfigurationOptions = RedisConfiguration(redis, options.RedisTrustedRoots);
                // The default JSON serializer writes float payloads far too large: use Orleans' binary one.
                o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
            }));

            // A job outlives its job grain's silo even with no client attached (the in-process test cluster has no need).
            silo.Services.AddHostedService<JobKeeper>();
        }
        else if (options.CheckpointDirectory is { } directory)
        {
            silo.Services.AddKeyedSingleton<IGrainStorage>(ParameterServerGrain.StorageName, (sp, _) =>
                new FileGrainStorage(directory, new OrleansGrainStorageSerializer(sp.GetRequiredService<Serializer>())));
        }
        else
        {
            silo.AddMemoryGrainStorage(ParameterServerGrain.StorageName);
        }

        if (options.Tls is { } tls)
        {
            silo.UseClusterConvTls(tls);
        }

        return silo;
    }

    /// <summary>
    /// What every ClusterConv client needs: trace context carried on its grain calls (the silos carry it on theirs).
    /// Activities flow only when a listener samples the "Microsoft.Orleans.Application" source (add it to the TracerProvider).
    /// </summary>
    public static IClientBuilder AddClusterConvClient(this IClientBuilder client)
    {
        ArgumentNullException.ThrowIfNull(client);
        return client.AddActivityPropagation();
    }

    /// <summary>A client of a Redis-clustered ClusterConv cluster.</summary>
    public static IClientBuilder UseClusterConvRedis(this IClientBuilder client, string redis, string clusterId = "clusterconv", string serviceId = "clusterconv", X509Certificate2Collection? redisTrustedRoots = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        client.UseRedisClustering(o => o.ConfigurationOptions = RedisConfiguration(redis, redisTrustedRoots));
        client.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = clusterId;
            o.ServiceId = serviceId;
        });
        return client;
    }
}
