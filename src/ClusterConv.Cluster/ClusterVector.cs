using ClusterConv.Engine;
using ClusterConv.Engine.Layers;

namespace ClusterConv.Cluster;

/// <summary>
/// The vector the parameter servers hold and the workers push and pull: the trainable parameters (model order), then
/// the BatchNormalization moving statistics (model order; empty for a model without them).
/// <para>
/// A worker's leaf for micro-batch j carries, in the statistics part, that micro-batch's batch mean and variance
/// times (1 − momentum) times n_j·scale (scale = 1/global batch in bsp), so summing the leaves over the fixed
/// reduction tree gives (1 − momentum) times their sample-weighted mean, and the shard applies
/// moving = moving·momentum + sum: one moving-average update per global step, as engine-only training makes one per
/// batch. Batch statistics stay per micro-batch (like per-GPU BatchNormalization in DDP); the moving variance is the
/// mean of the variances the layer normalized with.
/// </para>
/// </summary>
public sealed class ClusterVector
{
    private readonly Parameter[] moving;
    private readonly float[] momentum;

    public ClusterVector(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Trainable = model.TrainableParameterCount;
        var byParameter = new Dictionary<Parameter, float>(ReferenceEqualityComparer.Instance);
        foreach (var layer in model.Layers.OfType<BatchNorm>())
        {
            byParameter[layer.MovingMean] = layer.Spec.Momentum;
            byParameter[layer.MovingVariance] = layer.Spec.Momentum;
        }

        moving = model.Parameters.Where(p => !p.Trainable).ToArray();
        var unknown = moving.FirstOrDefault(p => !byParameter.ContainsKey(p));
        if (unknown is not null)
        {
            throw new ArgumentException($"model '{model.Spec.Name}': non-trainable parameter '{unknown.Name}' is not a BatchNormalization moving statistic; the cluster cannot carry it");
        }

        momentum = moving.Select(p => byParameter[p]).ToArray();
        Moving = moving.Sum(p => p.Length);
    }

    /// <summary>Trainable values: the vector's [0, Trainable).</summary>
    public int Trainable { get; }

    /// <summary>Moving-statistics values: the vector's [Trainable, Length).</summary>
    public int Moving { get; }

    public int Length => Trainable + Moving;

    /// <summary>The moving statistics' parameters, in vector order, with their layer's momentum.</summary>
    public IEnumerable<(int Offset, int Length, float Momentum)> MovingRuns()
    {
        var offset = Trainable;
        for (var i = 0; i < moving.Length; i++)
        {
            yield return (offset, moving[i].Length, momentum[i]);
            offset += moving[i].Length;
        }
    }

    /// <summary>Loads trainable weights and moving statistics into <paramref name="model"/> (the model this layout was made from, or one built from the same spec).</summary>
    public void Load(Model model, ReadOnlySpan<float> vector)
    {
        ArgumentNullException.ThrowIfNull(model);
        model.LoadParameters(vector[..Trainable], trainableOnly: true);
        var offset = Trainable;
        foreach (var p in model.Parameters.Where(p => !p.Trainable))
        {
            vector.Slice(offset, p.Length).CopyTo(p.Value);
            offset += p.Length;
        }
    }

    /// <summary>
    /// A writer that fills <paramref name="model"/>'s weights and moving statistics from consecutive runs of the vector
    /// (the shards' weight segments, in order), so the vector need not be assembled first.
    /// </summary>
    public VectorWriter Writer(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new VectorWriter(model.TrainableParameters.Concat(model.Parameters.Where(p => !p.Trainable)).Select(p => p.Value).ToArray(), Length);
    }

    /// <summary>The model's weights and moving statistics as one vector.</summary>
    public void Copy(Model model, Span<float> vector)
    {
        ArgumentNullException.ThrowIfNull(model);
        model.CopyParametersTo(vector[..Trainable], trainableOnly: true);
        var offset = Trainable;
        foreach (var p in model.Parameters.Where(p => !p.Trainable))
        {
            p.Value.CopyTo(vector.Slice(offset, p.Length));
            offset += p.Length;
        }
    }

    /// <summary>
    /// Zeroes the model's moving statistics before a training forward: the forward then leaves exactly
    /// batch·(1 − momentum) in them, whatever the worker held before.
    /// </summary>
    public static void ClearMoving(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var p in model.Parameters.Where(p => !p.Trainable))
        {
            Array.Clear(p.Value);
        }
    }

    /// <summary>After a training forward that began with <see cref="ClearMoving"/>: the leaf's statistics part, batch·(1 − momentum)·weight.</summary>
    public void CopyMovingContribution(Model model, Span<float> leaf, float weight)
    {
        ArgumentNullException.ThrowIfNull(model);
        var offset = Trainable;
        foreach (var p in model.Parameters.Where(p => !p.Trainable))
        {
            System.Numerics.Tensors.TensorPrimitives.Multiply(p.Value, weight, leaf.Slice(offset, p.Length));
            offset += p.Length;
        }
    }
}

/// <summary>Writes a vector, run after run in order, into the parameter arrays that hold it (see <see cref="ClusterVector.Writer"/>).</summary>
public sealed class VectorWriter
{
    private readonly float[][] targets;
    private readonly int length;
    private int target;
    private int within;

    internal VectorWriter(float[][] targets, int length)
    {
        this.targets = targets;
        this.length = length;
    }

    /// <summary>How many values of the vector have been written.</summary>
    public int Position { get; private set; }

    /// <summary>The vector's next <paramref name="values"/>.Length values.</summary>
    public void Write(ReadOnlySpan<float> values)
    {
        if (values.Length > length - Position)
        {
            throw new ArgumentException($"{values.Length} values at {Position} run past the vector's {length}", nameof(values));
        }

        Position += values.Length;
        while (!values.IsEmpty)
        {
            var into = targets[target].AsSpan(within);
            var n = Math.Min(into.Length, values.Length);
            values[..n].CopyTo(into);
            values = values[n..];
            within += n;
            if (within == targets[target].Length)
            {
                target++;
                within = 0;
            }
        }
    }
}
