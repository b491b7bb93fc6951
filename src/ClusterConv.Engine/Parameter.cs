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
        Gradient = new float[length];
        Trainable = trainable;
    }

    /// <summary>"kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance".</summary>
    public string Name { get; }

    /// <summary>Kernel (K, C, R, S) for Conv2D, (units, inputs) for Dense, (C) for bias and normalization.</summary>
    public int[] Shape { get; }

    public float[] Value { get; }

    /// <summary>Written (not accumulated) by the owning layer's Backward. Unused when not trainable.</summary>
    public float[] Gradient { get; }

    /// <summary>False for BatchNormalization's moving statistics: updated in forward, never by an optimizer.</summary>
    public bool Trainable { get; }

    public int Length => Value.Length;

    /// <summary>Number of filters or units the first dimension counts (per-filter statistics group by it).</summary>
    public int Rows => Shape[0];
}
