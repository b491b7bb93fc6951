using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace ClusterConv.Integration.Tests;

/// <summary>
/// Issue 8's faults against real processes: a redis-server, three silo processes and a `train --cluster` client.
/// Each scenario runs the fixture's job (bsp, seed 11, 120 steps), injects one fault after step 12 (mid first epoch,
/// after the checkpoint of step 10) and checks that the job ends on its own with the fault-free run's weights, that
/// summary.json counts what was redone, that every checkpoint reads back and that no process it started still runs.
/// </summary>
public sealed class ClusterFaultTests(FaultCluster cluster, ITestOutputHelper output) : IClassFixture<FaultCluster>
{
    private const long FaultStep = 12;

    [Fact]
    public async Task Sigkill_of_a_silo_hosting_only_workers_mid_epoch_recomputes_their_step_and_keeps_the_weights()
    {
        const string job = "fault-worker-kill";
        using var run = await StartLocatedAsync(job);
        var (train, outDir, ps, jobHost) = (run.Train, run.OutDir, run.Ps, run.JobHost);
        var workers = FaultCluster.WorkerSilos(outDir);
        // A silo with a worker but neither the parameter-server shard nor the job grain: only worker state is lost.
        var victim = cluster.Silos.First(s => workers.Contains(s.Name) && s != ps && s != jobHost);

        await cluster.WaitForStepAsync(train, outDir, FaultStep);
        var (at, recovery) = await FaultAsync(train, outDir, () => victim.Process.Kill());
        var summary = await FinishLikeBaselineAsync(train, outDir, $"worker silo SIGKILL (parameter server on {ps.Name}, job grain on {jobHost?.Name})", victim.Name, at, recovery);
        // The lost worker's step is computed again (steps_recomputed). The job grain and the shard live on: nothing
        // continues from a checkpoint (with Orleans' in-cluster directory the job grain restarted when the dead silo
        // had held its directory entry).
        Assert.True(Count(summary, "steps_recomputed") >= 1, Why(summary));
        Assert.True(Count(summary, "restarts") == 0, Why(summary));
        await cluster.AssertCheckpointsReadableAsync(outDir, job);
        FaultCluster.AssertGone(train, victim.Process);
    }

    [Fact]
    public async Task Sigkill_of_the_silo_hosting_the_parameter_server_recovers_from_its_checkpoint_and_keeps_the_weights()
    {
        const string job = "fault-ps-kill";
        using var run = await StartLocatedAsync(job);
        var (train, outDir, ps, jobHost) = (run.Train, run.OutDir, run.Ps, run.JobHost);

        await cluster.WaitForStepAsync(train, outDir, FaultStep);
        var (at, recovery) = await FaultAsync(train, outDir, () => ps.Process.Kill());
        var summary = await FinishLikeBaselineAsync(train, outDir, $"parameter-server silo SIGKILL{JobGrainOn(jobHost, ps)}", ps.Name, at, recovery);
        // The shard comes back from its last checkpoint: every shard rolls back there and the steps after it are redone
        // (restarts). A kill right after a checkpoint round leaves nothing to roll back: only the lost worker's step.
        Assert.True(Count(summary, "restarts") + Count(summary, "steps_recomputed") >= 1, Why(summary));
        await cluster.AssertCheckpointsReadableAsync(outDir, job);
        FaultCluster.AssertGone(train, ps.Process);
    }

    [Fact]
    public async Task Sigkill_while_checkpoints_are_written_leaves_every_checkpoint_readable()
    {
        const string job = "fault-checkpoint-kill";
        // A checkpoint round after every step: the shard's silo spends much of each step writing to Redis, so the kill
        // lands in or right next to a write of its `ps-previous`/`ps` states or of the job's state.
        using var run = await StartLocatedAsync(job, checkpointEvery: 1);
        var (train, outDir, ps, jobHost) = (run.Train, run.OutDir, run.Ps, run.JobHost);

        await cluster.WaitForStepAsync(train, outDir, FaultStep);
        var (at, recovery) = await FaultAsync(train, outDir, () => ps.Process.Kill());
        var summary = await FinishLikeBaselineAsync(train, outDir, $"SIGKILL during checkpoint writes (--checkpoint-every 1){JobGrainOn(jobHost, ps)}", ps.Name, at, recovery);
        // A rollback to the checkpoint (restarts) when the shard came back behind the job, the lost workers' step computed
        // again (steps_recomputed), or, when the kill fell between two steps whose checkpoint was complete, only the
        // grains moved (rebalances): something is always counted.
        Assert.True(Count(summary, "restarts") + Count(summary, "steps_recomputed") + Count(summary, "rebalances") >= 1, Why(summary));
        await cluster.AssertCheckpointsReadableAsync(outDir, job, checkpointEvery: 1);
        FaultCluster.AssertGone(train, ps.Process);
    }

    [Fact]
    public async Task Redis_stopped_for_10_seconds_and_restarted_is_ridden_out()
    {
        await cluster.EnsureSilosAsync();
        const string job = "fault-redis-outage";
        var outDir = cluster.RunDirectory(job);
        using var train = cluster.Train(job, outDir);
        await cluster.WaitForStepAsync(train, outDir, FaultStep);
        var at = FaultCluster.MaxStep(outDir);
        await cluster.StopRedisAsync();
        // The outage itself is the scenario: ten seconds without Redis.
        await Task.Delay(TimeSpan.FromSeconds(10));
        var duringOutage = FaultCluster.MaxStep(outDir) - at;
        cluster.StartRedis();
        await ChildProcess.WaitForRedisAsync(cluster.RedisPort, TimeSpan.FromSeconds(20));
        var back = Stopwatch.StartNew();
        await cluster.WaitForStepAsync(train, outDir, Math.Min(FaultCluster.MaxStep(outDir) + 2, FaultCluster.Steps - 1));
        var resumed = back.Elapsed;
        var summary = await cluster.FinishAsync(train, outDir);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FAULT redis outage 10 s after step {at}: steps during outage {duringOutage}; two steps on {resumed.TotalSeconds:F1} s after Redis was back; {Counts(summary)}"));

        cluster.AssertLikeBaseline(summary);
        // Every silo is still there: Redis holds membership, but silos probe each other directly.
        Assert.All(cluster.Silos, s => Assert.False(s.Process.HasExited, $"{s.Name} exited:\n{s.Process.Output}"));
        await cluster.AssertCheckpointsReadableAsync(outDir, job);
        FaultCluster.AssertGone(train);
    }

    [Fact]
    public async Task A_silo_paused_past_the_membership_timeout_is_declared_dead_and_ends_itself_when_resumed()
    {
        const string job = "fault-sigstop";
        using var run = await StartLocatedAsync(job);
        var (train, outDir, ps, jobHost) = (run.Train, run.OutDir, run.Ps, run.JobHost);
        try
        {
            await cluster.WaitForStepAsync(train, outDir, FaultStep);
            var at = FaultCluster.MaxStep(outDir);
            var paused = Stopwatch.StartNew();
            ps.Process.Signal("STOP");
            await cluster.WaitDeclaredDeadAsync(ps.Name, TimeSpan.FromSeconds(120));
            var declared = paused.Elapsed;
            // The job goes on past the paused shard once its silo is dead to the others.
            await cluster.WaitForStepAsync(train, outDir, at + 2);
            var recovery = paused.Elapsed;
            ps.Process.Signal("CONT");
            var resumed = Stopwatch.StartNew();
            Assert.True(await ps.Process.WaitForExitAsync(TimeSpan.FromSeconds(90)), $"{ps.Name} still runs after SIGCONT:\n{ps.Process.Output}");
            var ended = resumed.Elapsed;
            var summary = await FinishLikeBaselineAsync(train, outDir, $"SIGSTOP of the parameter-server silo{JobGrainOn(jobHost, ps)}, declared dead after {declared.TotalSeconds:F1} s, SIGCONT {recovery.TotalSeconds:F1} s after SIGSTOP; then it exited with {ps.Process.ExitCode} in {ended.TotalSeconds:F1} s", ps.Name, at, recovery);
            Assert.True(Count(summary, "restarts") >= 1, Why(summary));
            await cluster.AssertCheckpointsReadableAsync(outDir, job);
            FaultCluster.AssertGone(train, ps.Process);
        }
        finally
        {
            ps.Process.Signal("CONT");
        }
    }

    [Fact]
    public async Task The_submitting_client_killed_and_a_new_one_attached_follows_the_job_to_its_end()
    {
        await cluster.EnsureSilosAsync();
        const string job = "fault-client-kill";
        var outDir = cluster.RunDirectory(job);
        using var train = cluster.Train(job, outDir);
        await cluster.WaitForStepAsync(train, outDir, FaultStep);
        train.Kill();
        Assert.True(await train.WaitForExitAsync(TimeSpan.FromSeconds(20)));

        var attachedDir = cluster.RunDirectory(job + "-attached");
        var (status, summary) = await AttachToEndAsync(job, attachedDir);

        // The job never noticed: nothing redone; the attached client reports the fault-free weights and accuracy.
        Assert.Contains("restarts 0 steps_recomputed 0", status, StringComparison.Ordinal);
        var accuracy = File.ReadLines(Path.Combine(attachedDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(l => l["type"]!.GetValue<string>() == "epoch").Last()["test_accuracy"]!.GetValue<double>();
        Assert.Equal(cluster.Baseline["test_accuracy"]!.GetValue<double>(), accuracy, 6);
        foreach (var file in Directory.GetFiles(Path.Combine(attachedDir, "checkpoints"), "*.ckpt").Concat(Directory.GetFiles(Path.Combine(outDir, "checkpoints"), "*.ckpt")))
        {
            _ = Engine.Checkpoints.ModelCheckpoint.LoadFile(file);
        }

        Assert.True(File.Exists(Path.Combine(attachedDir, "checkpoints", $"step-{FaultCluster.Steps}.ckpt")));
        Assert.Equal(0, Count(summary, "restarts"));
        Assert.Equal(0, Count(summary, "steps_recomputed"));
        FaultCluster.AssertGone(train);
        output.WriteLine($"FAULT client SIGKILL + attach: {status}");
    }

    [Fact]
    public async Task With_no_client_left_a_job_whose_job_grain_silo_dies_goes_on_by_itself()
    {
        const string job = "fault-unattended";
        using var run = await StartLocatedAsync(job);
        var (train, outDir, jobHost) = (run.Train, run.OutDir, run.JobHost);
        Assert.True(jobHost is not null, $"no silo reports {FaultCluster.JobMetric} for {job}");
        await cluster.WaitForStepAsync(train, outDir, FaultStep);
        train.Kill();
        Assert.True(await train.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        var clock = Stopwatch.StartNew();
        jobHost.Process.Kill();
        Assert.True(await jobHost.Process.WaitForExitAsync(TimeSpan.FromSeconds(20)));

        // Nobody calls the job: the job grain must come back on a surviving silo by itself (the silos' JobKeeper) and
        // run steps there, which that silo's /metrics shows.
        FaultSilo? newHost = null;
        while (newHost is null)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), $"the job grain was not reactivated within 120 s with no client:\n{cluster.SiloOutput()}");
            await Task.Delay(500);
            try
            {
                newHost = await cluster.HostOfAsync(FaultCluster.JobMetric, job);
            }
            catch (HttpRequestException)
            {
                // A silo busy joining or leaving; ask again.
            }
        }

        var resumed = clock.Elapsed;
        var attachedDir = cluster.RunDirectory(job + "-attached");
        var (status, summary) = await AttachToEndAsync(job, attachedDir);
        Assert.Matches("restarts [1-9]", status);
        Assert.True(Count(summary, "restarts") >= 1, Why(summary));
        foreach (var file in Directory.GetFiles(Path.Combine(attachedDir, "checkpoints"), "*.ckpt").Concat(Directory.GetFiles(Path.Combine(outDir, "checkpoints"), "*.ckpt")))
        {
            _ = Engine.Checkpoints.ModelCheckpoint.LoadFile(file);
        }

        FaultCluster.AssertGone(train, jobHost.Process);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FAULT client SIGKILL + SIGKILL of the job grain's silo {jobHost.Name}: job grain running again on {newHost.Name} {resumed.TotalSeconds:F1} s after the kill with no client; {status}"));
    }

    [Fact]
    public async Task A_silo_terminated_gracefully_mid_job_hands_its_grains_over_and_exits_0()
    {
        const string job = "fault-sigterm";
        using var run = await StartLocatedAsync(job);
        var (train, outDir, ps, jobHost) = (run.Train, run.OutDir, run.Ps, run.JobHost);

        await cluster.WaitForStepAsync(train, outDir, FaultStep);
        var stopping = Stopwatch.StartNew();
        var (at, recovery) = await FaultAsync(train, outDir, () => ps.Process.Terminate());
        Assert.True(await ps.Process.WaitForExitAsync(TimeSpan.FromSeconds(45)), $"{ps.Name} did not exit within 45 s of SIGTERM:\n{ps.Process.Output}");
        var exited = stopping.Elapsed;
        Assert.True(ps.Process.ExitCode == 0, $"exit {ps.Process.ExitCode}:\n{ps.Process.Output}");
        var summary = await FinishLikeBaselineAsync(train, outDir, $"SIGTERM of the parameter-server silo{JobGrainOn(jobHost, ps)} (exit 0 after {exited.TotalSeconds:F1} s)", ps.Name, at, recovery);
        // Handed over, never continued from a checkpoint: the grain directory lives in Redis, so no grain on a surviving
        // silo is deactivated because the stopping silo held its directory entry (Orleans' in-cluster directory did that).
        Assert.True(Count(summary, "restarts") == 0, Why(summary));
        Assert.True(Count(summary, "rebalances") >= 1, Why(summary));
        await cluster.AssertCheckpointsReadableAsync(outDir, job);
        FaultCluster.AssertGone(train, ps.Process);
    }

    [Fact]
    public async Task Ssp_sigkill_of_the_silo_hosting_the_parameter_server_rolls_every_shard_back_to_the_last_checkpoint_round()
    {
        const string job = "fault-ssp-ps-kill";
        await cluster.EnsureSilosAsync();
        var outDir = cluster.RunDirectory(job);
        using var train = cluster.Train(job, outDir, mode: "ssp:2");
        await cluster.WaitForStepAsync(train, outDir, 1);
        var ps = await cluster.HostOfAsync(FaultCluster.ReceivedMetric, job, FaultCluster.PsRole);
        Assert.True(ps is not null, $"no silo reports {FaultCluster.ReceivedMetric}{{{FaultCluster.PsRole}}} for {job}");

        await cluster.WaitForStepAsync(train, outDir, FaultStep);
        var (at, recovery) = await FaultAsync(train, outDir, () => ps.Process.Kill());
        var summary = await cluster.FinishAsync(train, outDir);
        Report("ssp:2, parameter-server silo SIGKILL", ps.Name, at, recovery, summary);
        // A free-mode shard comes back from its checkpoint (Redis, per-shard version): the job stops the workers, rolls
        // every shard back to the last checkpoint round and goes on (restarts, steps_recomputed). ssp is not bitwise
        // reproducible, so the run is held to completing every round and to the fault-free run's accuracy, loosely.
        Assert.Equal(FaultCluster.Steps, summary["steps"]!.GetValue<long>());
        Assert.Equal("ssp:2", summary["mode"]!.GetValue<string>());
        Assert.True(Count(summary, "restarts") + Count(summary, "steps_recomputed") >= 1, Why(summary));
        var accuracy = summary["test_accuracy"]!.GetValue<double>();
        var baseline = cluster.Baseline["test_accuracy"]!.GetValue<double>();
        Assert.True(Math.Abs(accuracy - baseline) <= 0.05, $"test accuracy {accuracy} vs {baseline} (bsp) without faults\n{Why(summary)}");
        // An ssp run folder holds step 0's and the final checkpoint, and each epoch's end unless the job grain that kept
        // those weights died before the client read them (the client writes no file per checkpoint round).
        FaultCluster.AssertCheckpointFilesReadable(outDir, minimumFiles: 2);
        FaultCluster.AssertGone(train, ps.Process);
    }

    /// <summary>
    /// `attach JOB` to the job's end, then `status JOB`: both exit 0, the job completed every step, and the attached run
    /// folder's summary.json matches the fault-free run. Returns status' line and that summary.
    /// </summary>
    private async Task<(string Status, JsonNode Summary)> AttachToEndAsync(string job, string attachedDir)
    {
        using var attach = cluster.Verb("attach", job, "--cluster", cluster.Address, "--out", attachedDir);
        Assert.True(await attach.WaitForExitAsync(TimeSpan.FromSeconds(300)), $"attach did not finish:\n{attach.Output}\n{cluster.SiloOutput()}");
        Assert.True(attach.ExitCode == 0, $"attach exited with {attach.ExitCode}:\n{attach.Output}");
        Assert.Contains(cluster.Baseline["weights_sha256"]!.GetValue<string>(), attach.Output, StringComparison.Ordinal);
        using var status = cluster.Verb("status", job, "--cluster", cluster.Address);
        Assert.True(await status.WaitForExitAsync(TimeSpan.FromSeconds(60)) && status.ExitCode == 0, status.Output);
        Assert.Contains($"completed step {FaultCluster.Steps}/{FaultCluster.Steps}", status.Output, StringComparison.Ordinal);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(attachedDir, "summary.json")))!;
        cluster.AssertLikeBaseline(summary);
        FaultCluster.AssertGone(attach, status);
        return (status.Output.Trim(), summary);
    }

    /// <summary>
    /// Starts the fixture's job and waits for its first steps, so that where the grains are is known: the silo of the
    /// parameter-server shard and of the job grain (from their /metrics).
    /// </summary>
    private async Task<LocatedRun> StartLocatedAsync(string job, int checkpointEvery = FaultCluster.CheckpointEvery)
    {
        await cluster.EnsureSilosAsync();
        var outDir = cluster.RunDirectory(job);
        var train = cluster.Train(job, outDir, checkpointEvery);
        await cluster.WaitForStepAsync(train, outDir, 1);
        var ps = await cluster.HostOfAsync(FaultCluster.PsMetric, job);
        Assert.True(ps is not null, $"no silo reports {FaultCluster.PsMetric} for {job}");
        return new LocatedRun(train, outDir, ps, await cluster.HostOfAsync(FaultCluster.JobMetric, job));
    }

    private sealed record LocatedRun(ChildProcess Train, string OutDir, FaultSilo Ps, FaultSilo? JobHost) : IDisposable
    {
        public void Dispose() => Train.Dispose();
    }

    /// <summary>Waits for the client's end, reports the scenario, and checks the run against the fault-free one.</summary>
    private async Task<JsonNode> FinishLikeBaselineAsync(ChildProcess train, string outDir, string scenario, string silo, long at, TimeSpan recovery)
    {
        var summary = await cluster.FinishAsync(train, outDir);
        Report(scenario, silo, at, recovery, summary);
        cluster.AssertLikeBaseline(summary);
        return summary;
    }

    /// <summary>Injects the fault; returns the last step logged before it and the time until two later steps are logged.</summary>
    private async Task<(long At, TimeSpan Recovery)> FaultAsync(ChildProcess train, string outDir, Action fault)
    {
        var at = FaultCluster.MaxStep(outDir);
        var clock = Stopwatch.StartNew();
        fault();
        // Two steps on: the next one may have been in flight before the fault.
        await cluster.WaitForStepAsync(train, outDir, at + 2);
        return (at, clock.Elapsed);
    }

    private static string JobGrainOn(FaultSilo? jobHost, FaultSilo victim) => jobHost == victim ? " (job grain there too)" : $" (job grain on {jobHost?.Name})";

    private string Why(JsonNode summary) => $"{summary.ToJsonString()}\n{cluster.SiloOutput()}";

    private static long Count(JsonNode summary, string name) => summary[name]!.GetValue<long>();

    private static string Counts(JsonNode summary) =>
        string.Create(CultureInfo.InvariantCulture, $"restarts {Count(summary, "restarts")}, steps_recomputed {Count(summary, "steps_recomputed")}, rebalances {Count(summary, "rebalances")}, test_accuracy {summary["test_accuracy"]}, wall {summary["wall_seconds"]} s, sha {summary["weights_sha256"]}");

    private void Report(string scenario, string silo, long at, TimeSpan recovery, JsonNode summary)
    {
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FAULT {scenario}: {silo} after step {at}; two steps on after {recovery.TotalSeconds:F1} s; {Counts(summary)}"));

        // What the job grain said about it (its warnings: retries, rollbacks, restarts).
        var job = summary["job_id"]!.GetValue<string>();
        foreach (var line in cluster.SiloOutput().Split('\n').Where(l => l.Contains("JobGrain", StringComparison.Ordinal) && l.Contains(job, StringComparison.Ordinal)))
        {
            output.WriteLine("  " + (line.Length > 300 ? line[..300] : line));
        }
    }
}

/// <summary>A silo on its own: needs no job.</summary>
public sealed class SiloShutdownTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_silo_whose_Redis_is_gone_exits_on_SIGTERM_within_its_grace_period()
    {
        using var cluster = await SingleSiloCluster.StartAsync("redis-gone");
        var silo = cluster.Silo!;
        await cluster.KillRedisAsync();
        var clock = Stopwatch.StartNew();
        silo.Terminate();
        Assert.True(await silo.WaitForExitAsync(TimeSpan.FromSeconds(90)), $"silo still runs 90 s after SIGTERM:\n{silo.Output}");
        var elapsed = clock.Elapsed;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FAULT silo without Redis: exit {silo.ExitCode} {elapsed.TotalSeconds:F1} s after SIGTERM"));
        // 45 s: terminationGracePeriodSeconds and stop_grace_period of the deployment files.
        Assert.True(elapsed < TimeSpan.FromSeconds(45), $"exit after {elapsed.TotalSeconds:F1} s:\n{silo.Output}");
        Assert.True(silo.ExitCode == 0, $"exit {silo.ExitCode}:\n{silo.Output}");
    }
}
