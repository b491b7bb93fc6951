using System.Buffers.Binary;
using System.IO.Compression;

namespace ClusterConv.Data;

/// <summary>Images of one IDX image file: Count·Rows·Columns bytes, row-major.</summary>
public sealed record IdxImages(int Count, int Rows, int Columns, byte[] Pixels);

/// <summary>
/// Reads IDX files (the MNIST format): a big-endian header (two zero bytes, a data type byte, a dimension count,
/// then one 32-bit size per dimension) followed by the data. Only unsigned-byte data is accepted: images are
/// 0x00000803 (count, rows, columns), labels 0x00000801 (count). A file is gzip when it starts with 1f 8b,
/// whatever its name. Every problem is one <see cref="DataException"/> naming the file and the problem.
/// </summary>
public static class IdxReader
{
    public const int ImageMagic = 0x00000803;
    public const int LabelMagic = 0x00000801;

    private const byte UnsignedByte = 0x08;

    /// <summary>Reads an image file (magic 0x00000803).</summary>
    public static IdxImages ReadImages(string path)
    {
        using var input = Open(path, out var holds);
        var dims = ReadHeader(input, path, holds, 3, ImageMagic, "an image file needs 3 (count, rows, columns)");
        var (count, rows, columns) = (dims[0], dims[1], dims[2]);
        if (rows == 0 || columns == 0)
        {
            throw new DataException(path, $"header declares images of {rows}x{columns} pixels");
        }

        var what = $"{count} images of {rows}x{columns}";
        var pixels = ReadBody(input, path, holds, (long)count * rows * columns, 16, what);
        return new IdxImages(count, rows, columns, pixels);
    }

    /// <summary>Reads a label file (magic 0x00000801) and checks every label is below <paramref name="classCount"/>.</summary>
    public static byte[] ReadLabels(string path, int classCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classCount);
        using var input = Open(path, out var holds);
        var dims = ReadHeader(input, path, holds, 1, LabelMagic, "a label file needs 1 (count)");
        var labels = ReadBody(input, path, holds, dims[0], 8, $"{dims[0]} labels");
        for (var i = 0; i < labels.Length; i++)
        {
            if (labels[i] >= classCount)
            {
                throw new DataException(path, $"label {labels[i]} at index {i} is out of range 0..{classCount - 1}");
            }
        }

        return labels;
    }

    /// <summary>Reads an image file and its label file into one data set, checking that their counts agree.</summary>
    public static Dataset Load(string imagesPath, string labelsPath, string name, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        var images = ReadImages(imagesPath);
        var labels = ReadLabels(labelsPath, classNames.Count);
        if (labels.Length != images.Count)
        {
            throw new DataException(labelsPath, $"holds {labels.Length} labels but {imagesPath} holds {images.Count} images; the counts must agree");
        }

        return new Dataset(name, images.Pixels, labels, images.Rows, images.Columns, classNames);
    }

    /// <summary>Loads the train and test sets from a folder holding the four IDX files (see <see cref="IdxFiles"/>).</summary>
    /// <param name="directory">The folder.</param>
    /// <param name="info">Name and class names of the set.</param>
    /// <param name="source">Where the folder came from, for <see cref="DataSplits.Source"/>; defaults to the folder.</param>
    public static DataSplits LoadSplits(string directory, DatasetInfo info, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(info);
        IdxFiles.EnsureComplete(directory);
        var train = Load(IdxFiles.Find(directory, IdxFiles.TrainImages)!, IdxFiles.Find(directory, IdxFiles.TrainLabels)!, $"{info.Name} train", info.ClassNames);
        var test = Load(IdxFiles.Find(directory, IdxFiles.TestImages)!, IdxFiles.Find(directory, IdxFiles.TestLabels)!, $"{info.Name} test", info.ClassNames);
        if (test.Height != train.Height || test.Width != train.Width)
        {
            throw new DataException(directory, $"test images are {test.Height}x{test.Width} but train images are {train.Height}x{train.Width}");
        }

        return new DataSplits(train, test, source ?? $"{info.Name} from {directory}");
    }

    /// <summary>Opens the file, through a gzip decompressor when it starts with 1f 8b. <paramref name="holds"/> names what the byte counts refer to.</summary>
    private static Stream Open(string path, out string holds)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            throw new DataException(path, "is a folder, not an IDX file");
        }

        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new DataException(path, "does not exist", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataException(path, $"cannot be opened: {e.Message}", e);
        }

        try
        {
            if (file.Length == 0)
            {
                throw new DataException(path, "is empty (0 bytes)");
            }

            Span<byte> head = stackalloc byte[2];
            var n = file.ReadAtLeast(head, 2, throwOnEndOfStream: false);
            file.Position = 0;
            if (n == 2 && head[0] == 0x1f && head[1] == 0x8b)
            {
                holds = "the decompressed data holds";
                return new GZipStream(file, CompressionMode.Decompress, leaveOpen: false);
            }

            holds = "the file holds";
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Checks magic and dimension count, returns the dimension sizes.</summary>
    private static int[] ReadHeader(Stream input, string path, string holds, int dimensions, int magic, string dimensionRule)
    {
        Span<byte> buffer = stackalloc byte[4 * (1 + 3)];
        var header = buffer[..(4 * (1 + dimensions))];
        var got = Read(input, path, header);
        if (got < 4)
        {
            throw new DataException(path, $"too short for an IDX header: {holds} {got} bytes");
        }

        var actualMagic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (header[0] != 0 || header[1] != 0)
        {
            throw new DataException(path, $"not an IDX file: magic number 0x{actualMagic:X8}, expected 0x{magic:X8}");
        }

        if (header[2] != UnsignedByte)
        {
            throw new DataException(path, $"IDX data type 0x{header[2]:X2} ({TypeName(header[2])}) is not supported: expected 0x08 (unsigned byte), magic 0x{magic:X8}");
        }

        if (header[3] != dimensions)
        {
            var hint = header[3] == 1 && dimensions == 3 ? "; this looks like a label file"
                : header[3] == 3 && dimensions == 1 ? "; this looks like an image file" : string.Empty;
            throw new DataException(path, $"has {header[3]} dimension(s) (magic 0x{actualMagic:X8}) but {dimensionRule}{hint}");
        }

        if (got < header.Length)
        {
            throw new DataException(path, $"truncated header: {dimensions} dimension(s) need {header.Length} header bytes but {holds} {got}");
        }

        var sizes = new int[dimensions];
        for (var d = 0; d < dimensions; d++)
        {
            var size = BinaryPrimitives.ReadUInt32BigEndian(header[(4 + (4 * d))..]);
            if (size > int.MaxValue)
            {
                throw new DataException(path, $"dimension {d} has an impossible size {size}");
            }

            sizes[d] = (int)size;
        }

        if (sizes[0] == 0)
        {
            throw new DataException(path, "header declares 0 items: the file holds no data");
        }

        return sizes;
    }

    /// <summary>Reads exactly <paramref name="bodyBytes"/> after the header and checks nothing follows.</summary>
    private static byte[] ReadBody(Stream input, string path, string holds, long bodyBytes, int headerBytes, string what)
    {
        if (bodyBytes > Array.MaxLength)
        {
            throw new DataException(path, $"header says {what} ({bodyBytes + headerBytes} bytes), more than one array can hold");
        }

        // A header is 16 bytes anyone can get wrong: allocate what it declares only once the data is known to be
        // there (an uncompressed file's length), or grow as it arrives (gzip), so a bad header cannot claim gigabytes.
        var known = input is FileStream file ? file.Length - headerBytes : -1;
        if (known >= 0 && known < bodyBytes)
        {
            throw new DataException(path, $"truncated: header says {what} ({bodyBytes + headerBytes} bytes) but {holds} {known + headerBytes}");
        }

        var body = GC.AllocateUninitializedArray<byte>((int)(known >= 0 ? bodyBytes : Math.Min(bodyBytes, 1 << 20)));
        var got = 0;
        while (true)
        {
            got += Read(input, path, body.AsSpan(got));
            if (got < body.Length || body.Length == bodyBytes)
            {
                break;
            }

            Array.Resize(ref body, (int)Math.Min(bodyBytes, (long)body.Length * 2));
        }

        if (got < bodyBytes)
        {
            throw new DataException(path, $"truncated: header says {what} ({bodyBytes + headerBytes} bytes) but {holds} {got + headerBytes}");
        }

        Span<byte> extra = stackalloc byte[4096];
        long trailing = 0;
        int n;
        while ((n = Read(input, path, extra)) > 0)
        {
            trailing += n;
        }

        if (trailing > 0)
        {
            throw new DataException(path, $"{trailing} trailing bytes: header says {what} ({bodyBytes + headerBytes} bytes) but {holds} {bodyBytes + headerBytes + trailing}");
        }

        CheckGzipTrailer(input, path, bodyBytes + headerBytes);
        return body;
    }

    /// <summary>
    /// GZipStream ends quietly when the file stops inside the 8-byte trailer (CRC-32, size), so a file cut by a few
    /// bytes would read as whole: the trailer's size field must match what was decompressed. Checking the last
    /// member only, as gzip -l does; the MNIST files are single-member.
    /// </summary>
    private static void CheckGzipTrailer(Stream input, string path, long decompressed)
    {
        if (input is not GZipStream { BaseStream: FileStream file })
        {
            return;
        }

        Span<byte> size = stackalloc byte[4];
        var length = file.Length;
        var got = length >= 18 ? RandomAccess.Read(file.SafeFileHandle, size, length - 4) : 0;
        if (got < 4 || BinaryPrimitives.ReadUInt32LittleEndian(size) != (uint)decompressed)
        {
            throw new DataException(path, $"corrupt gzip data: the file ends without a complete gzip trailer (truncated at byte {length}; {decompressed} bytes decompressed)");
        }
    }

    /// <summary>Fills as much of <paramref name="buffer"/> as the stream holds; gzip and I/O failures become DataExceptions.</summary>
    private static int Read(Stream input, string path, Span<byte> buffer)
    {
        try
        {
            return input.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        }
        catch (InvalidDataException e)
        {
            throw new DataException(path, $"corrupt gzip data: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new DataException(path, $"cannot be read: {e.Message}", e);
        }
    }

    private static string TypeName(byte type) => type switch
    {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "int16",
        0x0C => "int32",
        0x0D => "float32",
        0x0E => "float64",
        _ => "unknown",
    };
}
