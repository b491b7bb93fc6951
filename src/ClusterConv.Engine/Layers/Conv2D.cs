using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ClusterConv.Engine.Kernels;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Layers;

/// <summary>
/// 2-D convolution with a fused activation, as Keras' Conv2D. Kernel (K,C,R,S), bias (K).
/// <para>
/// Strategy, chosen by measurement (bench/, `quick`): per-sample im2col + the packed GEMM, in NCHW.
/// For each sample, its im2col matrix col (C·R·S, P·Q) is built in a per-thread buffer that stays
/// in L2, and the products read the kernel (K, C·R·S) in place:
///   forward         pre (K, P·Q)        = W · col + bias            (written straight into NCHW)
///   weight gradient dWᵀ (C·R·S, K)     += col · dPreᵀ               (per chunk of samples)
///   input gradient  dCol (C·R·S, P·Q)   = Wᵀ · dPre, then col2im    (straight into NCHW)
/// Samples run in parallel (one part per sample; one per chunk for the weight gradient). Against
/// the first version, which ran one whole-batch GEMM on a materialised NHWC im2col matrix, this
/// drops the 9 MB im2col write and the NCHW/NHWC transposes of input, output and gradients: on
/// keras-cnn at batch 64 it cut conv2 from 4.3 / 8.7 ms (forward / backward, 1 thread) to the
/// numbers in the README. The activation runs on the sample while it is in cache.
/// </para>
/// <para>
/// Determinism: samples are independent except in the weight gradient, which is accumulated over
/// consecutive samples inside a chunk (a size fixed by the batch size, <see cref="ChunkSamples"/>)
/// and the chunk sums are then added in chunk order; the bias gradient sums per-sample sums in
/// sample order. Nothing depends on the thread count.
/// </para>
/// </summary>
public sealed unsafe class Conv2D : Layer
{
    /// <summary>Floats readable before and after dCol for <see cref="Col2ImDense"/>.</summary>
    internal const int ColumnGuard = 16;

    /// <summary>Weight-gradient chunks a batch is split into, at most (each a parallel part).</summary>
    internal const int MaxChunks = 8;

    [ThreadStatic]
    private static AlignedBuffer? columnScratch;

    [ThreadStatic]
    private static AlignedBuffer? gradientScratch;

    private readonly AlignedBuffer preActivation = new();  // pre (N, K, P, Q); unused for linear and relu
    private readonly AlignedBuffer chunkGradients = new(); // dWᵀ per chunk (chunks, C·R·S, K)
    private readonly AlignedBuffer biasPartials = new();   // (N, K): per-sample bias gradient
    private readonly Action<int> forwardPart;
    private readonly Action<int> backwardPart;
    private readonly Action<int> reducePart;
    private Parameter[] parameters = [];
    private Parameter? kernel;
    private Parameter? bias;
    private ConvProblem geometry;
    private int chunkSamplesOverride;
    private int forwardSamples; // the most samples a Forward has covered
    private int[] positiveCounts = []; // (N, K): outputs > 0 per sample and filter, from the last Forward
    private int countedSamples;

    // StepProfile phase names, fixed per layer so probes do not allocate.
    private readonly string phaseIm2Col;
    private readonly string phaseGemm;
    private readonly string phaseActivation;
    private readonly string phaseActivationBackward;
    private readonly string phaseBiasGradient;
    private readonly string phaseIm2ColBackward;
    private readonly string phaseGemmWeight;
    private readonly string phaseGemmInput;
    private readonly string phaseCol2Im;
    private readonly string phaseReduce;
    private readonly string phasePoolBackward;
    private readonly string phasePoolForward;
    private readonly string phaseCount;

    // The call in progress, read by the parallel part bodies.
    private float* callInput;
    private float* callOutput;
    private float* callDOutput;
    private float* callDInput;
    private float* callKernel;
    private float* callBias;
    private int callBatch;
    private int callChunkSamples;
    private int callChunks;
    private Pool2D? callPool; // BackwardThroughMaxPool: callDOutput is the pooled gradient; ForwardThroughMaxPool: pools into callPooled
    private float* callPooled;
    private int* callCodes; // the pooling's window codes (fused forward writes, fused backward reads when present)

    public Conv2D(Conv2DSpec spec)
        : base((spec ?? throw new ArgumentNullException(nameof(spec))).Name)
    {
        Spec = spec;
        forwardPart = ForwardSample;
        backwardPart = BackwardChunk;
        reducePart = ReduceChunkGradients;
        phaseIm2Col = $"{Name} forward im2col";
        phaseGemm = $"{Name} forward gemm";
        phaseActivation = $"{Name} forward activation";
        phaseActivationBackward = $"{Name} backward activation";
        phaseBiasGradient = $"{Name} backward bias sums";
        phaseIm2ColBackward = $"{Name} backward im2col";
        phaseGemmWeight = $"{Name} backward gemm dW";
        phaseGemmInput = $"{Name} backward gemm dX";
        phaseCol2Im = $"{Name} backward col2im";
        phaseReduce = $"{Name} backward reduce";
        phasePoolBackward = $"{Name} backward max pooling (fused)";
        phasePoolForward = $"{Name} forward max pooling (fused)";
        phaseCount = $"{Name} forward positive counts";
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

    /// <summary>
    /// Set by <see cref="Model"/> when this is a relu layer followed by a max pooling that applies
    /// the relu derivative in its own backward (<see cref="Pool2D.MasksByPositiveMax"/>): dOutput
    /// then already is the pre-activation gradient, and the relu backward pass over it is skipped.
    /// </summary>
    internal bool GradientArrivesMasked { get; set; }

    /// <summary>
    /// Samples per weight-gradient chunk for a batch of <paramref name="batch"/>: ceil(batch / 8),
    /// a function of the batch size only. Settable (to a positive value) for tests.
    /// </summary>
    internal int ChunkSamples(int batch) => chunkSamplesOverride > 0 ? chunkSamplesOverride : Math.Max(1, (batch + MaxChunks - 1) / MaxChunks);

    internal void OverrideChunkSamples(int samples) => chunkSamplesOverride = samples;

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

    // output (N,K,P,Q) <- activation(input (N,C,H,W) convolved with kernel (K,C,R,S) + bias (K))
    public override void Forward(Tensor output, Tensor input, StepContext context) => ForwardCore(output, input, context, null, null);

    /// <summary>
    /// This layer's forward and that of the 2x2 max pooling after it in one pass: each sample is
    /// pooled into <paramref name="pooled"/> right after its activation, while it is in cache. The
    /// output is written as by <see cref="Forward"/> (the backward and the statistics read it).
    /// </summary>
    internal void ForwardThroughMaxPool(Tensor output, Tensor pooled, Tensor input, Pool2D pool, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(pooled);
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentNullException.ThrowIfNull(input);
        if (!pool.CanMaskByPositiveMax || pool.InputShape != OutputShape || pooled.Shape != pool.OutputShape || pooled.N != input.N)
        {
            throw new InvalidOperationException($"layer '{Name}': '{pool.Name}' is not a 2x2 max pooling of this layer's output");
        }

        ForwardCore(output, input, context, pool, pooled);
    }

    private void ForwardCore(Tensor output, Tensor input, StepContext context, Pool2D? pool, Tensor? pooled)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(context);
        CheckTensor(input, InputShape, nameof(input), input.N);
        CheckTensor(output, OutputShape, nameof(output), input.N);
        var n = input.N;
        if (KeepsPreActivation)
        {
            preActivation.Ensure((long)n * OutputShape.Size);
        }

        forwardSamples = Math.Max(forwardSamples, n);
        if (positiveCounts.Length < n * geometry.K)
        {
            positiveCounts = new int[n * geometry.K];
        }

        countedSamples = 0;

        fixed (float* pInput = input.Data)
        fixed (float* pOutput = output.Data)
        fixed (float* pKernel = Kernel.Value)
        fixed (float* pBias = bias?.Value)
        fixed (float* pPooled = pooled?.Data)
        {
            callInput = pInput;
            callOutput = pOutput;
            callKernel = pKernel;
            callBias = pBias;
            callBatch = n;
            callPool = pool;
            callPooled = pPooled;
            callCodes = pool is null ? null : pool.PrepareCodes(n);
            context.Compute.For(n, forwardPart);
            countedSamples = n;
            ClearCall();
        }
    }

    /// <summary>
    /// Per sample and filter, how many outputs of the last Forward are &gt; 0 ((N, K), sample-major),
    /// or empty when no Forward completed. Counted while each sample is in cache, so the per-filter
    /// statistics need not scan the output again (FilterStatisticsCollector).
    /// </summary>
    internal ReadOnlySpan<int> PositiveCounts => positiveCounts.AsSpan(0, countedSamples * geometry.K);

    // dInput (N,C,H,W), dKernel (K,C,R,S), dBias (K) <- dOutput (N,K,P,Q), with input and output of the last Forward
    public override void Backward(Tensor dInput, Tensor dOutput, Tensor input, Tensor output, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(dOutput);
        CheckTensor(dOutput, OutputShape, nameof(dOutput), dOutput.N);
        BackwardCore(dInput, dOutput, input, output, context, null);
    }

    /// <summary>
    /// This layer's backward and that of the 2x2 max pooling after it (which has
    /// <see cref="Pool2D.MasksByPositiveMax"/> set) in one pass: each sample's pre-activation
    /// gradient is routed from <paramref name="dPooled"/> (N, K, P/2, Q/2) straight into a per-thread
    /// buffer that the bias sums and both GEMMs then read from cache, instead of the pooling writing
    /// (N, K, P, Q) to memory and this layer reading it back. The values are those of the two
    /// backward calls (tested bitwise); the pooling's own dInput is not written.
    /// </summary>
    internal void BackwardThroughMaxPool(Tensor dInput, Tensor dPooled, Tensor input, Tensor output, Pool2D pool, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(dPooled);
        ArgumentNullException.ThrowIfNull(pool);
        if (Activation.Kind != ActivationKind.Relu || !pool.MasksByPositiveMax || pool.InputShape != OutputShape || dPooled.Shape != pool.OutputShape)
        {
            throw new InvalidOperationException($"layer '{Name}': '{pool.Name}' is not a masking 2x2 max pooling of this relu layer's output");
        }

        BackwardCore(dInput, dPooled, input, output, context, pool);
    }

    private void BackwardCore(Tensor dInput, Tensor dOutput, Tensor input, Tensor output, StepContext context, Pool2D? pool)
    {
        ArgumentNullException.ThrowIfNull(dInput);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(context);
        var n = dOutput.N;
        CheckTensor(output, OutputShape, nameof(output), n);
        CheckTensor(input, InputShape, nameof(input), n);
        if (ComputeInputGradient)
        {
            CheckTensor(dInput, InputShape, nameof(dInput), n);
        }

        if (Activation.Kind != ActivationKind.Linear && n > forwardSamples)
        {
            throw new InvalidOperationException($"layer '{Name}': Backward over {n} samples without a Forward over them");
        }

        if (n == 0)
        {
            foreach (var parameter in parameters)
            {
                parameter.Gradient.Clear();
            }

            return;
        }

        var g = geometry;
        var chunkSamples = ChunkSamples(n);
        var chunks = (n + chunkSamples - 1) / chunkSamples;
        chunkGradients.Ensure((long)chunks * g.Crs * g.K);
        biasPartials.Ensure((long)n * g.K);
        fixed (float* pInput = input.Data)
        fixed (float* pOutput = output.Data)
        fixed (float* pDOutput = dOutput.Data)
        fixed (float* pDInput = dInput.Data)
        fixed (float* pKernel = Kernel.Value)
        {
            callInput = pInput;
            callOutput = pOutput;
            callDOutput = pDOutput;
            callDInput = pDInput;
            callKernel = pKernel;
            callBatch = n;
            callChunkSamples = chunkSamples;
            callChunks = chunks;
            callPool = pool;
            callCodes = pool is null ? null : pool.CodesFor(n);
            context.Compute.For(chunks, backwardPart);

            // dKernel (K, C·R·S) <- sum over chunks, in chunk order, of dWᵀ (C·R·S, K); parts over rows.
            var t = StepProfile.Start();
            context.Compute.For(ReduceParts(), reducePart);
            if (bias is not null)
            {
                SumBiasPartials(n, bias.Gradient);
            }

            StepProfile.Lap(phaseReduce, t);

            ClearCall();
        }
    }

    protected override SampleShape ComputeOutputShape(SampleShape input) => Spec.OutputShape(input);

    protected override void AllocateParameters()
    {
        geometry = ConvProblem.Create(Spec, InputShape, 0);
        var g = geometry;
        kernel = new Parameter("kernel", [g.K, g.C, g.R, g.S]);
        bias = Spec.UseBias ? new Parameter("bias", [g.K]) : null;
        parameters = bias is null ? [kernel] : [kernel, bias];
    }

    private Parameter Kernel => kernel ?? throw new InvalidOperationException($"layer '{Name}' is not built");

    // relu needs no pre-activation: relu(x) > 0 exactly when x > 0 (NaN included, both false), so
    // its backward reads the output and the GEMM writes into the output, saving a (N, K, P, Q) buffer.
    private bool KeepsPreActivation => Activation.Kind is not (ActivationKind.Linear or ActivationKind.Relu);

    private static void CheckTensor(Tensor tensor, SampleShape shape, string name, int n)
    {
        if (tensor.Shape != shape || tensor.N != n)
        {
            throw new ArgumentException($"expected ({n}, {shape.C}, {shape.H}, {shape.W}), got ({tensor.N}, {tensor.C}, {tensor.H}, {tensor.W})", name);
        }
    }

    private void ClearCall()
    {
        callInput = null;
        callOutput = null;
        callDOutput = null;
        callDInput = null;
        callKernel = null;
        callBias = null;
        callPool = null;
        callPooled = null;
        callCodes = null;
    }

    // output sample (K, P·Q) <- activation(W (K, C·R·S) · col (C·R·S, P·Q) + bias)
    private void ForwardSample(int n)
    {
        var g = geometry;
        var pq = g.P * g.Q;
        var length = g.K * pq;
        var col = (columnScratch ??= new AlignedBuffer()).Ensure((long)g.Crs * pq);
        var t = StepProfile.Start();
        Im2Col(callInput + ((long)n * g.C * g.H * g.W), col);
        t = StepProfile.Lap(phaseIm2Col, t);
        var output = callOutput + ((long)n * length);
        var pre = KeepsPreActivation ? preActivation.Pointer + ((long)n * length) : output;
        Gemm.ComputeSerial(GemmTranspose.None, g.K, pq, g.Crs, callKernel, g.Crs, col, pq, pre, pq, rowBias: callBias);
        t = StepProfile.Lap(phaseGemm, t);
        var counts = positiveCounts.AsSpan(n * g.K, g.K);
        if (Activation.Kind == ActivationKind.Relu && pre == output && Avx.IsSupported)
        {
            // relu in place and the positive count of each filter in the same pass
            for (var k = 0; k < g.K; k++)
            {
                counts[k] = ReluInPlaceCounting(output + (k * pq), pq);
            }

            t = StepProfile.Lap(phaseActivation, t);
        }
        else
        {
            if (Activation.Kind != ActivationKind.Linear)
            {
                ActivationFunctions.Forward(Activation, new Span<float>(output, length), new ReadOnlySpan<float>(pre, length));
                t = StepProfile.Lap(phaseActivation, t);
            }

            for (var k = 0; k < g.K; k++)
            {
                counts[k] = (int)Statistics.FilterKernels.CountPositive(new ReadOnlySpan<float>(output + (k * pq), pq));
            }

            t = StepProfile.Lap(phaseCount, t);
        }
        if (callPool is not null)
        {
            var pooledSize = (long)n * callPool.OutputShape.Size;
            callPool.ForwardSample(callPooled + pooledSize, output, callCodes + pooledSize);
            StepProfile.Lap(phasePoolForward, t);
        }
    }

    // For the samples of one chunk, in order: dPre, its bias sums, dWᵀ (C·R·S, K) += col · dPreᵀ, dInput.
    private void BackwardChunk(int chunk)
    {
        var g = geometry;
        var pq = g.P * g.Q;
        var length = g.K * pq;
        var crs = g.Crs;
        var col = (columnScratch ??= new AlignedBuffer()).Ensure((long)crs * pq);
        // [guard][dCol][guard][dPre]: Col2ImDense reads up to 16 floats either side of dCol.
        var scratch = (gradientScratch ??= new AlignedBuffer()).Ensure(((long)crs * pq) + length + (2 * ColumnGuard));
        var dCol = scratch + ColumnGuard;
        var dPreBuffer = dCol + ((long)crs * pq) + ColumnGuard;
        var dWeight = chunkGradients.Pointer + ((long)chunk * crs * g.K);
        var first = chunk * callChunkSamples;
        var last = Math.Min(callBatch, first + callChunkSamples);
        var t = StepProfile.Start();
        for (var n = first; n < last; n++)
        {
            // dPre (K, P·Q) <- dOutput through the activation
            var dOutput = callDOutput + ((long)n * length);
            var dPre = dOutput;
            if (callPool is not null)
            {
                // the pooling's masked backward: dPre already includes the relu derivative
                dPre = dPreBuffer;
                var pooledSize = (long)n * callPool.OutputShape.Size;
                if (callCodes is not null)
                {
                    callPool.BackwardSampleFromCodes(dPre, callDOutput + pooledSize, callCodes + pooledSize);
                }
                else
                {
                    callPool.BackwardSample(dPre, callDOutput + pooledSize, callOutput + ((long)n * length));
                }

                t = StepProfile.Lap(phasePoolBackward, t);
            }
            else if (Activation.Kind != ActivationKind.Linear && !GradientArrivesMasked)
            {
                dPre = dPreBuffer;
                ActivationFunctions.Backward(
                    Activation,
                    new Span<float>(dPre, length),
                    new ReadOnlySpan<float>(dOutput, length),
                    new ReadOnlySpan<float>((KeepsPreActivation ? preActivation.Pointer : callOutput) + ((long)n * length), length),
                    new ReadOnlySpan<float>(callOutput + ((long)n * length), length));
                t = StepProfile.Lap(phaseActivationBackward, t);
            }

            if (bias is not null)
            {
                var partial = biasPartials.Pointer + ((long)n * g.K);
                for (var k = 0; k < g.K; k++)
                {
                    partial[k] = Layout.Sum(dPre + (k * pq), pq);
                }

                t = StepProfile.Lap(phaseBiasGradient, t);
            }

            // dWᵀ (C·R·S, K) [+]= col (C·R·S, P·Q) · dPre (K, P·Q)ᵀ
            Im2Col(callInput + ((long)n * g.C * g.H * g.W), col);
            t = StepProfile.Lap(phaseIm2ColBackward, t);
            Gemm.ComputeSerial(GemmTranspose.B, crs, g.K, pq, col, pq, dPre, pq, dWeight, g.K, accumulate: n > first);
            t = StepProfile.Lap(phaseGemmWeight, t);

            if (ComputeInputGradient)
            {
                // dCol (C·R·S, P·Q) = W (K, C·R·S)ᵀ · dPre (K, P·Q), then col2im into dInput.
                Gemm.ComputeSerial(GemmTranspose.A, crs, pq, g.K, callKernel, crs, dPre, pq, dCol, pq);
                t = StepProfile.Lap(phaseGemmInput, t);
                Col2Im(dCol, callDInput + ((long)n * g.C * g.H * g.W));
                t = StepProfile.Lap(phaseCol2Im, t);
            }
        }
    }

    // Rows [i0, i1) of dWᵀ (C·R·S, K): chunk sums added into chunk 0's rows in chunk order, then
    // transposed into the kernel gradient (K, C·R·S).
    private void ReduceChunkGradients(int part)
    {
        var g = geometry;
        var crs = g.Crs;
        var (i0, i1) = ComputePool.Range(crs, ReduceParts(), part);
        var length = (i1 - i0) * g.K;
        var sums = chunkGradients.Pointer + ((nint)i0 * g.K);
        var chunkStride = (nint)crs * g.K;
        for (var c = 1; c < callChunks; c++)
        {
            Layout.AddRun(sums + (c * chunkStride), sums, length);
        }

        fixed (float* dKernel = Kernel.Gradient)
        {
            Layout.Transpose(sums, i1 - i0, g.K, g.K, dKernel + i0, crs);
        }
    }

    private int ReduceParts() => Math.Clamp(geometry.Crs * geometry.K / 16384, 1, 8);

    // dBias (K) <- sum over samples, in sample order, of the per-sample sums
    private void SumBiasPartials(int n, Span<float> dBias)
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

    // x <- relu(x) = x > 0 ? x : +0 (ActivationFunctions' operator: x & (x > 0)); returns how many are > 0.
    internal static int ReluInPlaceCounting(float* x, int length)
    {
        var count = 0;
        var i = 0;
        for (; i + 8 <= length; i += 8)
        {
            var v = Vector256.Load(x + i);
            var positive = Vector256.GreaterThan(v, Vector256<float>.Zero);
            (v & positive).Store(x + i);
            count += System.Numerics.BitOperations.PopCount(positive.ExtractMostSignificantBits());
        }

        for (; i < length; i++)
        {
            var positive = x[i] > 0f;
            x[i] = positive ? x[i] : 0f;
            count += positive ? 1 : 0;
        }

        return count;
    }

    // Every window inside the input at stride 1 (valid, or "same" with a 1x1 kernel): a window row
    // is then a run of Q consecutive input values, and an input row gets contributions from runs only.
    private bool DenseWindows
    {
        get
        {
            var g = geometry;
            return Avx.IsSupported && g.StrideH == 1 && g.StrideW == 1 && g.PadTop == 0 && g.PadLeft == 0 && g.P + g.R - 1 <= g.H && g.Q + g.S - 1 <= g.W;
        }
    }

    // col (C·R·S, P·Q) <- input sample (C, H, W)
    internal void Im2Col(float* input, float* col)
    {
        if (DenseWindows && geometry.Q >= 8)
        {
            Im2ColDense(input, col);
        }
        else
        {
            Im2ColGeneral(input, col);
        }
    }

    // dInput sample (C, H, W) <- dCol (C·R·S, P·Q)
    internal void Col2Im(float* dCol, float* dInput)
    {
        if (DenseWindows && geometry.W is >= 8 and <= 16)
        {
            Col2ImDense(dCol, dInput);
        }
        else
        {
            Col2ImGeneral(dCol, dInput);
        }
    }

    // Im2Col for dense windows and Q >= 8: each run of Q is vector copies, the last one ending at the
    // run's end (two for Q <= 16), with no per-row set-up; the general path spent more on set-up than on copying
    // for 11-wide rows (conv2 of keras-cnn).
    internal void Im2ColDense(float* input, float* col)
    {
        var g = geometry;
        var (w, q, tail) = ((nint)g.W, (nint)g.Q, (nint)g.Q - 8);
        var plane = (nint)g.H * g.W;
        var dst = col;
        for (var c = 0; c < g.C; c++)
        {
            for (var r = 0; r < g.R; r++)
            {
                for (var s = 0; s < g.S; s++)
                {
                    var src = input + (c * plane) + (r * w) + s;
                    for (var p = 0; p < g.P; p++, src += w, dst += q)
                    {
                        for (nint j = 0; j < tail; j += 8)
                        {
                            Vector256.Load(src + j).Store(dst + j);
                        }

                        Vector256.Load(src + tail).Store(dst + tail);
                    }
                }
            }
        }
    }

    // Col2Im for dense windows and 8 <= W <= 16: each input row is summed in two registers over the
    // (r, s) runs that cover it, in the general path's order (r, then s, from +0), and stored once:
    // no clearing and no read-modify-write of memory (the general path's adds of runs shifted by one
    // column each waited on the previous store). Loads are shifted by s and masked to the run, so
    // they read up to ColumnGuard floats before and after dCol (never used). A row's second vector
    // spills into the next row, which is stored after it; only the sample's last row is masked
    // (masked stores are slow on AMD).
    internal void Col2ImDense(float* dCol, float* dInput)
    {
        var g = geometry;
        var (w, q) = (g.W, g.Q);
        var pq = (nint)g.P * g.Q;
        var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        var eight = Vector256.Create(8);
        Span<Vector256<float>> masks = stackalloc Vector256<float>[2 * g.S];
        for (var s = 0; s < g.S; s++)
        {
            // lane w of the row gets run element w - s when s <= w < s + Q
            var low = Vector256.Create(s);
            var high = Vector256.Create(s + q);
            masks[2 * s] = (Vector256.GreaterThanOrEqual(lanes, low) & Vector256.LessThan(lanes, high)).AsSingle();
            masks[(2 * s) + 1] = (Vector256.GreaterThanOrEqual(lanes + eight, low) & Vector256.LessThan(lanes + eight, high)).AsSingle();
        }

        var store1 = Vector256.LessThan(lanes + eight, Vector256.Create(w)).AsSingle();
        var dst = dInput;
        for (var c = 0; c < g.C; c++)
        {
            for (var h = 0; h < g.H; h++, dst += w)
            {
                var acc0 = Vector256<float>.Zero;
                var acc1 = Vector256<float>.Zero;
                for (var r = 0; r < g.R; r++)
                {
                    var p = h - r;
                    if ((uint)p >= (uint)g.P)
                    {
                        continue;
                    }

                    var run = dCol + ((((c * g.R) + r) * g.S) * pq) + (p * q);
                    for (var s = 0; s < g.S; s++, run += pq)
                    {
                        acc0 += Vector256.Load(run - s) & masks[2 * s];
                        acc1 += Vector256.Load(run - s + 8) & masks[(2 * s) + 1];
                    }
                }

                acc0.Store(dst);
                if (c < g.C - 1 || h < g.H - 1)
                {
                    acc1.Store(dst + 8);
                }
                else
                {
                    Avx.MaskStore(dst + 8, store1, acc1);
                }
            }
        }
    }

    // col (C·R·S, P·Q) <- input sample (C, H, W), zero where the window leaves the input: any shape,
    // and the reference of the dense path.
    internal void Im2ColGeneral(float* input, float* col)
    {
        var g = geometry;
        var pq = (nint)g.P * g.Q;
        for (var c = 0; c < g.C; c++)
        {
            for (var r = 0; r < g.R; r++)
            {
                for (var s = 0; s < g.S; s++)
                {
                    Im2ColRow(input, c, r, s, col + ((((c * g.R) + r) * g.S) + s) * pq);
                }
            }
        }
    }

    // row (P·Q) of col for window offset (c, r, s) <- input sample (C, H, W)
    private void Im2ColRow(float* input, int c, int r, int s, float* row)
    {
        var g = geometry;
        var pq = g.P * g.Q;
        var rowStep = (nint)g.StrideH * g.W;
        var (p0, p1) = ValidRows(r);
        var (q0, q1) = ValidColumns(s);
        if (p0 >= p1 || q0 >= q1)
        {
            new Span<float>(row, pq).Clear();
            return;
        }

        new Span<float>(row, p0 * g.Q).Clear();
        new Span<float>(row + (p1 * g.Q), (g.P - p1) * g.Q).Clear();
        var width = q1 - q0;
        var src = input + ((((c * g.H) + (p0 * g.StrideH) + r - g.PadTop) * (nint)g.W) + (q0 * g.StrideW) + s - g.PadLeft);
        var dst = row + (p0 * g.Q) + q0;
        if (g.StrideW == 1 && width == g.Q)
        {
            for (var p = p0; p < p1; p++, src += rowStep, dst += g.Q)
            {
                Layout.CopyRun(src, dst, width);
            }

            return;
        }

        for (var p = p0; p < p1; p++, src += rowStep, dst += g.Q)
        {
            new Span<float>(dst - q0, q0).Clear();
            if (g.StrideW == 1)
            {
                Layout.CopyRun(src, dst, width);
            }
            else
            {
                for (var q = 0; q < width; q++)
                {
                    dst[q] = src[q * g.StrideW];
                }
            }

            new Span<float>(dst + width, g.Q - q1).Clear();
        }
    }

    // dInput sample (C, H, W) <- sum of dCol (C·R·S, P·Q) over the windows covering each pixel: any
    // shape, and the reference of the dense path.
    internal void Col2ImGeneral(float* dCol, float* dInput)
    {
        var g = geometry;
        var pq = g.P * g.Q;
        var rowStep = (nint)g.StrideH * g.W;
        new Span<float>(dInput, g.C * g.H * g.W).Clear();
        for (var c = 0; c < g.C; c++)
        {
            for (var r = 0; r < g.R; r++)
            {
                var (p0, p1) = ValidRows(r);
                for (var s = 0; s < g.S; s++)
                {
                    var (q0, q1) = ValidColumns(s);
                    if (p0 >= p1 || q0 >= q1)
                    {
                        continue;
                    }

                    var width = q1 - q0;
                    var src = dCol + ((((c * g.R) + r) * g.S) + s) * (nint)pq + (p0 * g.Q) + q0;
                    var dst = dInput + ((((c * g.H) + (p0 * g.StrideH) + r - g.PadTop) * (nint)g.W) + (q0 * g.StrideW) + s - g.PadLeft);
                    for (var p = p0; p < p1; p++, src += g.Q, dst += rowStep)
                    {
                        if (g.StrideW == 1)
                        {
                            Layout.AddRun(src, dst, width);
                        }
                        else
                        {
                            for (var q = 0; q < width; q++)
                            {
                                dst[q * g.StrideW] += src[q];
                            }
                        }
                    }
                }
            }
        }
    }

    // Output rows [p0, p1) whose window row r falls inside the input: 0 <= p·strideH + r - padTop < H.
    private (int P0, int P1) ValidRows(int r)
    {
        var g = geometry;
        var offset = r - g.PadTop;
        var p0 = offset >= 0 ? 0 : (-offset + g.StrideH - 1) / g.StrideH;
        var p1 = g.H - 1 - offset < 0 ? 0 : Math.Min(g.P, ((g.H - 1 - offset) / g.StrideH) + 1);
        return (p0, Math.Max(p0, p1));
    }

    // Output columns [q0, q1) whose window column s falls inside the input: 0 <= q·strideW + s - padLeft < W.
    private (int Q0, int Q1) ValidColumns(int s)
    {
        var g = geometry;
        var offset = s - g.PadLeft;
        var q0 = offset >= 0 ? 0 : (-offset + g.StrideW - 1) / g.StrideW;
        var q1 = g.W - 1 - offset < 0 ? 0 : Math.Min(g.Q, ((g.W - 1 - offset) / g.StrideW) + 1);
        return (q0, Math.Max(q0, q1));
    }
}
