using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Tests;

public class ActivationFunctionTests
{
    public static TheoryData<string> AllActivations => new() { "linear", "relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid" };

    // Lengths around the 8- and 4-lane vector widths, so every path (Vector256, Vector128, scalar tail) runs.
    private static readonly int[] Lengths = [0, 1, 3, 4, 7, 8, 9, 13, 31, 1000];

    private static Activation Parse(string name) => name == "leaky_relu"
        ? new Activation(ActivationKind.LeakyRelu, 0.3f)
        : Activation.TryParse(name)!.Value;

    private static float[] Inputs(int length, ulong seed)
    {
        var x = LayerHarness.RandomArray(length, seed, 6f);
        if (length > 2)
        {
            x[0] = 0f;
            x[1] = -0f;
        }

        return x;
    }

    // tanh and sigmoid (TensorPrimitives) may differ from MathF by a few ulp; the rest is bitwise.
    private static float Tolerance(ActivationKind kind) => kind is ActivationKind.Tanh or ActivationKind.Sigmoid ? 1e-6f : 0f;

    [Theory]
    [MemberData(nameof(AllActivations))]
    public void Forward_matches_the_scalar_reference(string name)
    {
        var activation = Parse(name);
        foreach (var length in Lengths)
        {
            var x = Inputs(length, (ulong)length + 1);
            var fast = new float[length];
            var reference = new float[length];
            ActivationFunctions.Forward(activation, fast, x);
            ActivationFunctions.ForwardReference(activation, reference, x);
            AssertClose(reference, fast, Tolerance(activation.Kind), $"{name}, length {length}");
        }
    }

    [Theory]
    [MemberData(nameof(AllActivations))]
    public void Backward_matches_the_scalar_reference_bitwise(string name)
    {
        var activation = Parse(name);
        foreach (var length in Lengths)
        {
            var x = Inputs(length, (ulong)length + 7);
            var y = new float[length];
            ActivationFunctions.ForwardReference(activation, y, x);
            var dy = LayerHarness.RandomArray(length, 99);
            var fast = new float[length];
            var reference = new float[length];
            ActivationFunctions.Backward(activation, fast, dy, x, y);
            ActivationFunctions.BackwardReference(activation, reference, dy, x, y);
            AssertClose(reference, fast, 0f, $"{name}, length {length}");
        }
    }

    [Theory]
    [MemberData(nameof(AllActivations))]
    public void Forward_in_place_gives_the_same_values_as_out_of_place(string name)
    {
        var activation = Parse(name);
        var x = Inputs(1000, 3);
        var separate = new float[x.Length];
        ActivationFunctions.Forward(activation, separate, x);
        ActivationFunctions.Forward(activation, x, x);
        AssertClose(separate, x, 0f, name);
    }

    [Fact]
    public void Relu_gives_positive_zero_for_negative_zero_and_nan_as_the_reference_does()
    {
        float[] x = [-0f, float.NaN, -1f, 2f, -0f, float.NaN, -1f, 2f, float.NaN];
        var fast = new float[x.Length];
        var reference = new float[x.Length];
        ActivationFunctions.Forward(Activation.Relu, fast, x);
        ActivationFunctions.ForwardReference(Activation.Relu, reference, x);
        Assert.Equal(reference.Select(BitConverter.SingleToInt32Bits), fast.Select(BitConverter.SingleToInt32Bits));
    }

    [Theory]
    [MemberData(nameof(AllActivations))]
    public void Activation_layer_gradient_matches_finite_differences(string name)
    {
        var activation = Parse(name);
        foreach (var (shape, batch) in new[] { (new SampleShape(3, 5, 5), 2), (SampleShape.Vector(7), 1) })
        {
            var layer = LayerHarness.Built(new ActivationLayer(new ActivationSpec("act", activation)), shape);
            var error = GradientCheck.MaxRelativeError(layer, batch, epsilon: 1e-3f, inputInit: LayerHarness.AwayFromZero);
            Assert.True(error < 2e-3, $"{name} {shape} x{batch}: relative error {error}");
        }
    }

    [Fact]
    public void Activation_layer_exposes_its_activation_and_keras_class()
    {
        var layer = new ActivationLayer(new ActivationSpec("re_lu", Activation.Relu, "ReLU"));
        Assert.Equal(Activation.Relu, layer.Activation);
        Assert.Equal("ReLU", layer.TypeName);
    }

    internal static void AssertClose(float[] expected, float[] actual, float tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            var ok = tolerance == 0f
                ? BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i])
                : Math.Abs(expected[i] - actual[i]) <= tolerance * Math.Max(1f, Math.Abs(expected[i]));
            Assert.True(ok, $"{what}: element {i}: expected {expected[i]:R}, got {actual[i]:R}");
        }
    }
}
