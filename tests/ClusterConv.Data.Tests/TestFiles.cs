using System.Buffers.Binary;
using System.IO.Compression;

namespace ClusterConv.Data.Tests;

/// <summary>A fresh folder under the system temp folder, deleted on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "clusterconv-data-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>A sub-folder path (not created).</summary>
    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Builds IDX files byte by byte, good or deliberately broken.</summary>
internal static class Idx
{
    /// <summary>Header with the given magic and sizes.</summary>
    public static byte[] Header(int magic, params int[] sizes)
    {
        var header = new byte[4 + (4 * sizes.Length)];
        BinaryPrimitives.WriteInt32BigEndian(header, magic);
        for (var i = 0; i < sizes.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + (4 * i)), sizes[i]);
        }

        return header;
    }

    /// <summary>Pixel value of image n at (y, x): distinct per image so mix-ups show.</summary>
    public static byte Pixel(int n, int y, int x) => (byte)(((n * 31) + (y * 7) + (x * 3)) % 256);

    public static byte[] ImagePixels(int count, int rows, int columns)
    {
        var pixels = new byte[count * rows * columns];
        for (var n = 0; n < count; n++)
        {
            for (var y = 0; y < rows; y++)
            {
                for (var x = 0; x < columns; x++)
                {
                    pixels[(((n * rows) + y) * columns) + x] = Pixel(n, y, x);
                }
            }
        }

        return pixels;
    }

    public static byte[] Images(int count, int rows, int columns) => [.. Header(0x803, count, rows, columns), .. ImagePixels(count, rows, columns)];

    public static byte[] Labels(params byte[] labels) => [.. Header(0x801, labels.Length), .. labels];

    /// <summary>Labels n % 10.</summary>
    public static byte[] CyclicLabels(int count) => Labels(Enumerable.Range(0, count).Select(n => (byte)(n % 10)).ToArray());

    public static byte[] Gzip(byte[] raw)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(raw);
        }

        return output.ToArray();
    }

    public static string Write(string directory, string name, byte[] content)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    /// <summary>Writes the four files of a small set (train 12, test 5 images of 4x3) as .gz, or uncompressed under bare names.</summary>
    public static void WriteSet(string directory, bool gzip = true, int trainCount = 12, int testCount = 5)
    {
        foreach (var (name, content) in SetFiles(trainCount, testCount))
        {
            Write(directory, gzip ? name + ".gz" : name, gzip ? Gzip(content) : content);
        }
    }

    public static IEnumerable<(string BaseName, byte[] Content)> SetFiles(int trainCount = 12, int testCount = 5)
    {
        yield return (IdxFiles.TrainImages, Images(trainCount, 4, 3));
        yield return (IdxFiles.TrainLabels, CyclicLabels(trainCount));
        yield return (IdxFiles.TestImages, Images(testCount, 4, 3));
        yield return (IdxFiles.TestLabels, CyclicLabels(testCount));
    }
}
