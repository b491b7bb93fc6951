namespace ClusterConv.Data;

/// <summary>Where a data folder came from.</summary>
public enum DataOrigin
{
    /// <summary>The folder given explicitly (--data DIR).</summary>
    Explicit,

    /// <summary>The folder named by CLUSTERCONV_DATA.</summary>
    Environment,

    /// <summary>The per-user cache, already holding the files.</summary>
    Cache,

    /// <summary>The system folder of the dataset-fashion-mnist package.</summary>
    System,

    /// <summary>The per-user cache, into which the missing files were just downloaded.</summary>
    Downloaded,
}

/// <summary>The folder holding the four IDX files and how it was found.</summary>
/// <param name="Directory">The data folder.</param>
/// <param name="Origin">Which step of the discovery order found it.</param>
/// <param name="Detail">For a download, the mirror it came from; otherwise empty.</param>
public sealed record DataLocation(string Directory, DataOrigin Origin, string Detail = "")
{
    /// <summary>One phrase for a log line, e.g. "/usr/share/datasets/fashion-mnist (system data folder)".</summary>
    public string Describe() => Origin switch
    {
        DataOrigin.Explicit => $"{Directory} (given with --data)",
        DataOrigin.Environment => $"{Directory} (from {FashionMnist.DataDirectoryVariable})",
        DataOrigin.Cache => $"{Directory} (user cache)",
        DataOrigin.System => $"{Directory} (system data folder)",
        DataOrigin.Downloaded => $"{Directory} (downloaded from {Detail})",
        _ => Directory,
    };

    public override string ToString() => Describe();
}

/// <summary>
/// Settings of the discovery order: explicit folder, then CLUSTERCONV_DATA, then the per-user cache, then the system
/// folder, then a download into the cache. Every folder is injectable so tests run on temp folders;
/// <see cref="FromEnvironment"/> gives the production settings.
/// </summary>
public sealed record DataDiscoveryOptions
{
    /// <summary>Folder given by the user (--data). Must hold the files: it is never downloaded into.</summary>
    public string? ExplicitDirectory { get; init; }

    /// <summary>Folder from CLUSTERCONV_DATA. Must hold the files: it is never downloaded into.</summary>
    public string? EnvironmentDirectory { get; init; }

    /// <summary>Per-user cache folder (XDG_CACHE_HOME or ~/.cache, then clusterconv/fashion-mnist); downloads land here. Null: no cache, no download.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>System folder, checked after the cache. Null: skipped.</summary>
    public string? SystemDirectory { get; init; } = FashionMnist.SystemDirectory;

    /// <summary>Base URL the four .gz files are fetched from (the file name is appended).</summary>
    public Uri MirrorBaseUri { get; init; } = FashionMnist.OfficialMirror;

    /// <summary>Expected MD5 (lower-case hex) of each downloaded file, keyed by file name ("train-images-idx3-ubyte.gz").</summary>
    public IReadOnlyDictionary<string, string> Md5 { get; init; } = FashionMnist.PublishedMd5;

    /// <summary>When false, a missing data set is an error instead of a download.</summary>
    public bool AllowDownload { get; init; } = true;

    /// <summary>A download that receives nothing for this long fails.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Name and classes of the set found (Fashion-MNIST unless an explicit folder holds e.g. MNIST).</summary>
    public DatasetInfo Info { get; init; } = DatasetInfo.FashionMnist;

    /// <summary>
    /// Production settings: <paramref name="explicitDirectory"/> (from --data), CLUSTERCONV_DATA, the cache under
    /// XDG_CACHE_HOME (or HOME/.cache), the system folder, and CLUSTERCONV_DATA_MIRROR replacing the official mirror.
    /// </summary>
    /// <param name="explicitDirectory">The --data folder, or null.</param>
    /// <param name="environment">Reads an environment variable; defaults to the process environment.</param>
    public static DataDiscoveryOptions FromEnvironment(string? explicitDirectory = null, Func<string, string?>? environment = null)
    {
        environment ??= System.Environment.GetEnvironmentVariable;
        var mirror = FashionMnist.OfficialMirror;
        var mirrorText = NullIfBlank(environment(FashionMnist.MirrorVariable));
        if (mirrorText is not null)
        {
            mirror = ParseMirror(mirrorText, FashionMnist.MirrorVariable);
        }

        return new DataDiscoveryOptions
        {
            ExplicitDirectory = NullIfBlank(explicitDirectory),
            EnvironmentDirectory = NullIfBlank(environment(FashionMnist.DataDirectoryVariable)),
            CacheDirectory = DefaultCacheDirectory(environment),
            MirrorBaseUri = mirror,
        };
    }

    /// <summary>XDG_CACHE_HOME/clusterconv/fashion-mnist, else HOME/.cache/clusterconv/fashion-mnist, else null.</summary>
    public static string? DefaultCacheDirectory(Func<string, string?>? environment = null)
    {
        environment ??= System.Environment.GetEnvironmentVariable;
        var root = NullIfBlank(environment("XDG_CACHE_HOME"));
        if (root is null || !Path.IsPathRooted(root))
        {
            var home = NullIfBlank(environment("HOME")) ?? NullIfBlank(System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile));
            root = home is null ? null : Path.Combine(home, ".cache");
        }

        return root is null ? null : Path.Combine(root, "clusterconv", "fashion-mnist");
    }

    /// <summary>An absolute http(s) URL ending in '/', or a DataException naming <paramref name="setting"/>.</summary>
    public static Uri ParseMirror(string text, string setting)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!Uri.TryCreate(text.Trim(), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new DataException(setting, $"'{text}' is not an absolute http or https URL");
        }

        return uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/");
    }

    private static string? NullIfBlank(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;
}
