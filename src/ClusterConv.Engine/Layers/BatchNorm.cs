using System.Runtime.Intrinsics;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Layers;

/// <summary>
/// BatchNormalization per channel over (N,H,W); for vectors (C,1,1) that is per feature over N.
/// y = (x - mean) / sqrt(var + epsilon) * gamma + beta.
/// <para>
/// Training uses the batch mean and the biased batch variance (divide by N·H·W) and updates
/// moving = moving·momentum + batch·(1 - momentum) with that same biased variance, as Keras 3 does
/// (keras/src/layers/normalization/batch_normalization.py; tf.keras 2's fused kernel instead fed
/// the Bessel-corrected variance into the moving average: the difference is a factor M/(M-1)).
/// Inference uses the moving statistics. Moving statistics change in Forward, per worker: a
/// data-parallel trainer must synchronize (e.g. average) them itself.
/// </para>
/// <para>
/// Parameters in Keras order: gamma (if scale), beta (if center), moving_mean, moving_variance (not
/// trainable). Backward uses the statistics of the last Forward (batch statistics in training:
/// the full batch-norm gradient through mean and variance; moving statistics at inference).
/// </para>
/// Parallel over channels; each channel's sums run in a fixed order (Elementwise.Sum per plane,
/// planes added in sample order in double), so results do not depend on the thread count.
/// </summary>
public sealed class BatchNorm : Layer
{
    private Parameter? gamma;
    private Parameter? beta;
    private Parameter movingMean = null!;
    private Parameter movingVariance = null!;
    private Parameter[] parameters = [];

    // Per channel, the statistics the last Forward normalized with.
    private float[] usedMean = [];
    private float[] usedInvStd = [];

    public BatchNorm(BatchNormSpec spec)
        : base((spec ?? throw new ArgumentNullException(nameof(spec))).Name) => Spec = spec;

    public BatchNormSpec Spec { get; }

    public override string TypeName => Spec.TypeName;

    public override IReadOnlyList<Parameter> Parameters => parameters;

    public Parameter MovingMean => movingMean;

    public Parameter MovingVariance => movingVariance;

    /// <summary>gamma = 1, beta = 0, moving_mean = 0, moving_variance = 1, as Keras initializes them.</summary>
    public override void Initialize(ref DeterministicRandom random)
    {
        gamma?.Value.AsSpan().Fill(1f);
        beta?.Value.AsSpan().Clear();
        movingMean.Value.AsSpan().Clear();
        movingVariance.Value.AsSpan().Fill(1f);
    }

    // input (N,C,H,W) -> output (N,C,H,W); in training also updates moving_mean and moving_variance (C).
    public override void Forward(Tensor output, Tensor input, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        LayerGuard.Forward(this, output, input);
        var n = input.N;
        var channels = InputShape.C;
        var plane = InputShape.H * InputShape.W;
        if (n == 0)
        {
            return;
        }

        var training = context.Training;
        var count = (double)n * plane;
        var momentum = Spec.Momentum;
        var epsilon = Spec.Epsilon;
        var x = input.Data;
        var y = output.Data;
        var parts = WorkSplit.Parts(channels, (long)n * plane);
        context.Compute.For(parts, part =>
        {
            var (start, end) = ComputePool.Range(channels, parts, part);
            for (var c = start; c < end; c++)
            {
                float mean, variance;
                if (training)
                {
                    double sum = 0;
                    for (var s = 0; s < n; s++)
                    {
                        sum += Elementwise.Sum(x.AsSpan(((s * channels) + c) * plane, plane));
                    }

                    mean = (float)(sum / count);
                    double squares = 0;
                    for (var s = 0; s < n; s++)
                    {
                        squares += Elementwise.SumSquaredDeviation(x.AsSpan(((s * channels) + c) * plane, plane), mean);
                    }

                    variance = (float)(squares / count);
                    movingMean.Value[c] = (movingMean.Value[c] * momentum) + (mean * (1f - momentum));
                    movingVariance.Value[c] = (movingVariance.Value[c] * momentum) + (variance * (1f - momentum));
                }
                else
                {
                    mean = movingMean.Value[c];
                    variance = movingVariance.Value[c];
                }

                var invStd = (float)(1.0 / Math.Sqrt((double)variance + epsilon));
                usedMean[c] = mean;
                usedInvStd[c] = invStd;
                var op = new Normalize(mean, (gamma?.Value[c] ?? 1f) * invStd, beta?.Value[c] ?? 0f);
                for (var s = 0; s < n; s++)
                {
                    var offset = ((s * channels) + c) * plane;
                    Elementwise.Map(op, y.AsSpan(offset, plane), x.AsSpan(offset, plane));
                }
            }
        });
    }

    // dInput (N,C,H,W), dGamma (C), dBeta (C) <- dOutput (N,C,H,W), input (N,C,H,W)
    // With M = N·H·W, xc = x - mean, k = gamma·invStd:
    //   dBeta = Σ dy, dGamma = invStd · Σ dy·xc
    //   training:  dx = k·dy - k/M · (dBeta + invStd·xc·dGamma)   (mean and variance depend on x)
    //   inference: dx = k·dy
    public override void Backward(Tensor dInput, Tensor dOutput, Tensor input, Tensor output, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        LayerGuard.Backward(this, dInput, dOutput, input, output);
        var n = input.N;
        var channels = InputShape.C;
        var plane = InputShape.H * InputShape.W;
        var training = context.Training;
        var count = (double)n * plane;
        var x = input.Data;
        var dy = dOutput.Data;
        var dx = dInput.Data;
        var parts = WorkSplit.Parts(channels, (long)n * plane);
        context.Compute.For(parts, part =>
        {
            var (start, end) = ComputePool.Range(channels, parts, part);
            for (var c = start; c < end; c++)
            {
                var mean = usedMean[c];
                var invStd = usedInvStd[c];
                double sumDy = 0, sumDyXc = 0;
                for (var s = 0; s < n; s++)
                {
                    var offset = ((s * channels) + c) * plane;
                    var (a, b) = Elementwise.SumAndDot(dy.AsSpan(offset, plane), x.AsSpan(offset, plane), mean);
                    sumDy += a;
                    sumDyXc += b;
                }

                var dGamma = sumDyXc * invStd;
                if (gamma is not null)
                {
                    gamma.Gradient[c] = (float)dGamma;
                }

                if (beta is not null)
                {
                    beta.Gradient[c] = (float)sumDy;
                }

                var k = (double)(gamma?.Value[c] ?? 1f) * invStd;
                var op = training
                    ? new NormalizeBackward(mean, (float)k, (float)(-k * invStd * dGamma / count), (float)(-k * sumDy / count))
                    : new NormalizeBackward(mean, (float)k, 0f, 0f);
                for (var s = 0; s < n; s++)
                {
                    var offset = ((s * channels) + c) * plane;
                    Elementwise.Map(op, dx.AsSpan(offset, plane), dy.AsSpan(offset, plane), x.AsSpan(offset, plane));
                }
            }
        });
    }

    protected override SampleShape ComputeOutputShape(SampleShape input) => Spec.OutputShape(input);

    protected override void AllocateParameters()
    {
        var c = InputShape.C;
        var list = new List<Parameter>(4);
        gamma = Spec.Scale ? new Parameter("gamma", [c]) : null;
        beta = Spec.Center ? new Parameter("beta", [c]) : null;
        movingMean = new Parameter("moving_mean", [c], trainable: false);
        movingVariance = new Parameter("moving_variance", [c], trainable: false);
        if (gamma is not null)
        {
            list.Add(gamma);
        }

        if (beta is not null)
        {
            list.Add(beta);
        }

        list.Add(movingMean);
        list.Add(movingVariance);
        parameters = [.. list];
        usedMean = new float[c];
        usedInvStd = new float[c];
        var unused = default(DeterministicRandom);
        Initialize(ref unused);
    }

    // y = (x - mean)·scale + shift, scale = gamma·invStd, shift = beta
    private readonly struct Normalize(float mean, float scale, float shift) : Elementwise.IUnary
    {
        public float Invoke(float x) => ((x - mean) * scale) + shift;

        public Vector128<float> Invoke(Vector128<float> x) =>
            ((x - Vector128.Create(mean)) * Vector128.Create(scale)) + Vector128.Create(shift);

        public Vector256<float> Invoke(Vector256<float> x) =>
            ((x - Vector256.Create(mean)) * Vector256.Create(scale)) + Vector256.Create(shift);
    }

    // (dy, x) -> dx = k·dy + (slope·(x - mean) + offset)
    private readonly struct NormalizeBackward(float mean, float k, float slope, float offset) : Elementwise.IBinary
    {
        public float Invoke(float dy, float x) => (k * dy) + ((slope * (x - mean)) + offset);

        public Vector128<float> Invoke(Vector128<float> dy, Vector128<float> x) =>
            (Vector128.Create(k) * dy) + ((Vector128.Create(slope) * (x - Vector128.Create(mean))) + Vector128.Create(offset));

        public Vector256<float> Invoke(Vector256<float> dy, Vector256<float> x) =>
            (Vector256.Create(k) * dy) + ((Vector256.Create(slope) * (x - Vector256.Create(mean))) + Vector256.Create(offset));
    }
}
