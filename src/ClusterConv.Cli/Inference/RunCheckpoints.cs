using System.Globalization;
using ClusterConv.Engine.Checkpoints;

namespace ClusterConv.Cli.Inference;

/// <summary>
/// Where a run folder keeps its weights: <c>RUN_DIR/model.ckpt</c> holds the final weights, and periodic checkpoints
/// go to <c>RUN_DIR/checkpoints/step-STEP.ckpt</c> (STEP the number of optimizer steps taken, in decimal without
/// padding, e.g. <c>checkpoints/step-500.ckpt</c>), all in the <see cref="ModelCheckpoint"/> format.
/// </summary>
public static class RunCheckpoints
{
    public const string FinalFileName = "model" + ModelCheckpoint.FileExtension;
    public const string DirectoryName = "checkpoints";

    public static string FinalPath(string runDirectory) => Path.Combine(runDirectory, FinalFileName);

    public static string StepPath(string runDirectory, long step) =>
        Path.Combine(runDirectory, DirectoryName, $"step-{step.ToString(CultureInfo.InvariantCulture)}{ModelCheckpoint.FileExtension}");

    /// <summary>Steps of the periodic checkpoints present, ascending.</summary>
    public static IReadOnlyList<long> SavedSteps(string runDirectory)
    {
        var directory = Path.Combine(runDirectory, DirectoryName);
        if (!Directory.Exists(directory))
        {
            return [];
        }

        return Directory.EnumerateFiles(directory, "step-*" + ModelCheckpoint.FileExtension)
            .Select(f => Path.GetFileNameWithoutExtension(f)["step-".Length..])
            .Select(s => long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var step) ? step : -1)
            .Where(s => s >= 0)
            .Order()
            .ToArray();
    }

    /// <summary>The checkpoint file to read: the final weights, or those of <paramref name="step"/>; a <see cref="UserException"/> naming the missing file otherwise.</summary>
    public static string Resolve(string runDirectory, long? step)
    {
        if (!Directory.Exists(runDirectory))
        {
            throw new UserException($"run folder not found: '{runDirectory}'");
        }

        if (step is not { } s)
        {
            var final = FinalPath(runDirectory);
            return File.Exists(final)
                ? final
                : throw new UserException($"'{final}' not found: the run folder has no final weights (did the training finish?); use --checkpoint STEP for a periodic checkpoint{Saved(runDirectory)}");
        }

        var path = StepPath(runDirectory, s);
        return File.Exists(path)
            ? path
            : throw new UserException($"checkpoint of step {s} not found: '{path}'{Saved(runDirectory)}");
    }

    private static string Saved(string runDirectory)
    {
        var steps = SavedSteps(runDirectory);
        return steps.Count == 0 ? " (the run folder has no periodic checkpoints)" : $" (saved steps: {string.Join(", ", steps)})";
    }
}
