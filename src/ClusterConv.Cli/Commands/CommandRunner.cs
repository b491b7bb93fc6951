using ClusterConv.Data;
using ClusterConv.Engine.Layers;
using Spectre.Console;

namespace ClusterConv.Cli.Commands;

/// <summary>Runs a verb's body and turns failures into one clear message and a documented exit code.</summary>
internal static class CommandRunner
{
    public static int Run(bool verbose, Func<CancellationToken, int> body)
    {
        using var cancellation = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancellation.Cancel();
        };
        Console.CancelKeyPress += onCancel;

        // SIGTERM stops like Ctrl-C: the verb finishes cleanly (a training job is cancelled, a silo hands over).
        using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            cancellation.Cancel();
        });
        try
        {
            return body(cancellation.Token);
        }
        catch (UserException ex)
        {
            return Fail(ex, ex.ExitCode, verbose);
        }
        catch (ModelException ex)
        {
            return Fail(ex, ExitCodes.BadInput, verbose);
        }
        catch (DataException ex)
        {
            return Fail(ex, ExitCodes.BadInput, verbose);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            Console.Error.WriteLine("error: cancelled");
            return ExitCodes.Cancelled;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or HttpRequestException)
        {
            return Fail(ex, ExitCodes.IoError, verbose);
        }
        catch (Exception ex) when (!verbose)
        {
            Console.Error.WriteLine($"error: internal error ({ex.GetType().Name}): {Hosting.RedisAddress.Mask(ex.Message)}. Run with --verbose for details.");
            return ExitCodes.InternalError;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static int Fail(Exception ex, int code, bool verbose)
    {
        // A Redis address in a message may carry its password.
        Console.Error.WriteLine($"error: {Hosting.RedisAddress.Mask(ex.Message)}");
        if (verbose)
        {
            Console.Error.WriteLine(Hosting.RedisAddress.Mask(ex.ToString()));
        }

        return code;
    }

    public static IAnsiConsole ErrorConsole() => AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
}
