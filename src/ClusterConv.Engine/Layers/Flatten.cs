using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Layers;

/// <summary>
/// (N,C,H,W) to (N,C·H·W,1,1) in channel-major (C,H,W) order, by copy: a Tensor owns its buffer, so
/// an alias would need a view type the engine does not have, and the copy costs little next to the
/// layers around it. Keras (channels_last) flattens in (H,W,C) order: importing a Dense kernel that
/// follows a Flatten needs its input rows permuted.
/// </summary>
public sealed class Flatten : Layer
{
    public Flatten(FlattenSpec spec)
        : base((spec ?? throw new ArgumentNullException(nameof(spec))).Name) => Spec = spec;

    public FlattenSpec Spec { get; }

    public override string TypeName => Spec.TypeName;

    // input (N,C,H,W) -> output (N,C·H·W,1,1)
    public override void Forward(Tensor output, Tensor input, StepContext context)
    {
        LayerGuard.Forward(this, output, input);
        input.Span.CopyTo(output.Span);
    }

    // dInput (N,C,H,W) <- dOutput (N,C·H·W,1,1)
    public override void Backward(Tensor dInput, Tensor dOutput, Tensor input, Tensor output, StepContext context)
    {
        LayerGuard.Backward(this, dInput, dOutput, input, output);
        dOutput.Span.CopyTo(dInput.Span);
    }

    protected override SampleShape ComputeOutputShape(SampleShape input) => Spec.OutputShape(input);
}
