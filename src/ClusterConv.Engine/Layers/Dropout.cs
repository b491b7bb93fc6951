using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Layers;

/// <summary>
/// Inverted dropout (Keras): in training each element is kept when a uniform draw u in [0, 1)
/// satisfies u &gt;= rate and then scaled by 1/(1 - rate); at inference the layer is the identity.
/// Sample n's draws come from <see cref="StepContext.SampleRandom"/>(n, Index), one per element in
/// (C,H,W) order, so a mask depends on the seed, epoch, the sample's global index and the layer,
/// never on the batch it sits in or on threads. Backward replays the same draws instead of storing
/// a mask, so the layer keeps no per-batch state.
/// </summary>
public sealed class Dropout : Layer
{
    public Dropout(DropoutSpec spec)
        : base((spec ?? throw new ArgumentNullException(nameof(spec))).Name) => Spec = spec;

    public DropoutSpec Spec { get; }

    public override string TypeName => Spec.TypeName;

    // input (N,C,H,W) -> output (N,C,H,W)
    public override void Forward(Tensor output, Tensor input, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        LayerGuard.Forward(this, output, input);
        ApplyMask(output, input, context);
    }

    // dInput (N,C,H,W) <- dOutput (N,C,H,W): the forward's mask and scale applied to the gradient.
    public override void Backward(Tensor dInput, Tensor dOutput, Tensor input, Tensor output, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        LayerGuard.Backward(this, dInput, dOutput, input, output);
        ApplyMask(dInput, dOutput, context);
    }

    protected override SampleShape ComputeOutputShape(SampleShape input) => Spec.OutputShape(input);

    // y <- mask(x) * scale, per sample from its own random stream; a copy when not training.
    private void ApplyMask(Tensor y, Tensor x, StepContext context)
    {
        if (!context.Training || Spec.Rate == 0f)
        {
            x.Span.CopyTo(y.Span);
            return;
        }

        var rate = Spec.Rate;
        var scale = 1f / (1f - rate);
        var size = InputShape.Size;
        var n = x.N;
        var parts = WorkSplit.Parts(n, size);
        var xs = x.Data;
        var ys = y.Data;
        context.Compute.For(parts, part =>
        {
            var (start, end) = ComputePool.Range(n, parts, part);
            for (var sample = start; sample < end; sample++)
            {
                var random = context.SampleRandom(sample, Index);
                var xi = xs.AsSpan(sample * size, size);
                var yi = ys.AsSpan(sample * size, size);
                for (var i = 0; i < size; i++)
                {
                    yi[i] = random.NextFloat() >= rate ? xi[i] * scale : 0f;
                }
            }
        });
    }
}
