using FsCheck.Xunit;

namespace ClusterConv.Data.Tests;

/// <summary>
/// Whatever bytes a file holds, the reader either returns what the header promises or refuses the file with one
/// <see cref="DataException"/> naming it: never another exception type, never an allocation the data does not back.
/// </summary>
public sealed class IdxReaderPropertyTests : IDisposable
{
    private const int Runs = 300;

    private static readonly byte[] ValidImages = Idx.Images(3, 4, 3);
    private static readonly byte[] ValidLabels = Idx.Labels(0, 9, 4);

    private readonly TempDirectory temp = new();

    public void Dispose() => temp.Dispose();

    [Property(MaxTest = Runs)]
    public void Random_bytes_read_or_are_refused_with_a_DataException(byte[] content, bool gzip)
    {
        ArgumentNullException.ThrowIfNull(content);
        Check(gzip ? Idx.Gzip(content) : content);
    }

    [Property(MaxTest = Runs)]
    public void A_valid_file_with_bytes_changed_reads_or_is_refused_with_a_DataException(int[] positions, byte value, bool labels, bool gzip)
    {
        ArgumentNullException.ThrowIfNull(positions);
        var content = (byte[])(labels ? ValidLabels : ValidImages).Clone();
        if (gzip)
        {
            content = Idx.Gzip(content);
        }

        foreach (var p in positions.Take(4))
        {
            content[(int)((uint)p % content.Length)] ^= value == 0 ? (byte)1 : value;
        }

        Check(content);
    }

    [Property(MaxTest = Runs)]
    public void A_valid_file_cut_short_or_extended_is_refused_with_a_DataException(int cut, byte[] tail, bool labels, bool gzip)
    {
        ArgumentNullException.ThrowIfNull(tail);
        var valid = labels ? ValidLabels : ValidImages;
        var content = gzip ? Idx.Gzip(valid) : valid;
        var length = (int)((uint)cut % content.Length);
        byte[] changed = tail.Length > 0 && cut % 2 == 0 ? [.. content, .. tail] : content[..length];
        var path = Idx.Write(temp.Path, Guid.NewGuid().ToString("N"), changed);

        // A shorter file, or a longer uncompressed one, can never be the same data; gzip may ignore bytes after its end.
        var expectRefusal = changed.Length < content.Length || !gzip;
        var refused = Refused(() => Read(path, labels));
        Assert.True(refused || !expectRefusal, $"{changed.Length} bytes instead of {content.Length} were read without an error");
    }

    /// <summary>A header that declares a huge body over a short file: refused without allocating the declared size.</summary>
    [Property(MaxTest = 50)]
    public void A_header_declaring_more_than_the_file_holds_is_refused_quickly(int count, int rows, bool gzip)
    {
        var header = Idx.Header(IdxReader.ImageMagic, Math.Abs(count % 100_000) + 40_000, Math.Abs(rows % 1000) + 1000, 1000);
        var path = Idx.Write(temp.Path, Guid.NewGuid().ToString("N"), gzip ? Idx.Gzip([.. header, 1, 2, 3]) : [.. header, 1, 2, 3]);
        var before = GC.GetTotalAllocatedBytes(precise: false);
        Assert.True(Refused(() => IdxReader.ReadImages(path)));
        Assert.InRange(GC.GetTotalAllocatedBytes(precise: false) - before, 0, 64L << 20);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(7)]
    public void A_gzip_file_cut_inside_its_trailer_is_refused_naming_the_byte(int cut)
    {
        var gzip = Idx.Gzip(ValidImages);
        var path = Idx.Write(temp.Path, "t.gz", gzip[..^cut]);
        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));
        Assert.Contains($"corrupt gzip data: the file ends without a complete gzip trailer (truncated at byte {gzip.Length - cut}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_gzip_file_whose_checksum_does_not_match_is_refused()
    {
        var gzip = Idx.Gzip(ValidImages);
        gzip[^8] ^= 0xff; // first byte of the CRC-32
        var path = Idx.Write(temp.Path, "crc.gz", gzip);
        var error = Assert.Throws<DataException>(() => IdxReader.ReadImages(path));
        Assert.Contains("corrupt gzip data", error.Message, StringComparison.Ordinal);
    }

    private void Check(byte[] content)
    {
        var path = Idx.Write(temp.Path, Guid.NewGuid().ToString("N"), content);
        _ = Refused(() => IdxReader.ReadImages(path));
        _ = Refused(() => IdxReader.ReadLabels(path, 10));
        File.Delete(path);
    }

    private static object Read(string path, bool labels) => labels ? IdxReader.ReadLabels(path, 10) : IdxReader.ReadImages(path);

    /// <summary>True when refused with a DataException naming the file; any other exception fails the property.</summary>
    private static bool Refused(Func<object> read)
    {
        try
        {
            _ = read();
            return false;
        }
        catch (DataException e)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Path), e.Message);
            Assert.StartsWith(e.Path!, e.Message, StringComparison.Ordinal);
            return true;
        }
    }
}
