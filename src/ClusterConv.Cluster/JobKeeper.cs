using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ClusterConv.Cluster;

/// <summary>
/// Keeps running jobs running when nobody is watching. A job grain resumes from its last checkpoint when it is
/// activated again, but after its silo dies nothing activates it until some client calls it. Every silo of a Redis
/// cluster therefore asks each registered, unfinished job for its status every few seconds: a call to a live job is
/// a no-op, a call to a lost one reactivates it on a surviving silo.
/// </summary>
public sealed partial class JobKeeper(IGrainFactory grains, ILogger<JobKeeper> logger) : BackgroundService
{
    /// <summary>Well below the job grain's deactivation delay; small next to Orleans' failure detection (10 s or more).</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    private readonly HashSet<string> finished = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await KeepAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
            {
                // The silo may not have joined yet, or is leaving; the next tick tries again.
                LogRoundFailed(logger, e.Message);
            }
        }
    }

    /// <summary>One round: the status of every registered job not yet seen finished.</summary>
    public async Task KeepAsync(CancellationToken cancellation)
    {
        var jobs = await grains.GetGrain<IJobRegistryGrain>(0).ListAsync();
        foreach (var id in jobs.Where(j => !finished.Contains(j)))
        {
            cancellation.ThrowIfCancellationRequested();
            var status = await grains.GetGrain<IJobGrain>(id).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(30), cancellation);
            if (status.Phase is JobPhase.Completed or JobPhase.Failed or JobPhase.Cancelled)
            {
                finished.Add(id);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "job keeper: a round failed: {Reason}")]
    private static partial void LogRoundFailed(ILogger logger, string reason);
}
