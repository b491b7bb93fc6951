using System.CommandLine;
using ClusterConv.Cli;
using ClusterConv.Cli.Commands;

var root = new RootCommand("ClusterConv: train convolutional networks and watch, filter by filter, how they learn.");
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(SummaryCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(ExportCommand.Create());
root.Subcommands.Add(EvaluateCommand.Create());
root.Subcommands.Add(PredictCommand.Create());
root.Subcommands.Add(ReportCommand.Create());
root.Subcommands.Add(ExperimentCommand.Create());
root.Subcommands.Add(SiloCommand.Create());
root.Subcommands.Add(JobCommands.Status());
root.Subcommands.Add(JobCommands.Attach());
root.Subcommands.Add(JobCommands.Cancel());
var parse = root.Parse(args);
var parseError = parse.Action as System.CommandLine.Invocation.ParseErrorAction;
if (parseError is not null)
{
    // A bad option gets its one error line, not the whole help text (--help shows that).
    parseError.ShowHelp = false;
}

var exit = parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });

return exit;
