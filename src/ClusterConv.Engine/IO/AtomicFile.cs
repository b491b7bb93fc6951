using System.Text;

namespace ClusterConv.Engine.IO;

/// <summary>
/// Writes files so that a reader, or a crash, never sees half of one: a temporary file in the same folder, flushed to
/// disk, then renamed over the old one. Checkpoints, run-folder files and reports all go through here.
/// </summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string contents) => Write(path, stream =>
    {
        var bytes = Encoding.UTF8.GetBytes(contents);
        stream.Write(bytes);
    });

    public static void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(directory);
        var temporary = Path.Combine(directory, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }
}
