using Microsoft.Extensions.Logging;

namespace ClusterConv.Cli.Hosting;

/// <summary>
/// Watches a starting Orleans client's connection warnings: a TLS handshake refused by either side only closes the
/// connection, and the client would wait for its first answer until the connect timeout. The first such failure ends
/// the wait at once with its reason.
/// </summary>
internal sealed class ConnectionFailureWatch : ILoggerProvider
{
    private readonly TaskCompletionSource<string> failed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes with a one-line reason when a connection to a gateway failed.</summary>
    public Task<string> Failed => failed.Task;

    public static void Add(ILoggingBuilder logging, ConnectionFailureWatch watch)
    {
        logging.AddProvider(watch);
        // Provider-specific rules win over the quiet ones (ClusterTrainer.QuietLogging) for this provider only.
        logging.AddFilter<ConnectionFailureWatch>("Orleans", LogLevel.Warning);
    }

    public ILogger CreateLogger(string categoryName) => new Watcher(this, categoryName);

    public void Dispose()
    {
    }

    /// <summary>Connections a gateway accepted and then closed before Orleans' handshake ended: a TLS mismatch, not a dead silo (that refuses).</summary>
    public const int ClosedAttemptsToFail = 4;

    private int closedAttempts;

    private void Seen(string category, string message, Exception? exception)
    {
        if (category.StartsWith("Orleans.Connections.Security", StringComparison.Ordinal))
        {
            failed.TrySetResult($"TLS handshake failed: {exception?.Message ?? message}");
        }
        else if (category == "Orleans.Runtime.Messaging.ConnectionManager"
            && message.StartsWith("Connection attempt to endpoint", StringComparison.Ordinal)
            && exception is InvalidOperationException or Microsoft.AspNetCore.Connections.ConnectionAbortedException
            && Interlocked.Increment(ref closedAttempts) >= ClosedAttemptsToFail)
        {
            var endpoint = message["Connection attempt to endpoint".Length..].Replace(" failed", string.Empty, StringComparison.Ordinal).Trim();
            failed.TrySetResult($"the gateways closed {ClosedAttemptsToFail} connections during the handshake (last {endpoint}: {exception.Message})");
        }
    }

    private sealed class Watcher(ConnectionFailureWatch watch, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                watch.Seen(category, formatter(state, exception), exception);
            }
        }
    }
}
