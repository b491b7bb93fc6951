namespace ClusterConv.Engine.Layers;

/// <summary>
/// One layer of a sequential model. Forward and backward take (outputs, inputs) in that order.
/// Tensors are NCHW; Dense and Flatten outputs are (N, features, 1, 1).
/// </summary>
public abstract class Layer
{
    protected Layer(string name) => Name = name;

    /// <summary>Unique within a model, e.g. "conv2d_1".</summary>
    public string Name { get; }

    /// <summary>Keras class name, e.g. "Conv2D".</summary>
    public abstract string TypeName { get; }

    public SampleShape InputShape { get; private set; }

    public SampleShape OutputShape { get; private set; }

    /// <summary>Kernel then bias (or gamma, beta, moving_mean, moving_variance); empty for parameter-free layers.</summary>
    public virtual IReadOnlyList<Parameter> Parameters => [];

    /// <summary>Position in the model, set by the model; part of per-sample random streams.</summary>
    public int Index { get; internal set; }

    /// <summary>Fixes the input shape, validates it and allocates parameters. Throws <see cref="ModelException"/> naming this layer on a bad shape.</summary>
    public void Build(SampleShape input)
    {
        InputShape = input;
        OutputShape = ComputeOutputShape(input);
        if (OutputShape.C <= 0 || OutputShape.H <= 0 || OutputShape.W <= 0)
        {
            throw new ModelException($"layer '{Name}' ({TypeName}): input {input} gives an empty output {OutputShape}");
        }

        AllocateParameters();
    }

    /// <summary>Sets initial values from a seeded generator (He or Glorot for weights, zeros for biases).</summary>
    public virtual void Initialize(ref DeterministicRandom random)
    {
    }

    // output (N, OutputShape) <- input (N, InputShape)
    public abstract void Forward(Tensor output, Tensor input, StepContext context);

    // dInput (N, InputShape) <- dOutput (N, OutputShape), with the input and output of the last Forward.
    // Writes (does not accumulate) every trainable parameter's Gradient.
    public abstract void Backward(Tensor dInput, Tensor dOutput, Tensor input, Tensor output, StepContext context);

    protected abstract SampleShape ComputeOutputShape(SampleShape input);

    protected virtual void AllocateParameters()
    {
    }
}

/// <summary>A model or layer description that cannot be built; the message names the layer and the field.</summary>
public sealed class ModelException : Exception
{
    public ModelException(string message) : base(message)
    {
    }

    public ModelException(string message, Exception inner) : base(message, inner)
    {
    }

    public ModelException()
    {
    }
}
