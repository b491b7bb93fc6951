using ClusterConv.Cli.Training;
using Spectre.Console;

namespace ClusterConv.Cli.Output;

/// <summary>
/// Shows training progress: a live bar per epoch with rate and ETA on a terminal, and plain lines
/// otherwise (logs, CI). Epoch results are always printed as a line.
/// </summary>
public sealed class TrainingDisplay : ITrainingObserver
{
    private readonly IAnsiConsole console;
    private readonly ProgressContext? progress;
    private ProgressTask? task;
    private long stepsInEpoch;
    private DateTime lastPlainLine = DateTime.MinValue;

    public TrainingDisplay(IAnsiConsole console, ProgressContext? progress)
    {
        this.console = console;
        this.progress = progress;
    }

    /// <summary>Runs the action under a live progress display when the console is interactive.</summary>
    public static T Run<T>(IAnsiConsole console, Func<TrainingDisplay, T> action)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(action);
        if (!console.Profile.Capabilities.Interactive)
        {
            return action(new TrainingDisplay(console, null));
        }

        return console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RateColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(context => action(new TrainingDisplay(console, context)));
    }

    public void EpochStarted(int epoch, int epochs, long steps)
    {
        stepsInEpoch = steps;
        task = progress?.AddTask($"epoch {epoch + 1}/{epochs}", maxValue: steps);
    }

    public void StepCompleted(int epoch, long stepInEpoch, double loss, double samplesPerSecond)
    {
        if (task is not null)
        {
            task.Value = stepInEpoch;
            task.Description = $"epoch {epoch + 1} loss {loss:F4} {samplesPerSecond,6:F0} samples/s";
            return;
        }

        // Without a terminal, a line every few seconds keeps logs short but shows the job is alive.
        var now = DateTime.UtcNow;
        if (now - lastPlainLine > TimeSpan.FromSeconds(5) || stepInEpoch == stepsInEpoch)
        {
            lastPlainLine = now;
            console.WriteLine($"epoch {epoch + 1} step {stepInEpoch}/{stepsInEpoch} loss {loss:F4} {samplesPerSecond:F0} samples/s");
        }
    }

    public void EpochCompleted(EpochResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (task is not null)
        {
            task.Value = task.MaxValue;
            task.StopTask();
        }

        console.MarkupLineInterpolated(
            $"[bold]epoch {result.Epoch}[/]  train loss {result.TrainLoss:F4} acc {result.TrainAccuracy:F4}  test loss {result.TestLoss:F4} [green]acc {result.TestAccuracy:F4}[/]  {result.WallSeconds:F1} s");
    }

    /// <summary>Steps per second of the task, shown as its rate.</summary>
    private sealed class RateColumn : ProgressColumn
    {
        public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(task.Speed is { } speed ? $"{speed:F1} steps/s" : "-- steps/s");
    }
}
