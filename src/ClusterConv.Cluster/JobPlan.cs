using ClusterConv.Data;

namespace ClusterConv.Cluster;

/// <summary>
/// How a job cuts its data and its parameters, computed the same way by every grain from the spec.
/// <para>
/// Data: the training set is cut into <see cref="JobSpec.MicroBatches"/> (M) contiguous data shards, one per
/// micro-batch slot; every sample is in exactly one. Each epoch, shard j is shuffled with its own stream
/// (seed, epoch, shard start), and global batch b is the concatenation of micro-batch j = samples
/// [b·m_j, (b+1)·m_j) of shard j's order, where m_j is micro-batch j's share of the global batch size G.
/// Worker w of W owns the contiguous slots [⌊w·M/W⌋, ⌊(w+1)·M/W⌋), hence their data shards; neither the
/// shards nor the micro-batches depend on W, so any W ≤ M computes the same micro-batch gradients.
/// </para>
/// <para>
/// Parameters: the trainable vector (model order) is cut into P contiguous slices, one per parameter-server shard.
/// </para>
/// </summary>
public sealed class JobPlan
{
    public JobPlan(JobSpec spec, int trainCount, int testCount, int trainableParameters)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Spec = spec;
        TrainCount = Math.Min(trainCount, spec.TrainLimit ?? int.MaxValue);
        TestCount = Math.Min(testCount, spec.TestLimit ?? int.MaxValue);
        MicroBatches = spec.MicroBatches;
        DataShards = Sharding.Ranges(TrainCount, MicroBatches);
        MicroSizes = Sharding.Ranges(spec.BatchSize, MicroBatches).Select(r => r.Count).ToArray();
        long steps = 0;
        for (var j = 0; j < MicroBatches; j++)
        {
            steps = Math.Max(steps, MicroSizes[j] == 0 ? 0 : (DataShards[j].Count + MicroSizes[j] - 1) / MicroSizes[j]);
        }

        StepsPerEpoch = Math.Max(1, steps);
        var total = spec.Epochs * StepsPerEpoch;
        TotalSteps = spec.MaxSteps is { } max ? Math.Min(max, total) : total;
        VectorLength = trainableParameters;
        ParameterSlices = Sharding.Ranges(trainableParameters, spec.PsShards);
    }

    public JobSpec Spec { get; }

    public int TrainCount { get; }

    public int TestCount { get; }

    public int MicroBatches { get; }

    /// <summary>Data shard j: the training samples micro-batch slot j draws from.</summary>
    public IReadOnlyList<ShardRange> DataShards { get; }

    /// <summary>Samples micro-batch j takes from its shard per step (its share of the global batch).</summary>
    public IReadOnlyList<int> MicroSizes { get; }

    public long StepsPerEpoch { get; }

    public long TotalSteps { get; }

    public IReadOnlyList<ShardRange> ParameterSlices { get; }

    /// <summary>The length of the vector the shards split (<see cref="ParameterSlices"/> cover it).</summary>
    public int VectorLength { get; }

    public int EpochOf(long step) => (int)(step / StepsPerEpoch);

    public int BatchOf(long step) => (int)(step % StepsPerEpoch);

    /// <summary>Micro-batch slots owned by worker w of the job's workers.</summary>
    public ShardRange Slots(int worker) => Sharding.Range(MicroBatches, worker, Spec.Workers);

    /// <summary>The order of shard j in an epoch: its global sample indices, shuffled.</summary>
    public int[] ShardOrder(int shard, int epoch) => EpochOrder.ShardPermutation(DataShards[shard], Spec.Seed, epoch);

    /// <summary>Micro-batch j of a batch, from the shard's epoch order (empty once the shard is used up).</summary>
    public ReadOnlySpan<int> MicroBatch(int[] shardOrder, int shard, int batch)
    {
        ArgumentNullException.ThrowIfNull(shardOrder);
        var start = (long)batch * MicroSizes[shard];
        if (start >= shardOrder.Length)
        {
            return [];
        }

        return shardOrder.AsSpan((int)start, (int)Math.Min(MicroSizes[shard], shardOrder.Length - start));
    }

    /// <summary>Samples in global batch b: the divisor of the mean gradient.</summary>
    public int GlobalBatchSize(int batch)
    {
        var total = 0;
        for (var j = 0; j < MicroBatches; j++)
        {
            var start = (long)batch * MicroSizes[j];
            total += (int)Math.Clamp(DataShards[j].Count - start, 0, MicroSizes[j]);
        }

        return total;
    }

    /// <summary>Parameter-server shards by default: one per 512 KiB of float32 parameters, 1 to 8.</summary>
    public static int DefaultPsShards(int trainableParameters) => (int)Math.Clamp((4L * trainableParameters + (512 * 1024) - 1) / (512 * 1024), 1, 8);
}
