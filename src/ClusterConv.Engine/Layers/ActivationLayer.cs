using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Layers;

/// <summary>A stand-alone activation (Keras Activation, ReLU, LeakyReLU) over every element, by <see cref="ActivationFunctions"/>.</summary>
public sealed class ActivationLayer : Layer
{
    public ActivationLayer(ActivationSpec spec)
        : base((spec ?? throw new ArgumentNullException(nameof(spec))).Name) => Spec = spec;

    public ActivationSpec Spec { get; }

    public Activation Activation => Spec.Activation;

    public override string TypeName => Spec.TypeName;

    // input (N,C,H,W) -> output (N,C,H,W); chunks of WorkSplit.MinPartWork elements run in parallel.
    public override void Forward(Tensor output, Tensor input, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        LayerGuard.Forward(this, output, input);
        var length = input.Length;
        var x = input.Data;
        var y = output.Data;
        var activation = Activation;
        context.Compute.For(WorkSplit.ElementParts(length), part =>
        {
            var (start, end) = WorkSplit.ElementRange(length, part);
            ActivationFunctions.Forward(activation, y.AsSpan(start, end - start), x.AsSpan(start, end - start));
        });
    }

    // dInput (N,C,H,W) <- dOutput (N,C,H,W), input and output of the forward.
    public override void Backward(Tensor dInput, Tensor dOutput, Tensor input, Tensor output, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        LayerGuard.Backward(this, dInput, dOutput, input, output);
        var length = input.Length;
        var dx = dInput.Data;
        var dy = dOutput.Data;
        var x = input.Data;
        var y = output.Data;
        var activation = Activation;
        context.Compute.For(WorkSplit.ElementParts(length), part =>
        {
            var (start, end) = WorkSplit.ElementRange(length, part);
            var count = end - start;
            ActivationFunctions.Backward(activation, dx.AsSpan(start, count), dy.AsSpan(start, count), x.AsSpan(start, count), y.AsSpan(start, count));
        });
    }

    protected override SampleShape ComputeOutputShape(SampleShape input) => Spec.OutputShape(input);
}
