using ClusterConv.Engine.Kernels;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Layers;

/// <summary>
/// 2-D convolution with a fused activation, as Keras' Conv2D. Kernel (K,C,R,S), bias (K).
/// <para>
/// Strategy (chosen by measurement, see bench/ and the kernels README section): im2col in NHWC
/// order plus the packed GEMM. The input is transposed once to a zero-padded NHWC copy, so every
/// im2col row (one output pixel, R·S·C values) is R runs of S·C contiguous floats; the three
/// products then need no other transposes:
///   forward         preT (N·P·Q, K)  = colT (N·P·Q, R·S·C) · Wᵀ + bias   (W as (K, R·S·C))
///   weight gradient dWᵀ (R·S·C, K)   = colTᵀ · dPreT
///   input gradient  dColT (N·P·Q, R·S·C) = dPreT · W, then col2im into a padded NHWC gradient.
/// The GEMM runs on the whole batch (one big M), so its output tiles parallelise well and no
/// per-thread weight-gradient copies are summed. Batches whose im2col matrix exceeds
/// <see cref="ColumnLimit"/> floats are processed in chunks of samples whose size is fixed by the
/// shape; the weight gradient then accumulates chunk after chunk, which continues the same FMA chain,
/// so the result is bitwise that of a single chunk and never depends on the thread count.
/// </para>
/// </summary>
public sealed unsafe class Conv2D : Layer
{
    /// <summary>Largest im2col matrix kept (floats, 64 MB); larger batches go in chunks of samples.</summary>
    internal const long ColumnLimit = 16L << 20;

    [ThreadStatic]
    private static AlignedBuffer? sampleScratch;

    private readonly AlignedBuffer paddedInput = new();     // (chunk, Hp, Wp, C), zero border
    private readonly AlignedBuffer columns = new();         // colT (chunk·P·Q, R·S·C); dColT in backward
    private readonly AlignedBuffer preActivation = new();   // preT (N·P·Q, K)
    private readonly AlignedBuffer dPreActivation = new();  // dPreT (N·P·Q, K)
    private readonly AlignedBuffer dPaddedInput = new();    // (chunk, Hp, Wp, C)
    private readonly AlignedBuffer weightRsc = new();       // W (K, R·S·C)
    private readonly AlignedBuffer dWeightRsc = new();      // dWᵀ (R·S·C, K)
    private readonly AlignedBuffer biasPartials = new();    // (N, K): per-sample bias gradient
    private readonly Action<int> buildColumnsPart;
    private readonly Action<int> forwardSamplePart;
    private readonly Action<int> backwardSamplePart;
    private readonly Action<int> col2ImPart;
    private Parameter[] parameters = [];
    private Parameter? kernel;
    private Parameter? bias;
    private ConvProblem geometry;
    private int paddedH;
    private int paddedW;
    private int chunkSamples;
    private bool columnsHoldForward;

    // The call in progress, read by the parallel part bodies.
    private float* callInput;
    private float* callOutput;
    private float* callDOutput;
    private float* callDInput;
    private int callChunkStart;

    public Conv2D(Conv2DSpec spec)
        : base((spec ?? throw new ArgumentNullException(nameof(spec))).Name)
    {
        Spec = spec;
        buildColumnsPart = BuildColumnsSample;
        forwardSamplePart = ForwardSample;
        backwardSamplePart = BackwardSample;
        col2ImPart = Col2ImSample;
    }

    public Conv2DSpec Spec { get; }

    public Activation Activation => Spec.Activation;

    public override string TypeName => "Conv2D";

    public override IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>
    /// When false, Backward leaves dInput untouched and skips the input-gradient GEMM and col2im
    /// (a model's first layer needs no input gradient).
    /// </summary>
    public bool ComputeInputGradient { get; set; } = true;

    /// <summary>Samples per im2col chunk, fixed by the shape (<see cref="ColumnLimit"/>); settable for tests.</summary>
    internal int ChunkSamples
    {
        get => chunkSamples;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            chunkSamples = value;
            columnsHoldForward = false;
        }
    }

    /// <summary>Floating-point operations of a forward pass over <paramref name="batch"/> samples.</summary>
    public long ForwardFlops(int batch) => (geometry with { N = batch }).ForwardFlops;

    /// <summary>Floating-point operations of a backward pass: the weight gradient, and the input gradient when computed.</summary>
    public long BackwardFlops(int batch) => ForwardFlops(batch) * (ComputeInputGradient ? 2 : 1);

    public override void Initialize(ref DeterministicRandom random)
    {
        var (k, c, r, s) = (geometry.K, geometry.C, geometry.R, geometry.S);
        Initializers.Fill(Kernel.Value, Spec.KernelInitializer, c * r * s, k * r * s, ref random);
        bias?.Value.AsSpan().Clear();
    }

    // output (N,K,P,Q) <- input (N,C,H,W) convolved with kernel (K,C,R,S), plus bias, then activation
    public override void Forward(Tensor output, Tensor input, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(context);
        CheckTensor(input, InputShape, nameof(input), input.N);
        CheckTensor(output, OutputShape, nameof(output), input.N);
        var n = input.N;
        var g = geometry;
        var crs = g.Crs;
        var rowsPerSample = g.P * g.Q;
        var pool = context.Compute;
        PermuteWeights();
        preActivation.Ensure((long)n * rowsPerSample * g.K);
        EnsureChunkBuffers(Math.Min(n, chunkSamples));
        var biasValues = bias is null ? ReadOnlySpan<float>.Empty : bias.Value;
        fixed (float* pInput = input.Data)
        fixed (float* pOutput = output.Data)
        {
            callInput = pInput;
            callOutput = pOutput;
            for (var start = 0; start < n; start += chunkSamples)
            {
                var count = Math.Min(chunkSamples, n - start);
                var rows = count * rowsPerSample;
                BuildColumns(pool, start, count);

                // preT (rows, K) = colT (rows, RSC) · W (K, RSC)ᵀ + bias
                Gemm.Compute(
                    pool,
                    GemmTranspose.B,
                    rows,
                    g.K,
                    crs,
                    columns.AsSpan(rows * crs),
                    crs,
                    weightRsc.AsSpan(g.K * crs),
                    crs,
                    new Span<float>(preActivation.Pointer + ((long)start * rowsPerSample * g.K), rows * g.K),
                    g.K,
                    accumulate: false,
                    biasValues);
            }

            columnsHoldForward = n <= chunkSamples;
            pool.For(n, forwardSamplePart);
            callInput = null;
            callOutput = null;
        }
    }

    // dInput (N,C,H,W), dKernel (K,C,R,S), dBias (K) <- dOutput (N,K,P,Q), with input and output of the last Forward
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

        if ((long)n * geometry.P * geometry.Q * geometry.K > preActivation.Capacity)
        {
            throw new InvalidOperationException($"layer '{Name}': Backward over {n} samples without a Forward over them");
        }

        var g = geometry;
        var crs = g.Crs;
        var rowsPerSample = g.P * g.Q;
        var pool = context.Compute;
        PermuteWeights();
        dPreActivation.Ensure((long)n * rowsPerSample * g.K);
        biasPartials.Ensure((long)n * g.K);
        dWeightRsc.Ensure((long)crs * g.K);
        EnsureChunkBuffers(Math.Min(n, chunkSamples));
        fixed (float* pInput = input.Data)
        fixed (float* pOutput = output.Data)
        fixed (float* pDOutput = dOutput.Data)
        fixed (float* pDInput = dInput.Data)
        {
            callInput = pInput;
            callOutput = pOutput;
            callDOutput = pDOutput;
            callDInput = pDInput;

            // dPreT (N·P·Q, K) <- dOutput (N,K,P,Q) through the activation; per-sample bias sums.
            pool.For(n, backwardSamplePart);
            if (bias is not null)
            {
                SumBiasPartials(n, bias.Gradient);
            }

            for (var start = 0; start < n; start += chunkSamples)
            {
                var count = Math.Min(chunkSamples, n - start);
                var rows = count * rowsPerSample;
                if (!(columnsHoldForward && n <= chunkSamples))
                {
                    BuildColumns(pool, start, count);
                }

                var dPreT = new ReadOnlySpan<float>(dPreActivation.Pointer + ((long)start * rowsPerSample * g.K), rows * g.K);

                // dWᵀ (RSC, K) [+]= colT (rows, RSC)ᵀ · dPreT (rows, K)
                Gemm.Compute(pool, GemmTranspose.A, crs, g.K, rows, columns.AsSpan(rows * crs), crs, dPreT, g.K, dWeightRsc.AsSpan(crs * g.K), g.K, accumulate: start > 0);

                if (ComputeInputGradient)
                {
                    // dColT (rows, RSC) = dPreT (rows, K) · W (K, RSC), then col2im.
                    columnsHoldForward = false;
                    Gemm.Compute(pool, GemmTranspose.None, rows, crs, g.K, dPreT, g.K, weightRsc.AsSpan(g.K * crs), crs, columns.AsSpan(rows * crs), crs);
                    callChunkStart = start;
                    pool.For(count, col2ImPart);
                }
            }

            UnpermuteWeightGradient();
            callInput = null;
            callOutput = null;
            callDOutput = null;
            callDInput = null;
        }
    }

    protected override SampleShape ComputeOutputShape(SampleShape input) => Spec.OutputShape(input);

    protected override void AllocateParameters()
    {
        geometry = ConvProblem.Create(Spec, InputShape, 0);
        var g = geometry;
        paddedH = Math.Max(g.H, ((g.P - 1) * g.StrideH) + g.R);
        paddedW = Math.Max(g.W, ((g.Q - 1) * g.StrideW) + g.S);
        chunkSamples = (int)Math.Clamp(ColumnLimit / ((long)g.P * g.Q * g.Crs), 1, int.MaxValue);
        kernel = new Parameter("kernel", [g.K, g.C, g.R, g.S]);
        bias = Spec.UseBias ? new Parameter("bias", [g.K]) : null;
        parameters = bias is null ? [kernel] : [kernel, bias];
        columnsHoldForward = false;
    }

    private Parameter Kernel => kernel ?? throw new InvalidOperationException($"layer '{Name}' is not built");

    private static void CheckTensor(Tensor tensor, SampleShape shape, string name, int n)
    {
        if (tensor.Shape != shape || tensor.N != n)
        {
            throw new ArgumentException($"expected ({n}, {shape.C}, {shape.H}, {shape.W}), got ({tensor.N}, {tensor.C}, {tensor.H}, {tensor.W})", name);
        }
    }

    private void EnsureChunkBuffers(int samples)
    {
        var g = geometry;
        var padded = (long)samples * paddedH * paddedW * g.C;
        paddedInput.Ensure(padded);
        columns.Ensure((long)samples * g.P * g.Q * g.Crs);
        if (ComputeInputGradient)
        {
            dPaddedInput.Ensure(padded);
        }
    }

    // W (K, R·S·C) <- kernel (K, C, R, S)
    private void PermuteWeights()
    {
        var g = geometry;
        var w = Kernel.Value;
        var dst = weightRsc.Ensure((long)g.K * g.Crs);
        for (var k = 0; k < g.K; k++)
        {
            for (var c = 0; c < g.C; c++)
            {
                for (var r = 0; r < g.R; r++)
                {
                    for (var s = 0; s < g.S; s++)
                    {
                        dst[(k * g.Crs) + (((r * g.S) + s) * g.C) + c] = w[(((((k * g.C) + c) * g.R) + r) * g.S) + s];
                    }
                }
            }
        }
    }

    // dKernel (K, C, R, S) <- dWᵀ (R·S·C, K)
    private void UnpermuteWeightGradient()
    {
        var g = geometry;
        var dw = Kernel.Gradient;
        var src = dWeightRsc.Pointer;
        for (var k = 0; k < g.K; k++)
        {
            for (var c = 0; c < g.C; c++)
            {
                for (var r = 0; r < g.R; r++)
                {
                    for (var s = 0; s < g.S; s++)
                    {
                        dw[(((((k * g.C) + c) * g.R) + r) * g.S) + s] = src[(((((r * g.S) + s) * g.C) + c) * g.K) + k];
                    }
                }
            }
        }
    }

    // dBias (K) <- sum over samples, in sample order, of the per-sample sums
    private void SumBiasPartials(int n, float[] dBias)
    {
        var k = geometry.K;
        var partials = biasPartials.Pointer;
        for (var f = 0; f < k; f++)
        {
            var sum = 0f;
            for (var s = 0; s < n; s++)
            {
                sum += partials[(s * k) + f];
            }

            dBias[f] = sum;
        }
    }

    private void BuildColumns(ComputePool pool, int start, int count)
    {
        callChunkStart = start;
        pool.For(count, buildColumnsPart);
    }

    // padded (Hp, Wp, C) <- input sample (C, H, W); colT (P·Q, R·S·C) <- padded
    private void BuildColumnsSample(int s)
    {
        var g = geometry;
        var src = callInput + ((long)(callChunkStart + s) * g.C * g.H * g.W);
        var pad = paddedInput.Pointer + ((long)s * paddedH * paddedW * g.C);
        for (var h = 0; h < g.H; h++)
        {
            var dst = pad + ((((h + g.PadTop) * paddedW) + g.PadLeft) * g.C);
            if (g.C == 1)
            {
                Layout.CopyRun(src + (h * g.W), dst, g.W);
            }
            else
            {
                Layout.Transpose(src + (h * g.W), g.C, g.W, g.H * g.W, dst, g.C);
            }
        }

        var run = g.S * g.C;
        var crs = g.Crs;
        var col = columns.Pointer + ((long)s * g.P * g.Q * crs);
        for (var p = 0; p < g.P; p++)
        {
            for (var q = 0; q < g.Q; q++)
            {
                var row = col + (((p * g.Q) + q) * crs);
                var window = pad + ((((p * g.StrideH) * paddedW) + (q * g.StrideW)) * g.C);
                for (var r = 0; r < g.R; r++)
                {
                    Layout.CopyRun(window + (r * paddedW * g.C), row + (r * run), run);
                }
            }
        }
    }

    // output sample (K, P, Q) <- activation(preT sample (P·Q, K))
    private void ForwardSample(int s)
    {
        var g = geometry;
        var pq = g.P * g.Q;
        var length = g.K * pq;
        var output = callOutput + ((long)s * length);
        Layout.Transpose(preActivation.Pointer + ((long)s * length), pq, g.K, g.K, output, pq);
        if (Activation.Kind != ActivationKind.Linear)
        {
            var span = new Span<float>(output, length);
            ActivationFunctions.Forward(Activation, span, span);
        }
    }

    // dPreT sample (P·Q, K) <- dOutput sample (K, P, Q) · activation'(pre); bias partial (K)
    private void BackwardSample(int s)
    {
        var g = geometry;
        var pq = g.P * g.Q;
        var length = g.K * pq;
        var dOutput = callDOutput + ((long)s * length);
        var dPre = dOutput;
        if (Activation.Kind != ActivationKind.Linear)
        {
            var scratch = (sampleScratch ??= new AlignedBuffer()).Ensure(2L * length);
            var pre = scratch;
            dPre = scratch + length;
            Layout.Transpose(preActivation.Pointer + ((long)s * length), pq, g.K, g.K, pre, pq);
            ActivationFunctions.Backward(
                Activation,
                new Span<float>(dPre, length),
                new ReadOnlySpan<float>(dOutput, length),
                new ReadOnlySpan<float>(pre, length),
                new ReadOnlySpan<float>(callOutput + ((long)s * length), length));
        }

        Layout.Transpose(dPre, g.K, pq, pq, dPreActivation.Pointer + ((long)s * length), g.K);
        if (bias is not null)
        {
            var partial = biasPartials.Pointer + ((long)s * g.K);
            for (var k = 0; k < g.K; k++)
            {
                partial[k] = Layout.Sum(dPre + (k * pq), pq);
            }
        }
    }

    // dInput sample (C, H, W) <- col2im of dColT sample (P·Q, R·S·C)
    private void Col2ImSample(int s)
    {
        var g = geometry;
        var paddedLength = paddedH * paddedW * g.C;
        var pad = dPaddedInput.Pointer + ((long)s * paddedLength);
        new Span<float>(pad, paddedLength).Clear();
        var run = g.S * g.C;
        var crs = g.Crs;
        var col = columns.Pointer + ((long)s * g.P * g.Q * crs);
        for (var p = 0; p < g.P; p++)
        {
            for (var q = 0; q < g.Q; q++)
            {
                var row = col + (((p * g.Q) + q) * crs);
                var window = pad + ((((p * g.StrideH) * paddedW) + (q * g.StrideW)) * g.C);
                for (var r = 0; r < g.R; r++)
                {
                    Layout.AddRun(row + (r * run), window + (r * paddedW * g.C), run);
                }
            }
        }

        var dst = callDInput + ((long)(callChunkStart + s) * g.C * g.H * g.W);
        for (var h = 0; h < g.H; h++)
        {
            var src = pad + ((((h + g.PadTop) * paddedW) + g.PadLeft) * g.C);
            if (g.C == 1)
            {
                Layout.CopyRun(src, dst + (h * g.W), g.W);
            }
            else
            {
                Layout.Transpose(src, g.W, g.C, g.C, dst + (h * g.W), g.H * g.W);
            }
        }
    }
}
