namespace ClusterConv.Data;

/// <summary>
/// A data file or folder that cannot be used, or a download that failed. The message is complete on its own:
/// it names the file, folder or URL and the problem, e.g.
/// "/data/train-labels-idx1-ubyte.gz: label 12 at index 345 is out of range 0..9".
/// </summary>
public sealed class DataException : Exception
{
    public DataException()
    {
    }

    public DataException(string message)
        : base(message)
    {
    }

    public DataException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Builds "<paramref name="path"/>: <paramref name="problem"/>" and remembers the path.</summary>
    public DataException(string path, string problem, Exception? innerException = null)
        : base($"{path}: {problem}", innerException)
    {
        Path = path;
    }

    /// <summary>The file, folder or URL the problem is about, when there is one.</summary>
    public string? Path { get; }
}
