namespace ClusterConv.Engine.Layers;

/// <summary>Element-wise activation forward and backward. Spans may alias (output == input) in Forward.</summary>
public static class ActivationFunctions
{
    // output <- f(input)
    public static void Forward(Activation activation, Span<float> output, ReadOnlySpan<float> input)
    {
        if (output.Length != input.Length)
        {
            throw new ArgumentException("output and input lengths differ", nameof(output));
        }

        if (!Kernels.ActivationKernels.TryForward(activation, output, input))
        {
            ForwardReference(activation, output, input);
        }
    }

    // dInput <- dOutput * f'(input); input is the pre-activation, output = f(input).
    public static void Backward(Activation activation, Span<float> dInput, ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, ReadOnlySpan<float> output)
    {
        if (dInput.Length != dOutput.Length || input.Length != dOutput.Length || output.Length != dOutput.Length)
        {
            throw new ArgumentException("activation backward: span lengths differ", nameof(dInput));
        }

        if (!Kernels.ActivationKernels.TryBackward(activation, dInput, dOutput, input))
        {
            BackwardReference(activation, dInput, dOutput, input, output);
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
}
