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

    /// <summary>Ticks skipped after repeated failures: one round a minute at most then.</summary>
    private const int MaxSkippedTicks = 11;

    private readonly HashSet<string> finished = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        var failures = 0;
        var skip = 0;
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (skip > 0)
            {
                skip--;
                continue;
            }

            try
            {
                await KeepAsync(stoppingToken);
                failures = 0;
            }
            catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
            {
                // The silo may not have joined yet, or is leaving, or storage is down (Orleans logs each failed
                // activation loudly): back off to at most one round a minute until a round works again.
                LogRoundFailed(logger, e.Message);
                skip = Math.Min((1 << Math.Min(failures, 4)) - 1, MaxSkippedTicks);
                failures++;
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
