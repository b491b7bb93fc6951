namespace ClusterConv.Cli;

/// <summary>Process exit codes, documented in the README.</summary>
public static class ExitCodes
{
    public const int Success = 0;

    /// <summary>The command line could not be parsed or a value is out of range.</summary>
    public const int Usage = 1;

    /// <summary>A data file, model file or run folder is missing or malformed.</summary>
    public const int BadInput = 2;

    /// <summary>Training stopped: non-finite loss or gradients.</summary>
    public const int TrainingFailed = 3;

    /// <summary>Reading or writing a file, or a download, failed.</summary>
    public const int IoError = 4;

    /// <summary>Interrupted by the user (Ctrl+C).</summary>
    public const int Cancelled = 130;

    /// <summary>A bug: an unexpected exception.</summary>
    public const int InternalError = 70;
}

/// <summary>An error the user can fix; the message names what and where. Printed without a stack trace.</summary>
public sealed class UserException : Exception
{
    public UserException(string message, int exitCode = ExitCodes.BadInput) : base(message) => ExitCode = exitCode;

    public UserException(string message, Exception inner, int exitCode = ExitCodes.BadInput) : base(message, inner) => ExitCode = exitCode;

    public UserException()
    {
    }

    public UserException(string message) : base(message)
    {
    }

    public UserException(string message, Exception inner) : base(message, inner)
    {
    }

    public int ExitCode { get; } = ExitCodes.BadInput;
}
