using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace ClusterConv.Engine.Layers;

/// <summary>
/// Element-wise activation forward and backward. Spans may alias exactly (output == input in
/// Forward, dInput == dOutput in Backward); partial overlap is not supported.
/// <para>
/// Fast paths and how they compare with the scalar references (the oracle, tested):
/// linear, relu, leaky_relu forward and backward, and the backward of elu, tanh, sigmoid are
/// SIMD operators doing the reference's arithmetic: bitwise equal. tanh and sigmoid forward use
/// TensorPrimitives: within a few ulp of MathF (tested to 1e-6 relative). elu and gelu forward
/// and gelu backward run the reference (TensorPrimitives.Exp on float measured barely faster than
/// MathF.Exp here, 4.8 vs 5.5 ms per million, so a two-pass elu did not pay).
/// Measured per million floats, one thread, full JIT optimization, shared machine (ms, reference
/// → fast; bench/ClusterConv.Benchmarks ActivationBenchmarks): relu forward 5.9 → 0.14, backward
/// 6.8 → 0.23; leaky_relu 5.7 → 0.15, 7.0 → 0.30; tanh 20.8 → 3.1, 2.0 → 0.24; sigmoid 6.2 → 2.6,
/// 2.5 → 0.26. (The reference switches on the kind per element, so part of the gain is that.)
/// The SIMD operators give an element the same result wherever it sits; TensorPrimitives may
/// take a scalar path for spans shorter than a vector, so callers that split a tensor into
/// chunks fix the chunk boundaries by the shape (never by the thread count).
/// </para>
/// </summary>
public static class ActivationFunctions
{
    // output <- f(input)
    public static void Forward(Activation activation, Span<float> output, ReadOnlySpan<float> input)
    {
        if (output.Length != input.Length)
        {
            throw new ArgumentException("output and input lengths differ", nameof(output));
        }

        if (input.IsEmpty)
        {
            return; // TensorPrimitives.Sigmoid rejects empty spans
        }

        switch (activation.Kind)
        {
            case ActivationKind.Linear:
                input.CopyTo(output);
                break;
            case ActivationKind.Relu:
                Elementwise.Map(new ReluForward(), output, input);
                break;
            case ActivationKind.LeakyRelu:
                Elementwise.Map(new LeakyReluForward(activation.Alpha), output, input);
                break;
            case ActivationKind.Tanh:
                TensorPrimitives.Tanh(input, output);
                break;
            case ActivationKind.Sigmoid:
                TensorPrimitives.Sigmoid(input, output);
                break;
            default:
                ForwardReference(activation, output, input);
                break;
        }
    }

    // dInput <- dOutput * f'(input); input is the pre-activation, output = f(input).
    public static void Backward(Activation activation, Span<float> dInput, ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, ReadOnlySpan<float> output)
    {
        if (dInput.Length != dOutput.Length || input.Length != dOutput.Length || output.Length != dOutput.Length)
        {
            throw new ArgumentException("activation backward: span lengths differ", nameof(dInput));
        }

        switch (activation.Kind)
        {
            case ActivationKind.Linear:
                dOutput.CopyTo(dInput);
                break;
            case ActivationKind.Relu:
                Elementwise.Map(new ReluBackward(), dInput, dOutput, input);
                break;
            case ActivationKind.LeakyRelu:
                Elementwise.Map(new LeakyReluBackward(activation.Alpha), dInput, dOutput, input);
                break;
            case ActivationKind.Elu:
                Elementwise.Map(new EluBackward(activation.Alpha), dInput, dOutput, input, output);
                break;
            case ActivationKind.Tanh:
                Elementwise.Map(new TanhBackward(), dInput, dOutput, output);
                break;
            case ActivationKind.Sigmoid:
                Elementwise.Map(new SigmoidBackward(), dInput, dOutput, output);
                break;
            default:
                BackwardReference(activation, dInput, dOutput, input, output);
                break;
        }
    }

    /// <summary>Plain scalar version: the oracle for any vectorized path.</summary>
    public static void ForwardReference(Activation activation, Span<float> output, ReadOnlySpan<float> input)
    {
        var alpha = activation.Alpha;
        for (var i = 0; i < input.Length; i++)
        {
            var x = input[i];
            output[i] = activation.Kind switch
            {
                ActivationKind.Linear => x,
                ActivationKind.Relu => x > 0f ? x : 0f,
                ActivationKind.LeakyRelu => x > 0f ? x : alpha * x,
                ActivationKind.Elu => x > 0f ? x : alpha * (MathF.Exp(x) - 1f),
                ActivationKind.Gelu => 0.5f * x * (1f + Erf(x * 0.70710678f)),
                ActivationKind.Tanh => MathF.Tanh(x),
                ActivationKind.Sigmoid => 1f / (1f + MathF.Exp(-x)),
                _ => throw new InvalidOperationException(),
            };
        }
    }

    public static void BackwardReference(Activation activation, Span<float> dInput, ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, ReadOnlySpan<float> output)
    {
        var alpha = activation.Alpha;
        for (var i = 0; i < dOutput.Length; i++)
        {
            var x = input[i];
            var y = output[i];
            var derivative = activation.Kind switch
            {
                ActivationKind.Linear => 1f,
                ActivationKind.Relu => x > 0f ? 1f : 0f,
                ActivationKind.LeakyRelu => x > 0f ? 1f : alpha,
                ActivationKind.Elu => x > 0f ? 1f : y + alpha,
                ActivationKind.Gelu => (0.5f * (1f + Erf(x * 0.70710678f))) + (x * 0.3989422804f * MathF.Exp(-0.5f * x * x)),
                ActivationKind.Tanh => 1f - (y * y),
                ActivationKind.Sigmoid => y * (1f - y),
                _ => throw new InvalidOperationException(),
            };
            dInput[i] = dOutput[i] * derivative;
        }
    }

    /// <summary>Error function (Abramowitz and Stegun 7.1.26 refined; max error about 1.2e-7), for exact (erf) GELU as Keras uses by default.</summary>
    public static float Erf(float x)
    {
        // Computed in double for accuracy; GELU is not on the hot path of the reference model.
        double z = Math.Abs(x);
        var t = 1.0 / (1.0 + (0.5 * z));
        var poly = 0.17087277;
        poly = -0.82215223 + (t * poly);
        poly = 1.48851587 + (t * poly);
        poly = -1.13520398 + (t * poly);
        poly = 0.27886807 + (t * poly);
        poly = -0.18628806 + (t * poly);
        poly = 0.09678418 + (t * poly);
        poly = 0.37409196 + (t * poly);
        poly = 1.00002368 + (t * poly);
        poly = -1.26551223 + (t * poly);
        var r = t * Math.Exp(-(z * z) + poly);
        var erf = 1.0 - r;
        return (float)(x >= 0 ? erf : -erf);
    }

    private readonly struct ReluForward : Elementwise.IUnary
    {
        // x > 0 ? x : +0, as the reference (not Max, which differs on NaN).
        public float Invoke(float x) => x > 0f ? x : 0f;

        public Vector128<float> Invoke(Vector128<float> x) => x & Vector128.GreaterThan(x, Vector128<float>.Zero);

        public Vector256<float> Invoke(Vector256<float> x) => x & Vector256.GreaterThan(x, Vector256<float>.Zero);
    }

    private readonly struct LeakyReluForward(float alpha) : Elementwise.IUnary
    {
        public float Invoke(float x) => x > 0f ? x : alpha * x;

        public Vector128<float> Invoke(Vector128<float> x) =>
            Vector128.ConditionalSelect(Vector128.GreaterThan(x, Vector128<float>.Zero), x, Vector128.Create(alpha) * x);

        public Vector256<float> Invoke(Vector256<float> x) =>
            Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256<float>.Zero), x, Vector256.Create(alpha) * x);
    }

    // The backward operators multiply dOutput by the reference's derivative (not a select of
    // dOutput), so signed zeros and NaN propagate exactly as in the reference.

    // (dOutput, x) -> dInput
    private readonly struct ReluBackward : Elementwise.IBinary
    {
        public float Invoke(float dy, float x) => dy * (x > 0f ? 1f : 0f);

        public Vector128<float> Invoke(Vector128<float> dy, Vector128<float> x) =>
            dy * (Vector128<float>.One & Vector128.GreaterThan(x, Vector128<float>.Zero));

        public Vector256<float> Invoke(Vector256<float> dy, Vector256<float> x) =>
            dy * (Vector256<float>.One & Vector256.GreaterThan(x, Vector256<float>.Zero));
    }

    // (dOutput, x) -> dInput
    private readonly struct LeakyReluBackward(float alpha) : Elementwise.IBinary
    {
        public float Invoke(float dy, float x) => dy * (x > 0f ? 1f : alpha);

        public Vector128<float> Invoke(Vector128<float> dy, Vector128<float> x) =>
            dy * Vector128.ConditionalSelect(Vector128.GreaterThan(x, Vector128<float>.Zero), Vector128<float>.One, Vector128.Create(alpha));

        public Vector256<float> Invoke(Vector256<float> dy, Vector256<float> x) =>
            dy * Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256<float>.Zero), Vector256<float>.One, Vector256.Create(alpha));
    }

    // (dOutput, x, y) -> dInput
    private readonly struct EluBackward(float alpha) : Elementwise.ITernary
    {
        public float Invoke(float dy, float x, float y) => dy * (x > 0f ? 1f : y + alpha);

        public Vector128<float> Invoke(Vector128<float> dy, Vector128<float> x, Vector128<float> y) =>
            dy * Vector128.ConditionalSelect(Vector128.GreaterThan(x, Vector128<float>.Zero), Vector128<float>.One, y + Vector128.Create(alpha));

        public Vector256<float> Invoke(Vector256<float> dy, Vector256<float> x, Vector256<float> y) =>
            dy * Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256<float>.Zero), Vector256<float>.One, y + Vector256.Create(alpha));
    }

    // (dOutput, y) -> dInput
    private readonly struct TanhBackward : Elementwise.IBinary
    {
        public float Invoke(float dy, float y) => dy * (1f - (y * y));

        public Vector128<float> Invoke(Vector128<float> dy, Vector128<float> y) => dy * (Vector128<float>.One - (y * y));

        public Vector256<float> Invoke(Vector256<float> dy, Vector256<float> y) => dy * (Vector256<float>.One - (y * y));
    }

    // (dOutput, y) -> dInput
    private readonly struct SigmoidBackward : Elementwise.IBinary
    {
        public float Invoke(float dy, float y) => dy * (y * (1f - y));

        public Vector128<float> Invoke(Vector128<float> dy, Vector128<float> y) => dy * (y * (Vector128<float>.One - y));

        public Vector256<float> Invoke(Vector256<float> dy, Vector256<float> y) => dy * (y * (Vector256<float>.One - y));
    }
}
