using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace ClusterConv.Onnx.Tests;

/// <summary>Runs one verb in this process with standard output and error captured (tests run one at a time: see TestData).</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Out, string Error)
    {
        public JsonNode Json => JsonNode.Parse(Out) ?? throw new InvalidOperationException("no JSON on standard output");
    }

    public static Result Run(Command verb, params string[] args)
    {
        var root = new RootCommand { verb };
        var output = new StringWriter();
        var error = new StringWriter();
        var (oldOut, oldError, oldConsole) = (Console.Out, Console.Error, AnsiConsole.Console);
        Console.SetOut(output);
        Console.SetError(error);
        AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        try
        {
            var exit = root.Parse([verb.Name, .. args]).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Output = output, Error = error });
            return new Result(exit, output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldError);
            AnsiConsole.Console = oldConsole;
        }
    }
}
