using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace ClusterConv.Cluster;

/// <summary>
/// Places grains keyed by an integer index round-robin over the compatible silos sorted by address: index i goes to
/// silo i mod n. Resource-optimized placement samples load periodically and can stack a burst of new activations on
/// one silo; this spreads workers (and parameter-server shards) evenly and predictably.
/// </summary>
[GenerateSerializer, Immutable, Alias("clusterconv.SpreadPlacement")]
public sealed class SpreadPlacement : PlacementStrategy
{
    public static SpreadPlacement Singleton { get; } = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SpreadPlacementAttribute : PlacementAttribute
{
    public SpreadPlacementAttribute()
        : base(SpreadPlacement.Singleton)
    {
    }
}

public sealed class SpreadPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var silos = context.GetCompatibleSilos(target).OrderBy(s => s.ToString(), StringComparer.Ordinal).ToArray();
        if (silos.Length == 0)
        {
            return Task.FromResult(context.LocalSilo);
        }

        var index = target.GrainIdentity.GetIntegerKey(out _);
        var offset = target.GrainIdentity.Type.ToString()!.Contains("parameter", StringComparison.OrdinalIgnoreCase) ? 1 : 0;
        return Task.FromResult(silos[(int)((index + offset) % silos.Length)]);
    }
}
