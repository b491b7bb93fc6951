using ClusterConv.Engine.Kernels;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Layers;

/// <summary>
/// Fully connected layer with a fused activation, as Keras' Dense. Kernel (units, inputs), bias (units).
/// Forward pre (N, U) = X (N, I) · Wᵀ + bias; backward dW (U, I) = dPreᵀ · X, dX (N, I) = dPre · W,
/// all on the packed GEMM. The bias gradient sums samples in order, so it is the same for every
/// thread count.
/// </summary>
public sealed unsafe class Dense : Layer
{
    private readonly AlignedBuffer preActivation = new();  // pre (N, U)
    private readonly AlignedBuffer dPreActivation = new(); // dPre (N, U)
    private Parameter[] parameters = [];
    private Parameter? kernel;
    private Parameter? bias;
    private int inputs;
    private int units;

    public Dense(DenseSpec spec)
        : base((spec ?? throw new ArgumentNullException(nameof(spec))).Name)
    {
        Spec = spec;
    }

    public DenseSpec Spec { get; }

    public Activation Activation => Spec.Activation;

    public override string TypeName => "Dense";

    public override IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>When false, Backward leaves dInput untouched and skips the input-gradient GEMM.</summary>
    public bool ComputeInputGradient { get; set; } = true;

    /// <summary>Floating-point operations of a forward pass over <paramref name="batch"/> samples.</summary>
    public long ForwardFlops(int batch) => Gemm.Flops(batch, units, inputs);

    /// <summary>Floating-point operations of a backward pass: the weight gradient, and the input gradient when computed.</summary>
    public long BackwardFlops(int batch) => ForwardFlops(batch) * (ComputeInputGradient ? 2 : 1);

    public override void Initialize(ref DeterministicRandom random)
    {
        Initializers.Fill(Kernel.Value, Spec.KernelInitializer, inputs, units, ref random);
        bias?.Value.AsSpan().Clear();
    }

    // output (N, U) <- activation(input (N, I) · kernel (U, I)ᵀ + bias (U))
    public override void Forward(Tensor output, Tensor input, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(context);
        var n = input.N;
        CheckTensor(input, InputShape, nameof(input), n);
        CheckTensor(output, OutputShape, nameof(output), n);
        var length = n * units;
        var linear = Activation.Kind == ActivationKind.Linear;
        var pre = linear ? output.Span : new Span<float>(preActivation.Ensure(length), length);
        var biasValues = bias is null ? ReadOnlySpan<float>.Empty : bias.Value;
        Gemm.Compute(context.Compute, GemmTranspose.B, n, units, inputs, input.Span, inputs, Kernel.Value, inputs, pre, units, accumulate: false, biasValues);
        if (!linear)
        {
            ActivationFunctions.Forward(Activation, output.Span, pre);
        }
    }

    // dInput (N, I), dKernel (U, I), dBias (U) <- dOutput (N, U), with input and output of the last Forward
    public override void Backward(Tensor dInput, Tensor dOutput, Tensor input, Tensor output, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(dInput);
        ArgumentNullException.ThrowIfNull(dOutput);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(context);
        var n = dOutput.N;
        CheckTensor(dOutput, OutputShape, nameof(dOutput), n);
        CheckTensor(output, OutputShape, nameof(output), n);
        CheckTensor(input, InputShape, nameof(input), n);
        if (ComputeInputGradient)
        {
            CheckTensor(dInput, InputShape, nameof(dInput), n);
        }

        var length = n * units;
        ReadOnlySpan<float> dPre = dOutput.Span;
        if (Activation.Kind != ActivationKind.Linear)
        {
            if (length > preActivation.Capacity)
            {
                throw new InvalidOperationException($"layer '{Name}': Backward over {n} samples without a Forward over them");
            }

            var dPreSpan = new Span<float>(dPreActivation.Ensure(length), length);
            ActivationFunctions.Backward(Activation, dPreSpan, dOutput.Span, preActivation.AsSpan(length), output.Span);
            dPre = dPreSpan;
        }

        var pool = context.Compute;

        // dW (U, I) = dPre (N, U)ᵀ · X (N, I)
        Gemm.Compute(pool, GemmTranspose.A, units, inputs, n, dPre, units, input.Span, inputs, Kernel.Gradient, inputs);
        if (bias is not null)
        {
            var dBias = bias.Gradient;
            dBias.Clear();
            for (var s = 0; s < n; s++)
            {
                var row = dPre.Slice(s * units, units);
                for (var u = 0; u < units; u++)
                {
                    dBias[u] += row[u];
                }
            }
        }

        if (ComputeInputGradient)
        {
            // dX (N, I) = dPre (N, U) · W (U, I)
            Gemm.Compute(pool, GemmTranspose.None, n, inputs, units, dPre, units, Kernel.Value, inputs, dInput.Span, inputs);
        }
    }

    protected override SampleShape ComputeOutputShape(SampleShape input) => Spec.OutputShape(input);

    protected override void AllocateParameters()
    {
        inputs = InputShape.Size;
        units = Spec.Units;
        kernel = new Parameter("kernel", [units, inputs]);
        bias = Spec.UseBias ? new Parameter("bias", [units]) : null;
        parameters = bias is null ? [kernel] : [kernel, bias];
    }

    private Parameter Kernel => kernel ?? throw new InvalidOperationException($"layer '{Name}' is not built");

    private static void CheckTensor(Tensor tensor, SampleShape shape, string name, int n)
    {
        if (tensor.Shape != shape || tensor.N != n)
        {
            throw new ArgumentException($"expected ({n}, {shape}), got ({tensor.N}, {tensor.Shape})", name);
        }
    }
}
