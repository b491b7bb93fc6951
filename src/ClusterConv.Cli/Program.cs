using System.CommandLine;
using ClusterConv.Cli;
using ClusterConv.Cli.Commands;

var root = new RootCommand("ClusterConv: train convolutional networks and watch, filter by filter, how they learn.");
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(SummaryCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(SiloCommand.Create());
root.Subcommands.Add(JobCommands.Status());
root.Subcommands.Add(JobCommands.Attach());
root.Subcommands.Add(JobCommands.Cancel());
var parse = root.Parse(args);
var exit = parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
return exit;
