using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Kernels;

/// <summary>
/// Vectorized activations for the kinds made only of compares, selects and multiplies (linear,
/// relu, leaky_relu): they give bitwise the scalar reference's results (same operations per
/// element, NaN and -0 included). Other kinds fall back to the reference.
/// </summary>
internal static class ActivationKernels
{
    // output <- f(input); spans of equal length, may alias
    public static bool TryForward(Activation activation, Span<float> output, ReadOnlySpan<float> input)
    {
        switch (activation.Kind)
        {
            case ActivationKind.Linear:
                input.CopyTo(output);
                return true;
            case ActivationKind.Relu:
                Select(output, input, 0f, relu: true);
                return true;
            case ActivationKind.LeakyRelu:
                Select(output, input, activation.Alpha, relu: false);
                return true;
            default:
                return false;
        }
    }

    // dInput <- dOutput * f'(input)
    public static bool TryBackward(Activation activation, Span<float> dInput, ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input)
    {
        switch (activation.Kind)
        {
            case ActivationKind.Linear:
                MaskedScale(dInput, dOutput, input, 1f);
                return true;
            case ActivationKind.Relu:
                MaskedScale(dInput, dOutput, input, 0f);
                return true;
            case ActivationKind.LeakyRelu:
                MaskedScale(dInput, dOutput, input, activation.Alpha);
                return true;
            default:
                return false;
        }
    }

    // output[i] = input[i] > 0 ? input[i] : slope * input[i]; relu: input[i] > 0 ? input[i] : 0
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Select(Span<float> output, ReadOnlySpan<float> input, float slope, bool relu)
    {
        var length = input.Length;
        fixed (float* po = output)
        fixed (float* pi = input)
        {
            var i = 0;
            var zero = Vector256<float>.Zero;
            var s = Vector256.Create(slope);
            for (; i + 8 <= length; i += 8)
            {
                var x = Vector256.Load(pi + i);
                var negative = relu ? zero : x * s;
                Vector256.Store(Vector256.ConditionalSelect(Vector256.GreaterThan(x, zero), x, negative), po + i);
            }

            for (; i < length; i++)
            {
                var x = pi[i];
                po[i] = x > 0f ? x : relu ? 0f : slope * x;
            }
        }
    }

    // dInput[i] = dOutput[i] * (input[i] > 0 ? 1 : slope)
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void MaskedScale(Span<float> dInput, ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, float slope)
    {
        var length = input.Length;
        fixed (float* pd = dInput)
        fixed (float* pg = dOutput)
        fixed (float* pi = input)
        {
            var i = 0;
            var zero = Vector256<float>.Zero;
            var one = Vector256<float>.One;
            var s = Vector256.Create(slope);
            for (; i + 8 <= length; i += 8)
            {
                var derivative = Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Load(pi + i), zero), one, s);
                Vector256.Store(Vector256.Load(pg + i) * derivative, pd + i);
            }

            for (; i < length; i++)
            {
                pd[i] = pg[i] * (pi[i] > 0f ? 1f : slope);
            }
        }
    }
}
