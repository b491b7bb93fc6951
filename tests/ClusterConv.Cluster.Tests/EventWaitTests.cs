using System.Diagnostics;

namespace ClusterConv.Cluster.Tests;

/// <summary>Following a job by long poll: the job grain answers when there is something new, not on a timer.</summary>
public sealed class EventWaitTests
{
    // Below Orleans' 30 s response timeout; a wait that returns before it was woken, not timed out.
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(25);

    [Fact]
    public async Task A_wait_returns_with_the_next_event_and_on_the_jobs_end_while_status_and_cancel_are_answered()
    {
        // Orders past step 200 wait at the workers' door until the job is cancelled: it is still running when asked, however fast the machine.
        var gate = new StepGate("long-poll", holdAfter: 200);
        var (cluster, directory) = await TestClusters.StartAsync(1, gate: gate);
        try
        {
            var spec = TestClusters.Spec("long-poll", workers: 2, steps: 400) with { Epochs = 20, LogEvery = 2, StatsEvery = 0, CheckpointEvery = 0 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);

            // Another incarnation than the caller knows: answered at once, from the first event.
            var first = await job.WaitForEventsAsync("not-this-one", 41, Wait);
            Assert.NotEmpty(first.Incarnation);

            // Follow a few events: each wait ends with at least one new event.
            long after = first.Events.Length > 0 ? first.Events[^1].Sequence : -1;
            for (var i = 0; i < 3; i++)
            {
                var clock = Stopwatch.StartNew();
                var next = await job.WaitForEventsAsync(first.Incarnation, after, Wait);
                Assert.True(clock.Elapsed < Wait, "the wait timed out instead of returning with the next event");
                Assert.NotEmpty(next.Events);
                Assert.Equal(after + 1, next.Events[0].Sequence);
                after = next.Events[^1].Sequence;
            }

            // A wait for an event far ahead: status and cancel are answered meanwhile, and the job's end wakes it.
            var waitClock = Stopwatch.StartNew();
            var pending = job.WaitForEventsAsync(first.Incarnation, 1_000_000, Wait);
            var status = await job.GetStatusAsync();
            Assert.Equal(JobPhase.Running, status.Phase);
            Assert.False(pending.IsCompleted);
            await job.CancelAsync();
            gate.Open();
            var ended = await pending;
            Assert.Equal(JobPhase.Cancelled, ended.Status.Phase);
            Assert.True(waitClock.Elapsed < Wait, "the wait timed out instead of being woken by the job's end");
        }
        finally
        {
            gate.Open();
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    [Fact]
    public async Task A_client_woken_by_the_middle_steps_event_gets_that_steps_weights()
    {
        var (cluster, directory) = await TestClusters.StartAsync(1);
        try
        {
            // One epoch cut short by MaxSteps: the job keeps the weights of half the steps (step 6).
            var spec = TestClusters.Spec("long-poll-middle", workers: 2, steps: 12) with { LogEvery = 1, StatsEvery = 0, CheckpointEvery = 0 };
            var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
            await job.StartAsync(spec);
            var incarnation = string.Empty;
            long after = -1;
            byte[]? middle = null;
            while (middle is null)
            {
                var batch = await job.WaitForEventsAsync(incarnation, after, Wait);
                (incarnation, after) = (batch.Incarnation, batch.Events.Length > 0 ? batch.Events[^1].Sequence : after);
                if (batch.Status.Step >= 6)
                {
                    // Asked at once: the event went out before the weights were read, and the job hands them over when they are.
                    middle = await job.GetSnapshotAsync(6);
                    Assert.NotNull(middle);
                }

                Assert.True(batch.Status.Phase == JobPhase.Running || middle is not null, $"job ended: {batch.Status.Phase} {batch.Status.Error}");
            }

            Assert.Equal(JobPhase.Completed, (await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(60))).Phase);
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }
}
