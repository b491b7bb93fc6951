using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Specs;

public enum Padding
{
    Valid,
    Same,
}

/// <summary>Axis order of the model file's images: Keras' channels_last (N, H, W, C, the default) or channels_first (N, C, H, W).
/// The engine always computes in NCHW; this only says how shapes are read and printed.</summary>
public enum DataFormat
{
    ChannelsLast,
    ChannelsFirst,
}

public enum Initializer
{
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    Zeros,
    Ones,
}

/// <summary>
/// A layer as described in a model file or a built-in model: plain data, no buffers. Shapes and
/// parameter counts follow Keras, so that a summary matches what Keras prints for the same model.
/// </summary>
public abstract record LayerSpec(string Name)
{
    /// <summary>Keras class name.</summary>
    public abstract string TypeName { get; }

    /// <summary>Output shape for one sample, or a <see cref="ModelException"/> naming this layer when the input does not fit.</summary>
    public abstract SampleShape OutputShape(SampleShape input);

    /// <summary>All parameters Keras counts, moving statistics included.</summary>
    public virtual long ParameterCount(SampleShape input) => 0;

    /// <summary>Parameters an optimizer updates.</summary>
    public virtual long TrainableParameterCount(SampleShape input) => ParameterCount(input);

    protected ModelException Error(string field, string problem) => new($"layer '{Name}' ({TypeName}), {field}: {problem}");
}

/// <summary>2-D convolution. Kernel (K, C, R, S); bias (K).</summary>
public sealed record Conv2DSpec(
    string Name,
    int Filters,
    int KernelH,
    int KernelW,
    int StrideH = 1,
    int StrideW = 1,
    Padding Padding = Padding.Valid,
    bool UseBias = true,
    Activation Activation = default,
    Initializer KernelInitializer = Initializer.GlorotUniform) : LayerSpec(Name)
{
    public override string TypeName => "Conv2D";

    public override SampleShape OutputShape(SampleShape input)
    {
        Validate();
        var h = ConvGeometry.OutputSize(input.H, KernelH, StrideH, Padding);
        var w = ConvGeometry.OutputSize(input.W, KernelW, StrideW, Padding);
        if (h <= 0 || w <= 0)
        {
            throw Error("kernel_size", $"kernel {KernelH}x{KernelW} is larger than its input {input.H}x{input.W}");
        }

        return new SampleShape(Filters, h, w);
    }

    public override long ParameterCount(SampleShape input) =>
        ((long)Filters * input.C * KernelH * KernelW) + (UseBias ? Filters : 0);

    private void Validate()
    {
        if (Filters <= 0)
        {
            throw Error("filters", $"must be positive, got {Filters}");
        }

        if (KernelH is < 1 or > 7 || KernelW is < 1 or > 7)
        {
            throw Error("kernel_size", $"must be 1 to 7 in each dimension, got {KernelH}x{KernelW}");
        }

        if (StrideH is < 1 or > 3 || StrideW is < 1 or > 3)
        {
            throw Error("strides", $"must be 1 to 3 in each dimension, got {StrideH}x{StrideW}");
        }
    }
}

public enum PoolKind
{
    Max,
    Average,
}

/// <summary>MaxPooling2D or AveragePooling2D. Average pooling with "same" padding divides by the count of real (unpadded) inputs, as Keras does.</summary>
public sealed record Pool2DSpec(string Name, PoolKind Kind, int PoolH, int PoolW, int StrideH, int StrideW, Padding Padding = Padding.Valid) : LayerSpec(Name)
{
    public override string TypeName => Kind == PoolKind.Max ? "MaxPooling2D" : "AveragePooling2D";

    public override SampleShape OutputShape(SampleShape input)
    {
        if (PoolH < 1 || PoolW < 1)
        {
            throw Error("pool_size", $"must be positive, got {PoolH}x{PoolW}");
        }

        if (StrideH < 1 || StrideW < 1)
        {
            throw Error("strides", $"must be positive, got {StrideH}x{StrideW}");
        }

        var h = ConvGeometry.OutputSize(input.H, PoolH, StrideH, Padding);
        var w = ConvGeometry.OutputSize(input.W, PoolW, StrideW, Padding);
        if (h <= 0 || w <= 0)
        {
            throw Error("pool_size", $"pool {PoolH}x{PoolW} is larger than its input {input.H}x{input.W}");
        }

        return new SampleShape(input.C, h, w);
    }
}

public sealed record FlattenSpec(string Name) : LayerSpec(Name)
{
    public override string TypeName => "Flatten";

    public override SampleShape OutputShape(SampleShape input) => SampleShape.Vector(input.Size);
}

/// <summary>Fully connected. Kernel (units, inputs); bias (units). Input must be a vector (after Flatten).</summary>
public sealed record DenseSpec(
    string Name,
    int Units,
    bool UseBias = true,
    Activation Activation = default,
    Initializer KernelInitializer = Initializer.GlorotUniform) : LayerSpec(Name)
{
    public override string TypeName => "Dense";

    public override SampleShape OutputShape(SampleShape input)
    {
        if (Units <= 0)
        {
            throw Error("units", $"must be positive, got {Units}");
        }

        if (input.H != 1 || input.W != 1)
        {
            throw Error("input", $"expects a vector (put a Flatten before it), got {input}");
        }

        return SampleShape.Vector(Units);
    }

    public override long ParameterCount(SampleShape input) => ((long)Units * input.Size) + (UseBias ? Units : 0);
}

/// <summary>Inverted dropout: at training, zero with probability Rate and scale survivors by 1/(1-Rate).</summary>
public sealed record DropoutSpec(string Name, float Rate) : LayerSpec(Name)
{
    public override string TypeName => "Dropout";

    public override SampleShape OutputShape(SampleShape input)
    {
        if (Rate is < 0f or >= 1f || float.IsNaN(Rate))
        {
            throw Error("rate", $"must be in [0, 1), got {Rate}");
        }

        return input;
    }
}

/// <summary>Batch normalization over channels (per feature for vectors). Gamma, beta trainable; moving mean and variance not.</summary>
public sealed record BatchNormSpec(string Name, float Momentum = 0.99f, float Epsilon = 1e-3f, bool Center = true, bool Scale = true) : LayerSpec(Name)
{
    public override string TypeName => "BatchNormalization";

    public override SampleShape OutputShape(SampleShape input)
    {
        if (Epsilon <= 0f)
        {
            throw Error("epsilon", $"must be positive, got {Epsilon}");
        }

        if (Momentum is < 0f or > 1f)
        {
            throw Error("momentum", $"must be in [0, 1], got {Momentum}");
        }

        return input;
    }

    public override long ParameterCount(SampleShape input) => (long)input.C * ((Center ? 1 : 0) + (Scale ? 1 : 0) + 2);

    public override long TrainableParameterCount(SampleShape input) => (long)input.C * ((Center ? 1 : 0) + (Scale ? 1 : 0));
}

/// <summary>A stand-alone activation: Keras Activation, ReLU or LeakyReLU (TypeName keeps which).</summary>
public sealed record ActivationSpec(string Name, Activation Activation, string KerasClass = "Activation") : LayerSpec(Name)
{
    public override string TypeName => KerasClass;

    public override SampleShape OutputShape(SampleShape input) => input;
}

/// <summary>A sequential model: the input shape of one sample (C, H, W) and its layers in order.</summary>
public sealed record ModelSpec(string Name, SampleShape Input, IReadOnlyList<LayerSpec> Layers)
{
    /// <summary>Axis order of the source file, used to print shapes as Keras does; computation is NCHW regardless.</summary>
    public DataFormat DataFormat { get; init; } = DataFormat.ChannelsLast;

    /// <summary>Output shape of every layer in order; throws a <see cref="ModelException"/> naming the first layer that does not fit.</summary>
    public IReadOnlyList<SampleShape> OutputShapes()
    {
        var shapes = new List<SampleShape>(Layers.Count);
        var current = Input;
        foreach (var layer in Layers)
        {
            current = layer.OutputShape(current);
            shapes.Add(current);
        }

        return shapes;
    }

    public long ParameterCount()
    {
        long total = 0;
        var current = Input;
        foreach (var layer in Layers)
        {
            total += layer.ParameterCount(current);
            current = layer.OutputShape(current);
        }

        return total;
    }
}

/// <summary>Keras output-size and padding arithmetic for convolution and pooling windows.</summary>
public static class ConvGeometry
{
    /// <summary>valid: floor((in - k) / s) + 1; same: ceil(in / s).</summary>
    public static int OutputSize(int input, int kernel, int stride, Padding padding) => padding == Padding.Valid
        ? (input < kernel ? 0 : ((input - kernel) / stride) + 1)
        : (input + stride - 1) / stride;

    /// <summary>Padding before the first input (top or left). "same" puts the odd extra pixel after, as TensorFlow does.</summary>
    public static int PadBefore(int input, int kernel, int stride, Padding padding)
    {
        if (padding == Padding.Valid)
        {
            return 0;
        }

        var output = OutputSize(input, kernel, stride, padding);
        var total = Math.Max(((output - 1) * stride) + kernel - input, 0);
        return total / 2;
    }
}
