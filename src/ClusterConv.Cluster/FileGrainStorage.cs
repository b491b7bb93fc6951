using Orleans.Runtime;
using Orleans.Storage;

namespace ClusterConv.Cluster;

/// <summary>
/// Grain storage in files, one per grain and state name, written atomically (temporary file, rename) with Orleans'
/// binary serializer; ETags are write counters. Shared by every silo that sees the folder, so a checkpoint survives
/// the silo that wrote it (the in-memory storage does not).
/// </summary>
public sealed class FileGrainStorage : IGrainStorage
{
    private readonly string directory;
    private readonly IGrainStorageSerializer serializer;

    public FileGrainStorage(string directory, IGrainStorageSerializer serializer)
    {
        this.directory = directory;
        this.serializer = serializer;
        Directory.CreateDirectory(directory);
    }

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        var path = PathOf(stateName, grainId);
        if (!File.Exists(path))
        {
            grainState.RecordExists = false;
            grainState.ETag = null;
            return;
        }

        var bytes = await File.ReadAllBytesAsync(path).ConfigureAwait(false);
        grainState.State = serializer.Deserialize<T>(new BinaryData(bytes));
        grainState.RecordExists = true;
        grainState.ETag = File.GetLastWriteTimeUtc(path).Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        var path = PathOf(stateName, grainId);
        var data = serializer.Serialize(grainState.State);
        var temporary = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        await File.WriteAllBytesAsync(temporary, data.ToArray()).ConfigureAwait(false);
        File.Move(temporary, path, overwrite: true);
        grainState.RecordExists = true;
        grainState.ETag = File.GetLastWriteTimeUtc(path).Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        File.Delete(PathOf(stateName, grainId));
        grainState.RecordExists = false;
        grainState.ETag = null;
        return Task.CompletedTask;
    }

    private string PathOf(string stateName, GrainId grainId)
    {
        var name = $"{stateName}-{grainId}";
        foreach (var c in Path.GetInvalidFileNameChars().Append('/').Append(':'))
        {
            name = name.Replace(c, '_');
        }

        return Path.Combine(directory, name + ".bin");
    }
}
