using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
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

public static class ClusterHosting
{
    /// <summary>Turns "redis://host:port" or "host:port" into the "host:port" StackExchange.Redis parses.</summary>
    public static string RedisEndpoint(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return address.StartsWith("redis://", StringComparison.OrdinalIgnoreCase) ? address["redis://".Length..].TrimEnd('/') : address;
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
            var endpoint = RedisEndpoint(redis);
            silo.UseRedisClustering(o => o.ConfigurationOptions = ConfigurationOptions.Parse(endpoint));
            silo.AddRedisGrainStorage(ParameterServerGrain.StorageName, builder => builder.Configure<Serializer>((o, serializer) =>
            {
                o.ConfigurationOptions = ConfigurationOptions.Parse(endpoint);
                // The default JSON serializer writes float payloads far too large: use Orleans' binary one.
                o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
            }));
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
    public static IClientBuilder UseClusterConvRedis(this IClientBuilder client, string redis, string clusterId = "clusterconv", string serviceId = "clusterconv")
    {
        ArgumentNullException.ThrowIfNull(client);
        var endpoint = RedisEndpoint(redis);
        client.UseRedisClustering(o => o.ConfigurationOptions = ConfigurationOptions.Parse(endpoint));
        client.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = clusterId;
            o.ServiceId = serviceId;
        });
        return client;
    }
}
