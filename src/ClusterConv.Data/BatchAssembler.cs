using ClusterConv.Engine;

namespace ClusterConv.Data;

/// <summary>
/// Fills an engine input tensor (N, 1, H, W) and a label array from a list of global sample indices, normalizing and
/// (for training) augmenting each image. Allocates nothing per batch: the tensor only grows when a batch is larger than
/// any before. Thread-safe: it holds no mutable state, so threads may fill different tensors at once.
/// </summary>
public sealed class BatchAssembler
{
    private readonly float[] table;

    /// <param name="data">The samples this process holds (a whole set or a shard keeping global indices).</param>
    /// <param name="normalization">Byte to value mapping.</param>
    /// <param name="augmentation">Random transforms; <see cref="Augmentation.None"/> for evaluation.</param>
    /// <param name="seed">Run seed; with epoch and global index it derives each sample's transform.</param>
    public BatchAssembler(Dataset data, Normalization normalization, Augmentation? augmentation = null, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(normalization);
        Data = data;
        Normalization = normalization;
        Augmentation = augmentation ?? Augmentation.None;
        Seed = seed;
        table = normalization.Table();
    }

    public Dataset Data { get; }

    public Normalization Normalization { get; }

    public Augmentation Augmentation { get; }

    public ulong Seed { get; }

    /// <summary>Shape of one input sample: (1, H, W).</summary>
    public SampleShape SampleShape => new(1, Data.Height, Data.Width);

    /// <summary>A tensor sized for <paramref name="batchSize"/> samples of this data, to reuse across batches.</summary>
    public Tensor CreateTensor(int batchSize) => new(batchSize, SampleShape);

    /// <summary>
    /// Writes sample globalIndices[i] into images.Sample(i) and its label into labels[i]; resizes
    /// <paramref name="images"/> to the batch's size (growing its buffer only when needed).
    /// </summary>
    /// <param name="images">Tensor of shape (·, 1, H, W).</param>
    /// <param name="labels">At least globalIndices.Length entries.</param>
    /// <param name="globalIndices">Global sample indices, each held by <see cref="Data"/>.</param>
    /// <param name="epoch">Epoch, for the augmentation stream.</param>
    public void Fill(Tensor images, Span<int> labels, ReadOnlySpan<int> globalIndices, int epoch = 0)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Shape != SampleShape)
        {
            throw new ArgumentException($"Batch tensor samples are {images.Shape} but {Data.Name} images are {SampleShape}.", nameof(images));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(labels.Length, globalIndices.Length, nameof(labels));
        images.Resize(globalIndices.Length);
        var pixels = Data.Pixels.Span;
        var labelBytes = Data.Labels.Span;
        var size = Data.ImageSize;
        for (var i = 0; i < globalIndices.Length; i++)
        {
            var global = globalIndices[i];
            if (!Data.Contains(global))
            {
                throw new ArgumentOutOfRangeException(nameof(globalIndices), global, $"Sample {global} is not held by {Data.Name} (global indices {Data.GlobalOffset}..{Data.GlobalOffset + Data.Count - 1}).");
            }

            var local = global - Data.GlobalOffset;
            var source = pixels.Slice(local * size, size);
            var destination = images.Sample(i);
            var transform = Augmentation.For(Seed, epoch, global);
            if (transform.IsIdentity)
            {
                for (var p = 0; p < size; p++)
                {
                    destination[p] = table[source[p]];
                }
            }
            else
            {
                transform.Apply(destination, source, Data.Height, Data.Width, table);
            }

            labels[i] = labelBytes[local];
        }
    }
}
