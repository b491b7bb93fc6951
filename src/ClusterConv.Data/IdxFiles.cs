namespace ClusterConv.Data;

/// <summary>
/// The four files of an MNIST-layout data folder. Each may be stored gzip-compressed under its ".gz" name or
/// uncompressed under its bare name (the reader goes by the content's header, not the name); ".gz" wins when both exist.
/// </summary>
public static class IdxFiles
{
    public const string TrainImages = "train-images-idx3-ubyte";
    public const string TrainLabels = "train-labels-idx1-ubyte";
    public const string TestImages = "t10k-images-idx3-ubyte";
    public const string TestLabels = "t10k-labels-idx1-ubyte";

    /// <summary>The four base names, in download order.</summary>
    public static IReadOnlyList<string> All { get; } = [TrainImages, TrainLabels, TestImages, TestLabels];

    /// <summary>The path of <paramref name="baseName"/> (".gz" first, then bare) in <paramref name="directory"/>, or null.</summary>
    public static string? Find(string directory, string baseName)
    {
        foreach (var candidate in new[] { Path.Combine(directory, baseName + ".gz"), Path.Combine(directory, baseName) })
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Base names of the files that <paramref name="directory"/> lacks (all four when it does not exist).</summary>
    public static IReadOnlyList<string> Missing(string directory) =>
        All.Where(name => Find(directory, name) is null).ToArray();

    /// <summary>True when the folder holds all four files.</summary>
    public static bool IsComplete(string directory) => Missing(directory).Count == 0;

    /// <summary>Throws a <see cref="DataException"/> naming the folder and what it lacks, unless it holds all four files.</summary>
    /// <param name="directory">The folder.</param>
    /// <param name="role">How the folder is called in the message, e.g. "data folder given with --data".</param>
    public static void EnsureComplete(string directory, string role = "data folder")
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (File.Exists(directory))
        {
            throw new DataException(directory, $"is a file, but the {role} must be a folder (holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)");
        }

        if (!Directory.Exists(directory))
        {
            throw new DataException(directory, $"{role} does not exist");
        }

        var missing = Missing(directory);
        if (missing.Count > 0)
        {
            var names = string.Join(", ", missing.Select(m => $"{m}.gz"));
            throw new DataException(directory, $"{role} has no {names} (also accepted uncompressed, without .gz)");
        }
    }
}
