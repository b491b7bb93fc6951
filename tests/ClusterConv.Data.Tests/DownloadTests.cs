namespace ClusterConv.Data.Tests;

/// <summary>Downloads from a real loopback HTTP server: MD5-checked, atomic, into the cache only.</summary>
public sealed class DownloadTests : IDisposable
{
    private readonly TempDirectory temp = new();
    private readonly Dictionary<string, byte[]> files = Idx.SetFiles(trainCount: 40, testCount: 10).ToDictionary(f => f.BaseName + ".gz", f => Idx.Gzip(f.Content));
    private readonly LoopbackMirror mirror;

    public DownloadTests() => mirror = new LoopbackMirror(files);

    public void Dispose()
    {
        mirror.Dispose();
        temp.Dispose();
    }

    private string Cache => temp.Sub("cache");

    private DataDiscoveryOptions Options(IReadOnlyDictionary<string, string>? md5 = null) => new()
    {
        CacheDirectory = Cache,
        SystemDirectory = temp.Sub("no-system"),
        MirrorBaseUri = mirror.BaseUri,
        Md5 = md5 ?? DataLocatorTests.Md5Of(files),
        StallTimeout = TimeSpan.FromSeconds(10),
    };

    [Fact]
    public async Task With_matching_checksums_the_four_files_land_in_the_cache_and_load()
    {
        var splits = await new DataLocator(Options()).LoadAsync();

        Assert.Equal((40, 10), (splits.Train.Count, splits.Test.Count));
        foreach (var (name, content) in files)
        {
            Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(Cache, name)));
        }

        Assert.Equal(files.Keys.Order(), Directory.GetFiles(Cache).Select(Path.GetFileName).Order());
        Assert.Equal($"Fashion-MNIST from {Cache} (downloaded from {mirror.BaseUri})", splits.Source);
    }

    [Fact]
    public async Task Progress_reports_each_file_from_zero_to_its_full_size()
    {
        var progress = new RecordingProgress<DownloadProgress>();

        await new DataLocator(Options()).LocateAsync(progress);

        var reports = progress.Reports.ToArray();
        foreach (var (name, content) in files)
        {
            var mine = reports.Where(r => r.FileName == name).ToArray();
            Assert.Equal(0, mine[0].BytesDone);
            Assert.Equal(content.Length, mine[^1].BytesDone);
            Assert.All(mine, r => Assert.Equal(content.Length, r.TotalBytes));
            Assert.All(mine, r => Assert.Equal(4, r.FileCount));
        }

        Assert.Equal(1.0, reports[^1].Fraction);
    }

    [Fact]
    public async Task A_second_resolution_finds_the_cache_without_downloading_again()
    {
        await new DataLocator(Options()).LocateAsync();
        var requests = mirror.Requests.Count;

        var location = await new DataLocator(Options()).LocateAsync();

        Assert.Equal(DataOrigin.Cache, location.Origin);
        Assert.Equal(requests, mirror.Requests.Count);
    }

    [Fact]
    public async Task Only_the_files_missing_from_the_cache_are_downloaded()
    {
        Idx.Write(Cache, "train-images-idx3-ubyte.gz", files["train-images-idx3-ubyte.gz"]);
        Idx.Write(Cache, "t10k-images-idx3-ubyte", Idx.SetFiles(40, 10).Single(f => f.BaseName == IdxFiles.TestImages).Content);

        var location = await new DataLocator(Options()).LocateAsync();

        Assert.Equal(DataOrigin.Downloaded, location.Origin);
        Assert.Equal(["train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"], mirror.Requests);
    }

    [Fact]
    public async Task A_wrong_checksum_fails_naming_the_url_and_both_sums_and_leaves_nothing_behind()
    {
        var md5 = DataLocatorTests.Md5Of(files);
        md5["train-images-idx3-ubyte.gz"] = "00000000000000000000000000000000";

        var error = await Assert.ThrowsAsync<DataException>(() => new DataLocator(Options(md5)).LocateAsync());

        var url = new Uri(mirror.BaseUri, "train-images-idx3-ubyte.gz").AbsoluteUri;
        Assert.Equal(
            $"{url}: MD5 mismatch: expected 00000000000000000000000000000000, got {DataLocatorTests.Md5Of(files)["train-images-idx3-ubyte.gz"]} ({files["train-images-idx3-ubyte.gz"].Length} bytes received); nothing was saved",
            error.Message);
        Assert.Empty(Directory.GetFiles(Cache));
    }

    [Fact]
    public async Task A_file_the_mirror_lacks_fails_with_the_http_status_and_leaves_no_partial_file()
    {
        var md5 = DataLocatorTests.Md5Of(files);
        md5["t10k-labels-idx1-ubyte.gz"] = md5["train-labels-idx1-ubyte.gz"];
        files.Remove("t10k-labels-idx1-ubyte.gz");

        var error = await Assert.ThrowsAsync<DataException>(() => new DataLocator(Options(md5)).LocateAsync());

        Assert.Equal($"{new Uri(mirror.BaseUri, "t10k-labels-idx1-ubyte.gz").AbsoluteUri}: download failed: HTTP 404 Not Found", error.Message);
        Assert.Equal(["t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"], Directory.GetFiles(Cache).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task A_connection_dropped_mid_file_fails_clearly_and_leaves_no_partial_file()
    {
        mirror.CutShort["train-images-idx3-ubyte.gz"] = true;

        var error = await Assert.ThrowsAsync<DataException>(() => new DataLocator(Options()).LocateAsync());

        Assert.StartsWith($"{new Uri(mirror.BaseUri, "train-images-idx3-ubyte.gz").AbsoluteUri}: download", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(Cache));
    }

    [Fact]
    public async Task A_file_without_a_known_checksum_is_not_downloaded()
    {
        var md5 = DataLocatorTests.Md5Of(files);
        md5.Remove("t10k-images-idx3-ubyte.gz");

        var error = await Assert.ThrowsAsync<DataException>(() => new DataLocator(Options(md5)).LocateAsync());

        Assert.Equal("t10k-images-idx3-ubyte.gz: no MD5 checksum is known for this file, so it cannot be downloaded safely", error.Message);
        Assert.Empty(mirror.Requests);
    }

    [Fact]
    public void Production_checks_downloads_against_the_published_checksums()
    {
        Assert.Equal("8d4fb7e6c68d591d4c3dfef9ec88bf0d", FashionMnist.PublishedMd5["train-images-idx3-ubyte.gz"]);
        Assert.Equal("25c81989df183df01b3e8a0aad5dffbe", FashionMnist.PublishedMd5["train-labels-idx1-ubyte.gz"]);
        Assert.Equal("bef4ecab320f06d8554ea6380940ec79", FashionMnist.PublishedMd5["t10k-images-idx3-ubyte.gz"]);
        Assert.Equal("bb300cfdad3c16e7a12a480ee83cd310", FashionMnist.PublishedMd5["t10k-labels-idx1-ubyte.gz"]);
        Assert.Same(FashionMnist.PublishedMd5, new DataDiscoveryOptions().Md5);
    }
}
