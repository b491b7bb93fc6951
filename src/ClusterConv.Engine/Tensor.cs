namespace ClusterConv.Engine;

/// <summary>Shape of one sample: channels, height, width. A vector of n features is (n, 1, 1).</summary>
public readonly record struct SampleShape(int C, int H, int W)
{
    public int Size => C * H * W;

    public static SampleShape Vector(int features) => new(features, 1, 1);

    public override string ToString() => H == 1 && W == 1 ? $"({C})" : $"({C}, {H}, {W})";
}

/// <summary>A float32 tensor in NCHW layout, contiguous. The buffer may be longer than the tensor (reused across batch sizes).</summary>
public sealed class Tensor
{
    public Tensor(int n, SampleShape shape)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        N = n;
        Shape = shape;
        Data = new float[checked(n * shape.Size)];
    }

    public Tensor(int n, int c, int h, int w) : this(n, new SampleShape(c, h, w))
    {
    }

    public int N { get; private set; }

    public SampleShape Shape { get; }

    public int C => Shape.C;

    public int H => Shape.H;

    public int W => Shape.W;

    public float[] Data { get; private set; }

    public int Length => N * Shape.Size;

    public Span<float> Span => Data.AsSpan(0, Length);

    public Span<float> Sample(int n) => Data.AsSpan(n * Shape.Size, Shape.Size);

    /// <summary>Changes the batch size, growing the buffer only when needed. Contents are unspecified afterwards.</summary>
    public void Resize(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        var needed = checked(n * Shape.Size);
        if (needed > Data.Length)
        {
            Data = new float[needed];
        }

        N = n;
    }

    public void Clear() => Span.Clear();
}
