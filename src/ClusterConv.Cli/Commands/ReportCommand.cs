using System.CommandLine;
using ClusterConv.Cli.Training;
using ClusterConv.Reports;
using Spectre.Console;

namespace ClusterConv.Cli.Commands;

/// <summary>`clusterconv report RUN_DIR`: RUN_DIR/report.html, how the run's Conv2D layers learned.</summary>
internal static class ReportCommand
{
    public static Command Create()
    {
        var runDir = new Argument<string>("RUN_DIR") { Description = "A run folder written by train (summary.json, metrics.jsonl, model.ckpt, checkpoints/)." };
        var outPath = new Option<string?>("--out") { Description = "The HTML file to write (default: RUN_DIR/report.html)." };
        var verbose = CommonOptions.Verbose();
        var command = new Command("report", "Write a self-contained HTML report of a run: curves, per-filter heatmaps, filters, feature maps, dead filters, and what the measurements say.")
        {
            runDir, outPath, verbose,
        };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(verbose), _ => Execute(parse.GetValue(runDir)!, parse.GetValue(outPath), AnsiConsole.Console)));
        return command;
    }

    public static int Execute(string runDirectory, string? outPath, IAnsiConsole console)
    {
        ArgumentNullException.ThrowIfNull(console);
        var result = Write(runDirectory, outPath);
        foreach (var note in result.Notes)
        {
            console.MarkupLineInterpolated($"[yellow]note:[/] {note}");
        }

        console.WriteLine(result.Conclusion);
        foreach (var s in result.Statements)
        {
            console.MarkupLineInterpolated($"[bold]{s.Question}[/] {s.Answer}");
        }

        console.MarkupLineInterpolated($"wrote {result.Path}");
        return ExitCodes.Success;
    }

    /// <summary>Writes the report; test images come from the run's dataset as train loads it.</summary>
    public static ReportResult Write(string runDirectory, string? outPath)
    {
        try
        {
            return RunReport.Write(runDirectory, outPath, (dataset, seed) => DataSources.Load(dataset, seed, CommandRunner.ErrorConsole()).Test);
        }
        catch (ReportException e)
        {
            throw new UserException(e.Message, e);
        }
    }
}
