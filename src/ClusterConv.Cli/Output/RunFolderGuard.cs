namespace ClusterConv.Cli.Output;

/// <summary>
/// Remembers what a run folder held before a run started, so that a run refused at start (an unreachable cluster,
/// settings the job refuses) can take back what it wrote: the folder is left as it was, or not there at all.
/// </summary>
public sealed class RunFolderGuard
{
    private readonly string root;
    private readonly bool existed;
    private readonly HashSet<string> files;
    private readonly HashSet<string> directories;

    public RunFolderGuard(string directory)
    {
        root = Path.GetFullPath(directory);
        existed = Directory.Exists(root);
        files = existed ? [.. Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)] : [];
        directories = existed ? [.. Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories)] : [];
    }

    /// <summary>Deletes the files and folders created since the guard was made; best effort, never throws.</summary>
    public void Rollback()
    {
        try
        {
            if (!existed)
            {
                if (Directory.Exists(root))
                {
                    Directory.Delete(root, recursive: true);
                }

                return;
            }

            foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Where(f => !files.Contains(f)).ToList())
            {
                File.Delete(file);
            }

            // Deepest first, so a new folder's new subfolders go before it.
            foreach (var directory in Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories).Where(d => !directories.Contains(d)).OrderByDescending(d => d.Length).ToList())
            {
                if (!Directory.EnumerateFileSystemEntries(directory).Any())
                {
                    Directory.Delete(directory);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The original error is what the user needs to see; a leftover file is named by nothing else.
        }
    }

    /// <summary>Errors that mean the run never started for a reason the user can fix, rather than a failure while training.</summary>
    public static bool IsRefusedAtStart(Exception e) => e switch
    {
        UserException u => u.ExitCode is ExitCodes.Usage or ExitCodes.BadInput or ExitCodes.IoError,
        Engine.Layers.ModelException or Data.DataException => true,
        _ => false,
    };
}
