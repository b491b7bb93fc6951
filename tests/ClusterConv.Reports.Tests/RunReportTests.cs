using System.Text.Json.Nodes;

namespace ClusterConv.Reports.Tests;

/// <summary>Two really trained tiny runs (one with three first-layer filters forced dead) and their reports.</summary>
public sealed class ReportedRuns : IDisposable
{
    public static readonly int[] ForcedDead = [0, 1, 2];

    public ReportedRuns()
    {
        Root = Directory.CreateTempSubdirectory("clusterconv-report-").FullName;
        Normal = new TinyRun(Path.Combine(Root, "normal"));
        Dead = new TinyRun(Path.Combine(Root, "dead"), ForcedDead);
        NormalReport = RunReport.Write(Normal.Directory, null, TinyRun.TestImages);
        DeadReport = RunReport.Write(Dead.Directory, null, TinyRun.TestImages);
    }

    public string Root { get; }

    public TinyRun Normal { get; }

    public TinyRun Dead { get; }

    public ReportResult NormalReport { get; }

    public ReportResult DeadReport { get; }

    public void Dispose()
    {
        // The screenshot stays for a person to look at when CLUSTERCONV_KEEP_TEST_OUTPUT is set.
        if (Environment.GetEnvironmentVariable("CLUSTERCONV_KEEP_TEST_OUTPUT") is null)
        {
            Directory.Delete(Root, recursive: true);
        }
    }
}

public sealed class RunReportTests(ReportedRuns runs) : IClassFixture<ReportedRuns>
{
    [Fact]
    public async Task Report_opens_in_headless_chromium_with_no_console_errors_every_image_decoded_and_every_section_present()
    {
        Assert.True(HeadlessChromium.Executable is not null, "chromium is not installed (apt-get install chromium; test.sh does)");
        await using var browser = await HeadlessChromium.StartAsync(Path.Combine(runs.Root, "chromium-profile"));
        await browser.OpenAsync(runs.NormalReport.Path);
        var page = (await browser.EvaluateAsync("""
            (async () => {
              const images = [...document.images];
              await Promise.all(images.map(i => i.decode().catch(() => null)));
              return {
                images: images.length,
                broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
                sections: [...document.querySelectorAll('section')].map(s => s.id),
                headings: [...document.querySelectorAll('section > h2')].map(h => h.textContent),
                statements: [...document.querySelectorAll('#measurements .statement')].map(s => s.dataset.key),
                external: [...document.querySelectorAll('[src]')].filter(e => !e.getAttribute('src').startsWith('data:image/png;base64,')).length,
              };
            })()
            """))!.AsObject();
        var screenshot = await browser.ScreenshotAsync();
        var screenshotPath = Path.Combine(runs.Root, "report-screenshot.png");
        await File.WriteAllBytesAsync(screenshotPath, screenshot);

        Assert.Empty(browser.Errors);
        Assert.Empty(page["broken"]!.AsArray());
        Assert.True(page["images"]!.GetValue<int>() >= 20, $"only {page["images"]} images");
        Assert.Equal(RunReport.SectionIds, page["sections"]!.AsArray().Select(s => s!.GetValue<string>()));
        Assert.Contains("What the measurements say", page["headings"]!.AsArray().Select(h => h!.GetValue<string>()));
        Assert.Equal(["weights", "zeros", "gradient", "dead"], page["statements"]!.AsArray().Select(s => s!.GetValue<string>()));
        Assert.Equal(0, page["external"]!.GetValue<int>());
        Assert.True(new FileInfo(screenshotPath).Length > 10_000);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, screenshot[..4]);
    }

    [Fact]
    public void Filters_come_from_step_0_the_checkpoint_nearest_half_the_steps_and_model_ckpt()
    {
        var (init, midway, end) = RunFolder.Open(runs.Normal.Directory).Snapshots();
        Assert.Equal(0, init!.Step);
        Assert.Equal(TinyRun.Steps / 2, midway!.Step);
        Assert.Equal(TinyRun.Steps, end!.Step);
        var html = File.ReadAllText(runs.NormalReport.Path);
        Assert.Contains("conv2d filters at initialization", html, StringComparison.Ordinal);
        Assert.Contains("conv2d filters at midway", html, StringComparison.Ordinal);
        Assert.Contains("conv2d filters at end", html, StringComparison.Ordinal);
        Assert.DoesNotContain("not recorded", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_step_checkpoints_initialization_and_midway_are_reported_as_not_recorded()
    {
        var run = new TinyRun(Path.Combine(runs.Root, "no-checkpoints"), checkpoints: false);
        var report = RunReport.Write(run.Directory, Path.Combine(runs.Root, "no-checkpoints.html"), TinyRun.TestImages);
        var html = File.ReadAllText(report.Path);
        Assert.Contains("initialization: not recorded", html, StringComparison.Ordinal);
        Assert.Contains("midway: not recorded", html, StringComparison.Ordinal);
        Assert.Contains("conv2d filters at end", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Filters_forced_dead_are_reported_dead_from_the_end_of_the_dead_window_with_exactly_zero_gradient()
    {
        var facts = Findings.Measure(RunMetrics.ReadFile(Path.Combine(runs.Dead.Directory, "metrics.jsonl")));
        var conv = facts.Single(f => f.Layer == "conv2d");
        var dead = conv.Dead.Where(d => d.DeadAtEnd).Select(d => d.Filter).ToArray();
        Assert.Subset(dead.ToHashSet(), ReportedRuns.ForcedDead.ToHashSet());

        // Silent from step 0; listed once DeadWindow steps were observed, i.e. at the first measured step from step DeadWindow - 1 on.
        var expectedFrom = (TinyRun.DeadWindow + TinyRun.StatsEvery - 1) / TinyRun.StatsEvery * TinyRun.StatsEvery;
        Assert.All(conv.Dead.Where(d => ReportedRuns.ForcedDead.Contains(d.Filter)), d => Assert.Equal(expectedFrom, d.FromStep));
        Assert.Equal(0, conv.DeadGradNormAfterDeath);

        var deadStatement = runs.DeadReport.Statements.Single(s => s.Key == "dead");
        Assert.Contains("filter 0 from step " + expectedFrom, deadStatement.Details[0], StringComparison.Ordinal);
        Assert.Contains("exactly 0", runs.DeadReport.Statements.Single(s => s.Key == "gradient").Answer, StringComparison.Ordinal);

        // The same run without forced filters: none of them is dead, and the statements say so.
        var normal = Findings.Measure(RunMetrics.ReadFile(Path.Combine(runs.Normal.Directory, "metrics.jsonl"))).Single(f => f.Layer == "conv2d");
        Assert.DoesNotContain(normal.Dead, d => d.DeadAtEnd && ReportedRuns.ForcedDead.Contains(d.Filter));
        Assert.DoesNotContain("filter 0 from step", runs.NormalReport.Statements.Single(s => s.Key == "dead").Details[0], StringComparison.Ordinal);

        Assert.Contains("are black for every input (dead): their outputs, not their weights, are zero", runs.DeadReport.Conclusion, StringComparison.Ordinal);

        // Dead filters keep their (negative) weights: "dead" is about outputs, not weights gone to zero.
        Assert.StartsWith("No.", runs.DeadReport.Statements.Single(s => s.Key == "weights").Answer, StringComparison.Ordinal);
    }

    [Fact]
    public void The_relu_statement_quotes_the_measured_sparsity()
    {
        var metrics = RunMetrics.ReadFile(Path.Combine(runs.Normal.Directory, "metrics.jsonl"));
        var last = metrics.StatSteps[^1].Filters!;
        var mean = (last["conv2d"].Sparsity.Average() + last["conv2d_1"].Sparsity.Average()) / 2;
        var answer = runs.NormalReport.Statements.Single(s => s.Key == "zeros").Answer;
        Assert.StartsWith("relu zeroes activations, not weights", answer, StringComparison.Ordinal);
        Assert.Contains(Stats.Percent(mean) + " of the conv outputs are exactly zero", answer, StringComparison.Ordinal);
    }

    [Fact]
    public void A_single_process_run_says_it_has_no_per_worker_data_and_a_cluster_run_gets_its_plots()
    {
        Assert.Contains("Single process: no per-worker data.", File.ReadAllText(runs.NormalReport.Path), StringComparison.Ordinal);

        var copy = Path.Combine(runs.Root, "cluster");
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(runs.Normal.Directory))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }

        var lines = new List<string>();
        foreach (var step in Enumerable.Range(0, TinyRun.Steps).Where(s => s % TinyRun.StatsEvery == 0))
        {
            for (var w = 0; w < 2; w++)
            {
                lines.Add(new JsonObject
                {
                    ["type"] = "worker_step",
                    ["step"] = step,
                    ["worker"] = $"w{w}",
                    ["silo"] = $"silo-{w}",
                    ["wall_seconds"] = (step * 0.1) + 0.09,
                    ["duration_seconds"] = 0.08,
                    ["grad_norm"] = new JsonObject { ["conv2d"] = new JsonArray(Enumerable.Range(0, 32).Select(i => (JsonNode)(0.01 * (w + 1))).ToArray()) },
                }.ToJsonString());
            }
        }

        File.AppendAllLines(Path.Combine(copy, "metrics.jsonl"), lines);
        var report = RunReport.Write(copy, null, TinyRun.TestImages);
        var html = File.ReadAllText(report.Path);
        Assert.Contains("2 workers on 2 silo(s)", html, StringComparison.Ordinal);
        Assert.Contains("alt=\"conv2d per-worker gradient norms\"", html, StringComparison.Ordinal);
        Assert.Contains("alt=\"worker step timeline\"", html, StringComparison.Ordinal);
    }
}
