using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Security.Cryptography;

namespace ClusterConv.Data;

/// <summary>Progress of one file's download: bytes received of the total (when the server sent a length).</summary>
/// <param name="FileName">The file being fetched, e.g. "train-images-idx3-ubyte.gz".</param>
/// <param name="FileIndex">0-based position among the files being fetched.</param>
/// <param name="FileCount">How many files this download fetches.</param>
/// <param name="BytesDone">Bytes of this file received so far.</param>
/// <param name="TotalBytes">This file's size from Content-Length, or null when unknown.</param>
public readonly record struct DownloadProgress(string FileName, int FileIndex, int FileCount, long BytesDone, long? TotalBytes)
{
    /// <summary>0..1 of this file, or null when the total is unknown.</summary>
    public double? Fraction => TotalBytes is > 0 ? (double)BytesDone / TotalBytes.Value : null;
}

/// <summary>
/// Finds the Fashion-MNIST files without flags, in this order: the explicit folder (--data), CLUSTERCONV_DATA, the
/// per-user cache, the system folder; where none holds all four files, downloads the missing ones into the cache.
/// A folder the user named (--data or CLUSTERCONV_DATA) that lacks a file is an error, never a download target.
/// Downloads are written to a temporary file, checked against the MD5 table and only then renamed into place, so a
/// failed, cancelled or mismatched download leaves nothing behind.
/// </summary>
public sealed class DataLocator
{
    private const int ProgressStep = 1 << 20;

    private static readonly Lazy<HttpClient> SharedClient = new(() => new HttpClient { Timeout = TimeSpan.FromMinutes(2) });

    private readonly DataDiscoveryOptions options;
    private readonly HttpClient http;

    /// <param name="options">Folders, mirror and checksums (see <see cref="DataDiscoveryOptions.FromEnvironment"/>).</param>
    /// <param name="http">Client for downloads; a shared one when null.</param>
    public DataLocator(DataDiscoveryOptions options, HttpClient? http = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.options = options;
        this.http = http ?? SharedClient.Value;
    }

    /// <summary>Finds (or downloads) the data folder and loads the train and test sets from it.</summary>
    public async Task<DataSplits> LoadAsync(IProgress<DownloadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var location = await LocateAsync(progress, cancellationToken).ConfigureAwait(false);
        return IdxReader.LoadSplits(location.Directory, options.Info, $"{options.Info.Name} from {location.Describe()}");
    }

    /// <summary>Returns the first folder of the discovery order that holds the four files, downloading into the cache when none does.</summary>
    public async Task<DataLocation> LocateAsync(IProgress<DownloadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (options.ExplicitDirectory is { } explicitDirectory)
        {
            IdxFiles.EnsureComplete(explicitDirectory, "data folder given with --data");
            return new DataLocation(explicitDirectory, DataOrigin.Explicit);
        }

        if (options.EnvironmentDirectory is { } environmentDirectory)
        {
            IdxFiles.EnsureComplete(environmentDirectory, $"data folder named by {FashionMnist.DataDirectoryVariable}");
            return new DataLocation(environmentDirectory, DataOrigin.Environment);
        }

        if (options.CacheDirectory is { } cache && IdxFiles.IsComplete(cache))
        {
            return new DataLocation(cache, DataOrigin.Cache);
        }

        if (options.SystemDirectory is { } system && IdxFiles.IsComplete(system))
        {
            return new DataLocation(system, DataOrigin.System);
        }

        if (options.CacheDirectory is null || !options.AllowDownload)
        {
            var looked = string.Join(", ", new[] { options.CacheDirectory, options.SystemDirectory }.Where(d => d is not null));
            var why = options.CacheDirectory is null ? "no cache folder (set HOME or XDG_CACHE_HOME) to download into" : "downloading is turned off";
            throw new DataException(
                looked.Length > 0 ? looked : "data",
                $"no {options.Info.Name} files found and {why}; pass --data DIR or set {FashionMnist.DataDirectoryVariable} to a folder holding {string.Join(", ", IdxFiles.All.Select(f => f + ".gz"))}");
        }

        await DownloadMissingAsync(options.CacheDirectory, progress, cancellationToken).ConfigureAwait(false);
        return new DataLocation(options.CacheDirectory, DataOrigin.Downloaded, options.MirrorBaseUri.AbsoluteUri);
    }

    /// <summary>Downloads each of the four files the cache lacks, verifying its MD5 before it is renamed into place.</summary>
    private async Task DownloadMissingAsync(string cache, IProgress<DownloadProgress>? progress, CancellationToken cancellationToken)
    {
        var missing = IdxFiles.Missing(cache).Select(name => name + ".gz").ToArray();
        foreach (var file in missing)
        {
            if (!options.Md5.ContainsKey(file))
            {
                throw new DataException(file, "no MD5 checksum is known for this file, so it cannot be downloaded safely");
            }
        }

        try
        {
            Directory.CreateDirectory(cache);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataException(cache, $"cache folder cannot be created: {e.Message}", e);
        }

        for (var i = 0; i < missing.Length; i++)
        {
            await DownloadFileAsync(cache, missing[i], i, missing.Length, progress, cancellationToken).ConfigureAwait(false);
        }
    }

    [SuppressMessage("Security", "CA5351:Do Not Use Broken Cryptographic Algorithms", Justification = "MD5 only compares a download with the dataset's published checksums; it guards against corruption, not tampering.")]
    private async Task DownloadFileAsync(string cache, string file, int index, int count, IProgress<DownloadProgress>? progress, CancellationToken cancellationToken)
    {
        var url = new Uri(options.MirrorBaseUri, file);
        var target = Path.Combine(cache, file);
        var temp = Path.Combine(cache, $".{file}.{Guid.NewGuid():N}.part");
        var expected = options.Md5[file].ToLowerInvariant();
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            stall.CancelAfter(options.StallTimeout);
            using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, stall.Token).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new DataException(url.AbsoluteUri, $"download failed: HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
            }

            var total = response.Content.Headers.ContentLength;
            long done = 0;
            using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
            var source = await response.Content.ReadAsStreamAsync(stall.Token).ConfigureAwait(false);
            await using (source.ConfigureAwait(false))
            {
                var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
                await using (output.ConfigureAwait(false))
                {
                    var buffer = new byte[1 << 16];
                    var reported = 0L;
                    progress?.Report(new DownloadProgress(file, index, count, 0, total));
                    int n;
                    while ((n = await source.ReadAsync(buffer, stall.Token).ConfigureAwait(false)) > 0)
                    {
                        stall.CancelAfter(options.StallTimeout);
                        md5.AppendData(buffer, 0, n);
                        await output.WriteAsync(buffer.AsMemory(0, n), stall.Token).ConfigureAwait(false);
                        done += n;
                        if (done - reported >= ProgressStep)
                        {
                            reported = done;
                            progress?.Report(new DownloadProgress(file, index, count, done, total));
                        }
                    }
                }
            }

            if (total is { } length && done != length)
            {
                throw new DataException(url.AbsoluteUri, $"download incomplete: received {done} of {length} bytes; nothing was saved");
            }

            var actual = Convert.ToHexStringLower(md5.GetHashAndReset());
            if (actual != expected)
            {
                throw new DataException(url.AbsoluteUri, $"MD5 mismatch: expected {expected}, got {actual} ({done} bytes received); nothing was saved");
            }

            File.Move(temp, target, overwrite: true);
            progress?.Report(new DownloadProgress(file, index, count, done, total ?? done));
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new DataException(url.AbsoluteUri, $"download stalled: nothing received for {options.StallTimeout.TotalSeconds:0} s; {OfflineHint}", e);
        }
        catch (Exception e) when (e is HttpRequestException or HttpIOException)
        {
            throw new DataException(url.AbsoluteUri, $"download failed: {e.Message}; {OfflineHint}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataException(cache, $"writing {file} into the cache failed: {e.Message}", e);
        }
        finally
        {
            TryDelete(temp);
        }
    }

    private static string OfflineHint =>
        $"without network access, put the four .gz files in a folder and pass --data DIR or set {FashionMnist.DataDirectoryVariable} (the Debian package dataset-fashion-mnist installs them in {FashionMnist.SystemDirectory})";

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the temporary name is unique and starts with a dot, so a leftover is never read as data.
        }
    }
}
