namespace ClusterConv.Data.Tests;

/// <summary>The discovery order (explicit > CLUSTERCONV_DATA > cache > system folder > download) on temp folders.</summary>
public sealed class DataLocatorTests : IDisposable
{
    private readonly TempDirectory temp = new();

    public void Dispose() => temp.Dispose();

    private string Explicit => temp.Sub("explicit");

    private string Env => temp.Sub("env");

    private string Cache => temp.Sub("cache");

    private string System => temp.Sub("system");

    private DataDiscoveryOptions Options(bool withExplicit = false, bool withEnv = false) => new()
    {
        ExplicitDirectory = withExplicit ? Explicit : null,
        EnvironmentDirectory = withEnv ? Env : null,
        CacheDirectory = Cache,
        SystemDirectory = System,
        AllowDownload = false,
    };

    private void WriteAllFour()
    {
        foreach (var dir in new[] { Explicit, Env, Cache, System })
        {
            Idx.WriteSet(dir);
        }
    }

    [Fact]
    public async Task An_explicit_folder_comes_before_every_other()
    {
        WriteAllFour();

        var location = await new DataLocator(Options(withExplicit: true, withEnv: true)).LocateAsync();

        Assert.Equal(new DataLocation(Explicit, DataOrigin.Explicit), location);
    }

    [Fact]
    public async Task The_environment_folder_comes_before_cache_and_system()
    {
        WriteAllFour();

        var location = await new DataLocator(Options(withEnv: true)).LocateAsync();

        Assert.Equal(new DataLocation(Env, DataOrigin.Environment), location);
    }

    [Fact]
    public async Task The_cache_comes_before_the_system_folder()
    {
        WriteAllFour();

        var location = await new DataLocator(Options()).LocateAsync();

        Assert.Equal(new DataLocation(Cache, DataOrigin.Cache), location);
    }

    [Fact]
    public async Task The_system_folder_is_used_when_the_cache_lacks_a_file()
    {
        WriteAllFour();
        File.Delete(Path.Combine(Cache, "train-labels-idx1-ubyte.gz"));

        var location = await new DataLocator(Options()).LocateAsync();

        Assert.Equal(new DataLocation(System, DataOrigin.System), location);
        Assert.Equal($"{System} (system data folder)", location.Describe());
    }

    [Fact]
    public async Task An_explicit_folder_lacking_a_file_is_an_error_naming_folder_and_file_and_nothing_is_downloaded()
    {
        Idx.WriteSet(Explicit);
        File.Delete(Path.Combine(Explicit, "t10k-images-idx3-ubyte.gz"));
        var files = Idx.SetFiles().ToDictionary(f => f.BaseName + ".gz", f => Idx.Gzip(f.Content));
        using var mirror = new LoopbackMirror(files);
        var options = Options(withExplicit: true) with { AllowDownload = true, MirrorBaseUri = mirror.BaseUri, Md5 = Md5Of(files) };

        var error = await Assert.ThrowsAsync<DataException>(() => new DataLocator(options).LocateAsync());

        Assert.Equal($"{Explicit}: data folder given with --data has no t10k-images-idx3-ubyte.gz (also accepted uncompressed, without .gz)", error.Message);
        Assert.Empty(mirror.Requests);
        Assert.Equal(3, Directory.GetFiles(Explicit).Length);
    }

    [Fact]
    public async Task An_explicit_folder_that_does_not_exist_is_an_error_even_when_others_hold_the_files()
    {
        Idx.WriteSet(System);
        var options = Options() with { ExplicitDirectory = temp.Sub("typo") };

        var error = await Assert.ThrowsAsync<DataException>(() => new DataLocator(options).LocateAsync());

        Assert.Equal($"{temp.Sub("typo")}: data folder given with --data does not exist", error.Message);
    }

    [Fact]
    public async Task An_environment_folder_lacking_files_is_an_error_naming_the_variable()
    {
        Directory.CreateDirectory(Env);
        Idx.WriteSet(Cache);

        var error = await Assert.ThrowsAsync<DataException>(() => new DataLocator(Options(withEnv: true)).LocateAsync());

        Assert.StartsWith($"{Env}: data folder named by CLUSTERCONV_DATA has no train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_no_data_anywhere_and_downloads_off_the_error_says_where_it_looked_and_what_to_do()
    {
        var error = await Assert.ThrowsAsync<DataException>(() => new DataLocator(Options()).LocateAsync());

        Assert.StartsWith($"{Cache}, {System}: no Fashion-MNIST files found and downloading is turned off; pass --data DIR or set CLUSTERCONV_DATA", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_explicit_folder_of_uncompressed_MNIST_files_loads_with_digit_class_names()
    {
        Idx.WriteSet(Explicit, gzip: false);
        var options = Options(withExplicit: true) with { Info = DatasetInfo.Mnist };

        var splits = await new DataLocator(options).LoadAsync();

        Assert.Equal((12, 5), (splits.Train.Count, splits.Test.Count));
        Assert.Equal(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], splits.Train.ClassNames);
        Assert.Equal($"MNIST from {Explicit} (given with --data)", splits.Source);
    }

    [Fact]
    public void Options_from_the_environment_read_the_data_folder_cache_and_mirror_variables()
    {
        var variables = new Dictionary<string, string>
        {
            ["CLUSTERCONV_DATA"] = "/data/fm",
            ["XDG_CACHE_HOME"] = "/xdg",
            ["HOME"] = "/home/u",
            ["CLUSTERCONV_DATA_MIRROR"] = "http://127.0.0.1:8080/fm",
        };

        var options = DataDiscoveryOptions.FromEnvironment("/explicit", name => variables.GetValueOrDefault(name));

        Assert.Equal("/explicit", options.ExplicitDirectory);
        Assert.Equal("/data/fm", options.EnvironmentDirectory);
        Assert.Equal("/xdg/clusterconv/fashion-mnist", options.CacheDirectory);
        Assert.Equal("/usr/share/datasets/fashion-mnist", options.SystemDirectory);
        Assert.Equal(new Uri("http://127.0.0.1:8080/fm/"), options.MirrorBaseUri);
        Assert.Same(FashionMnist.PublishedMd5, options.Md5);
    }

    [Fact]
    public void Without_XDG_CACHE_HOME_the_cache_is_under_HOME_dot_cache_and_the_mirror_is_the_official_one()
    {
        var options = DataDiscoveryOptions.FromEnvironment(null, name => name == "HOME" ? "/home/u" : null);

        Assert.Null(options.ExplicitDirectory);
        Assert.Null(options.EnvironmentDirectory);
        Assert.Equal("/home/u/.cache/clusterconv/fashion-mnist", options.CacheDirectory);
        Assert.Equal(new Uri("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"), options.MirrorBaseUri);
    }

    [Fact]
    public void A_mirror_variable_that_is_not_an_http_url_is_an_error_naming_the_variable()
    {
        var error = Assert.Throws<DataException>(() => DataDiscoveryOptions.FromEnvironment(null, name => name == "CLUSTERCONV_DATA_MIRROR" ? "ftp://x/" : null));

        Assert.Equal("CLUSTERCONV_DATA_MIRROR: 'ftp://x/' is not an absolute http or https URL", error.Message);
    }

    internal static Dictionary<string, string> Md5Of(IReadOnlyDictionary<string, byte[]> files) =>
        files.ToDictionary(f => f.Key, f => Convert.ToHexStringLower(global::System.Security.Cryptography.MD5.HashData(f.Value)));
}
