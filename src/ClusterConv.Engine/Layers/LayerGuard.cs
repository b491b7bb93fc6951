namespace ClusterConv.Engine.Layers;

/// <summary>Argument checks shared by the layers' Forward and Backward.</summary>
internal static class LayerGuard
{
    /// <summary>Throws when a tensor's sample shape is not what the layer was built for.</summary>
    public static void Shape(Layer layer, Tensor tensor, SampleShape expected, string argument)
    {
        ArgumentNullException.ThrowIfNull(tensor, argument);
        if (tensor.Shape != expected)
        {
            throw new ArgumentException($"layer '{layer.Name}' ({layer.TypeName}): {argument} has sample shape {tensor.Shape}, expected {expected}", argument);
        }
    }

    /// <summary>Checks the input and output shapes of Forward and sizes the output to the input's batch.</summary>
    public static void Forward(Layer layer, Tensor output, Tensor input)
    {
        Shape(layer, input, layer.InputShape, nameof(input));
        Shape(layer, output, layer.OutputShape, nameof(output));
        output.Resize(input.N);
    }

    /// <summary>Checks the shapes and batch sizes of Backward and sizes dInput to the batch.</summary>
    public static void Backward(Layer layer, Tensor dInput, Tensor dOutput, Tensor input, Tensor output)
    {
        Shape(layer, input, layer.InputShape, nameof(input));
        Shape(layer, output, layer.OutputShape, nameof(output));
        Shape(layer, dOutput, layer.OutputShape, nameof(dOutput));
        Shape(layer, dInput, layer.InputShape, nameof(dInput));
        if (dOutput.N != input.N || output.N != input.N)
        {
            throw new ArgumentException($"layer '{layer.Name}' ({layer.TypeName}): batch sizes differ: input {input.N}, output {output.N}, dOutput {dOutput.N}", nameof(dOutput));
        }

        dInput.Resize(input.N);
    }
}
