using System.Collections.Concurrent;
using System.Diagnostics;
using ClusterConv.Cluster.Telemetry;

namespace ClusterConv.Cluster.Tests;

/// <summary>
/// A job's span ends just after its status reads finished: fixtures pass every ended span to <see cref="Observe"/> and
/// tests await <see cref="WaitAsync"/> before reading the job span's events.
/// </summary>
public sealed class JobSpanEnds
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> ends = new();

    public void Observe(Activity span)
    {
        if (span.OperationName == ClusterTelemetry.Spans.Job && span.GetTagItem(ClusterTelemetry.Attributes.Job) is string jobId)
        {
            Of(jobId).TrySetResult();
        }
    }

    /// <summary>Until job <paramref name="jobId"/>'s span has ended, or 10 s (the test's assertions then say what is missing).</summary>
    public Task WaitAsync(string jobId) => Task.WhenAny(Of(jobId).Task, Task.Delay(TimeSpan.FromSeconds(10)));

    private TaskCompletionSource Of(string jobId) => ends.GetOrAdd(jobId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
}
