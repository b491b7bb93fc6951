using System.Text.Json.Nodes;
using ClusterConv.Cli.Commands;
using Spectre.Console;

namespace ClusterConv.Reports.Tests;

public sealed class ExperimentTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("clusterconv-experiment-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private ExperimentSettings Settings(params string[] activations) => new()
    {
        Activations = activations,
        Data = "synthetic",
        MaxSteps = 12,
        TrainLimit = 1000,
        TestLimit = 200,
        Seed = 3,
        Threads = 2,
        OutDir = directory,
    };

    [Fact]
    public async Task The_activation_experiment_on_synthetic_data_completes_with_one_row_per_activation_and_resumes_finished_runs()
    {
        Assert.Equal(0, ExperimentCommand.Execute(Settings("relu", "tanh"), asJson: true, CancellationToken.None));

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "experiment.json")))!;
        var rows = json["rows"]!.AsArray();
        Assert.Equal(["relu", "tanh"], rows.Select(r => r!["activation"]!.GetValue<string>()));
        Assert.All(rows, r =>
        {
            Assert.InRange(r!["test_accuracy"]!.GetValue<double>(), 0, 1);
            Assert.Equal(12, r["steps"]!.GetValue<long>());
            Assert.Equal(96, r["conv_filters"]!.GetValue<int>());
            Assert.InRange(r["mean_sparsity"]!.GetValue<double>(), 0, 1);
            var grad = r["grad_norm"]!["conv2d"]!;
            Assert.True(grad["p10"]!.GetValue<double>() <= grad["median"]!.GetValue<double>() && grad["median"]!.GetValue<double>() <= grad["p90"]!.GetValue<double>());
        });
        Assert.Equal("sparsity", rows[0]!["sparsity_metric"]!.GetValue<string>());
        Assert.Equal("nonpositive_fraction", rows[1]!["sparsity_metric"]!.GetValue<string>());

        // Each run is a run folder of its own, trained with its activation.
        Assert.Contains("\"tanh\"", File.ReadAllText(Path.Combine(directory, "tanh", "model.json")), StringComparison.Ordinal);
        var report = File.ReadAllText(Path.Combine(directory, "report.html"));
        Assert.Contains("alt=\"relu first-layer filters\"", report, StringComparison.Ordinal);
        Assert.Contains("alt=\"tanh first-layer filters\"", report, StringComparison.Ordinal);

        // The comparison page shows in a browser: no errors, every image decodes.
        await using (var browser = await HeadlessChromium.StartAsync(Path.Combine(directory, "chromium-profile")))
        {
            await browser.OpenAsync(Path.Combine(directory, "report.html"));
            var page = (await browser.EvaluateAsync("""
                (async () => {
                  const images = [...document.images];
                  await Promise.all(images.map(i => i.decode().catch(() => null)));
                  return { images: images.length, broken: images.filter(i => i.naturalWidth === 0).length, sections: [...document.querySelectorAll('section')].map(s => s.id) };
                })()
                """))!;
            Assert.Empty(browser.Errors);
            Assert.Equal(0, page["broken"]!.GetValue<int>());
            Assert.True(page["images"]!.GetValue<int>() >= 2 + 4 + 2);
            Assert.Equal(["settings", "comparison", "curves", "filters"], page["sections"]!.AsArray().Select(s => s!.GetValue<string>()));
        }

        // The terminal table: one row per activation.
        var written = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(written), ColorSystem = ColorSystemSupport.NoColors });
        var summarized = new[] { "relu", "tanh" }.Select(a => ActivationComparison.Summarize(a, Path.Combine(directory, a))).ToArray();
        console.Write(ExperimentCommand.Tables(summarized).First());
        var tableRows = written.ToString().Split('\n').Where(l => l.StartsWith("│ ", StringComparison.Ordinal)).Skip(1).ToArray();
        Assert.Equal(2, tableRows.Length);
        Assert.StartsWith("│ relu", tableRows[0], StringComparison.Ordinal);
        Assert.StartsWith("│ tanh", tableRows[1], StringComparison.Ordinal);

        // Resumed: finished runs are not trained again; a new activation is.
        var reluSummary = File.GetLastWriteTimeUtc(Path.Combine(directory, "relu", "summary.json"));
        Assert.Equal(0, ExperimentCommand.Execute(Settings("relu", "tanh", "elu"), asJson: true, CancellationToken.None));
        Assert.Equal(reluSummary, File.GetLastWriteTimeUtc(Path.Combine(directory, "relu", "summary.json")));
        var resumed = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "experiment.json")))!["rows"]!.AsArray();
        Assert.Equal(["relu", "tanh", "elu"], resumed.Select(r => r!["activation"]!.GetValue<string>()));
    }

    [Fact]
    public void Each_run_of_the_experiment_can_be_reported_on_its_own()
    {
        Assert.Equal(0, ExperimentCommand.Execute(Settings("leaky_relu"), asJson: true, CancellationToken.None));
        var result = ReportCommand.Write(Path.Combine(directory, "leaky_relu"), null);
        Assert.True(File.Exists(result.Path));
        Assert.StartsWith("leaky_relu zeroes nothing exactly", result.Statements.Single(s => s.Key == "zeros").Answer, StringComparison.Ordinal);
    }
}
