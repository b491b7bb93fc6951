namespace ClusterConv.Engine;

/// <summary>A trainable (or running-statistic) parameter of a layer with its gradient buffer.</summary>
public sealed class Parameter
{
    public Parameter(string name, int[] shape, bool trainable = true)
    {
        Name = name;
        Shape = shape;
        var length = 1;
        foreach (var d in shape)
        {
            length = checked(length * d);
        }

        Value = new float[length];
        ownGradient = new float[length];
        gradientStorage = ownGradient;
        Trainable = trainable;
    }

    /// <summary>"kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance".</summary>
    public string Name { get; }

    /// <summary>Kernel (K, C, R, S) for Conv2D, (units, inputs) for Dense, (C) for bias and normalization.</summary>
    public int[] Shape { get; }

    public float[] Value { get; }

    /// <summary>
    /// Written (not accumulated) by the owning layer's Backward. Unused when not trainable. Its own buffer, or a run of
    /// a caller's flat vector after <see cref="BindGradient"/>.
    /// </summary>
    public Span<float> Gradient => gradientStorage.AsSpan(gradientOffset, Value.Length);

    private readonly float[] ownGradient;
    private float[] gradientStorage;
    private int gradientOffset;

    /// <summary>
    /// Backward writes this gradient into storage[offset .. offset + Length) from now on (a worker's flat per-micro-batch
    /// vector: no copy afterwards); null returns it to the parameter's own buffer.
    /// </summary>
    public void BindGradient(float[]? storage, int offset = 0)
    {
        if (storage is null)
        {
            gradientStorage = ownGradient;
            gradientOffset = 0;
            return;
        }

        if (offset < 0 || offset > storage.Length - Value.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"parameter {Name} needs {Value.Length} values at {offset}; the storage has {storage.Length}");
        }

        gradientStorage = storage;
        gradientOffset = offset;
    }

    /// <summary>False for BatchNormalization's moving statistics: updated in forward, never by an optimizer.</summary>
    public bool Trainable { get; }

    public int Length => Value.Length;

    /// <summary>Number of filters or units the first dimension counts (per-filter statistics group by it).</summary>
    public int Rows => Shape[0];
}
