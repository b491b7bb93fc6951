namespace ClusterConv.Data;

/// <summary>
/// Labelled single-channel images held as raw bytes: pixels (Count, Height, Width) row-major, one byte per pixel,
/// and one byte label per image. Immutable; slices share memory with their parent.
/// </summary>
/// <remarks>
/// <see cref="GlobalOffset"/> is the global index of this set's sample 0: a worker that owns a contiguous shard of the
/// training set holds a slice whose samples keep their global indices, so per-sample randomness (augmentation,
/// dropout) is the same whichever worker processes a sample.
/// </remarks>
public sealed class Dataset
{
    /// <summary>Wraps pixels and labels, checking sizes and label range (throws <see cref="ArgumentException"/>).</summary>
    /// <param name="name">Shown in logs, e.g. "Fashion-MNIST train".</param>
    /// <param name="pixels">Count·Height·Width bytes, row-major.</param>
    /// <param name="labels">Count bytes, each below the class count.</param>
    /// <param name="height">Rows of one image.</param>
    /// <param name="width">Columns of one image.</param>
    /// <param name="classNames">One name per class; its length is the class count.</param>
    /// <param name="globalOffset">Global index of sample 0 (non-zero for shards).</param>
    public Dataset(string name, ReadOnlyMemory<byte> pixels, ReadOnlyMemory<byte> labels, int height, int width, IReadOnlyList<string> classNames, int globalOffset = 0)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegative(globalOffset);
        if (classNames.Count is 0 or > 256)
        {
            throw new ArgumentException($"A data set needs 1 to 256 classes, got {classNames.Count}.", nameof(classNames));
        }

        var imageSize = (long)height * width;
        if (pixels.Length != labels.Length * imageSize)
        {
            throw new ArgumentException($"{labels.Length} labels need {labels.Length * imageSize} pixel bytes of {height}x{width} images, got {pixels.Length}.", nameof(pixels));
        }

        var span = labels.Span;
        for (var i = 0; i < span.Length; i++)
        {
            if (span[i] >= classNames.Count)
            {
                throw new ArgumentException($"Label {span[i]} at index {i} is out of range 0..{classNames.Count - 1}.", nameof(labels));
            }
        }

        Name = name;
        Pixels = pixels;
        Labels = labels;
        Height = height;
        Width = width;
        ClassNames = classNames.ToArray();
        GlobalOffset = globalOffset;
    }

    public string Name { get; }

    /// <summary>(Count, Height, Width) bytes, row-major.</summary>
    public ReadOnlyMemory<byte> Pixels { get; }

    /// <summary>One label per image, in 0..ClassCount-1.</summary>
    public ReadOnlyMemory<byte> Labels { get; }

    public int Count => Labels.Length;

    public int Height { get; }

    public int Width { get; }

    /// <summary>Bytes of one image: Height·Width.</summary>
    public int ImageSize => Height * Width;

    public int ClassCount => ClassNames.Count;

    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Global index of sample 0; sample i of this set is global sample GlobalOffset + i.</summary>
    public int GlobalOffset { get; }

    /// <summary>Pixels of local sample <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> Image(int index) => Pixels.Span.Slice(index * ImageSize, ImageSize);

    /// <summary>Label of local sample <paramref name="index"/>.</summary>
    public int Label(int index) => Labels.Span[index];

    /// <summary>True when global sample <paramref name="globalIndex"/> is held here.</summary>
    public bool Contains(int globalIndex) => globalIndex >= GlobalOffset && globalIndex - GlobalOffset < Count;

    /// <summary>Samples [start, start+count) as a set sharing this one's memory; global indices are kept.</summary>
    public Dataset Slice(int start, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start, Count - count);
        return new Dataset(Name, Pixels.Slice(start * ImageSize, count * ImageSize), Labels.Slice(start, count), Height, Width, ClassNames, GlobalOffset + start);
    }

    /// <summary>The samples of one shard (see <see cref="Sharding.Range"/>), keeping global indices.</summary>
    public Dataset Slice(ShardRange range) => Slice(range.Start, range.Count);

    /// <summary>Number of samples of each class.</summary>
    public int[] ClassCounts()
    {
        var counts = new int[ClassCount];
        foreach (var label in Labels.Span)
        {
            counts[label]++;
        }

        return counts;
    }

    public override string ToString() => $"{Name}: {Count} images of {Height}x{Width}, {ClassCount} classes";
}

/// <summary>The training and test sets of one data source, and where they came from (for a log line).</summary>
public sealed record DataSplits(Dataset Train, Dataset Test, string Source);
