using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Tests.Kernels;

/// <summary>The vectorized activations give bitwise the scalar reference's results.</summary>
public sealed class ActivationKernelsTests
{
    [Theory]
    [InlineData(ActivationKind.Linear, 0f)]
    [InlineData(ActivationKind.Relu, 0f)]
    [InlineData(ActivationKind.LeakyRelu, 0.2f)]
    [InlineData(ActivationKind.LeakyRelu, 0f)]
    public void Vectorized_forward_and_backward_equal_the_reference_bitwise(ActivationKind kind, float alpha)
    {
        var activation = new Activation(kind, alpha);
        float[] special = [0f, -0f, 1f, -1f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon];
        var input = special.Concat(GemmTests.Random(50, seed: 1)).ToArray(); // 59 values: vector body and tail
        var dOutput = GemmTests.Random(input.Length, seed: 2);
        dOutput[3] = -0f;
        dOutput[4] = float.NaN;

        var output = new float[input.Length];
        var expected = new float[input.Length];
        ActivationFunctions.Forward(activation, output, input);
        ActivationFunctions.ForwardReference(activation, expected, input);
        Assert.Equal(expected.Select(BitConverter.SingleToInt32Bits), output.Select(BitConverter.SingleToInt32Bits));

        var dInput = new float[input.Length];
        var dExpected = new float[input.Length];
        ActivationFunctions.Backward(activation, dInput, dOutput, input, output);
        ActivationFunctions.BackwardReference(activation, dExpected, dOutput, input, expected);
        Assert.Equal(dExpected.Select(BitConverter.SingleToInt32Bits), dInput.Select(BitConverter.SingleToInt32Bits));
    }
}
