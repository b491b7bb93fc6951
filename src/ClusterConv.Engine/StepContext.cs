namespace ClusterConv.Engine;

/// <summary>What a forward or backward pass needs besides tensors.</summary>
/// <param name="Training">Dropout active and BatchNormalization using batch statistics.</param>
/// <param name="Compute">Threads to split work over.</param>
/// <param name="Seed">Run seed; with Epoch and a sample's global index it derives that sample's random stream.</param>
/// <param name="Epoch">Current epoch (0-based).</param>
/// <param name="SampleIndices">Global index of each sample in the batch, so per-sample randomness does not depend on how batches are split.</param>
public sealed record StepContext(bool Training, ComputePool Compute, ulong Seed = 0, int Epoch = 0, int[]? SampleIndices = null)
{
    /// <summary>Random stream of one sample for one layer: the same whatever batch, worker or thread computes it.</summary>
    public DeterministicRandom SampleRandom(int sampleInBatch, int layerIndex)
    {
        var global = SampleIndices is null ? sampleInBatch : SampleIndices[sampleInBatch];
        return new DeterministicRandom(DeterministicRandom.Mix(Seed, (ulong)(uint)Epoch, (ulong)(uint)global, (ulong)(uint)layerIndex));
    }
}
