namespace ClusterConv.Engine.Optimizers;

/// <summary>
/// An optimizer that updates any contiguous run of a flat parameter vector in place, element by
/// element, so a parameter-server shard can apply it to its slice and the result does not depend on
/// how the vector is sliced (bitwise: the SIMD and scalar paths do the same float operations).
/// <para>
/// State layout, slot-major: slot k (e.g. Adam: 0 = first moment m, 1 = second moment v) of
/// weights[i] lives at state[k·stateStride + i]. A caller keeping one state block for a slice of
/// length L uses stateStride = L and passes state.Slice(offset) with the same stride for a
/// sub-range starting at offset. The short overload takes stateStride = weights.Length, i.e. one
/// block per call. State starts at zero and is never resized by the optimizer.
/// </para>
/// <para>
/// step is 1-based (the first update is step 1; Adam's bias correction needs it). learningRate is
/// the rate for this step (from a schedule). decay says whether weight decay applies to this run:
/// pass true for kernels and false for biases and BatchNormalization's gamma and beta (callers
/// split a slice at parameter boundaries and call once per run).
/// </para>
/// </summary>
public interface IOptimizer
{
    /// <summary>Floats of state per parameter: SGD 0, SGD with momentum 1, Adam and AdamW 2.</summary>
    int StateSlotsPerParameter { get; }

    // weights (n) and state (slots × stateStride) updated in place <- gradients (n)
    void Step(Span<float> weights, ReadOnlySpan<float> gradients, Span<float> state, int stateStride, long step, float learningRate, bool decay);
}

/// <summary>The one-block form of <see cref="IOptimizer.Step"/>, on any optimizer type.</summary>
public static class OptimizerExtensions
{
    // weights (n) and state (slots × n, stride n) updated in place <- gradients (n)
    public static void Step(this IOptimizer optimizer, Span<float> weights, ReadOnlySpan<float> gradients, Span<float> state, long step, float learningRate, bool decay)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        optimizer.Step(weights, gradients, state, weights.Length, step, learningRate, decay);
    }
}

/// <summary>Argument checks shared by the optimizers.</summary>
internal static class OptimizerGuard
{
    /// <summary>Validates a Step call's lengths, step and rate.</summary>
    public static void Check(int slots, Span<float> weights, ReadOnlySpan<float> gradients, Span<float> state, int stateStride, long step, float learningRate)
    {
        var n = weights.Length;
        if (gradients.Length != n)
        {
            throw new ArgumentException($"gradients have {gradients.Length} values, weights {n}", nameof(gradients));
        }

        if (step < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(step), step, "step is 1-based");
        }

        if (!float.IsFinite(learningRate) || learningRate < 0f)
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "learning rate must be finite and not negative");
        }

        if (slots == 0)
        {
            return;
        }

        if (stateStride < n)
        {
            throw new ArgumentOutOfRangeException(nameof(stateStride), stateStride, $"state stride must be at least the {n} weights");
        }

        var needed = ((long)(slots - 1) * stateStride) + n;
        if (state.Length < needed)
        {
            throw new ArgumentException($"state has {state.Length} values, {slots} slot(s) of {n} at stride {stateStride} need {needed}", nameof(state));
        }
    }

    /// <summary>Slot k of a checked call: the n state values of the n weights.</summary>
    public static Span<float> Slot(Span<float> state, int stateStride, int k, int n) => state.Slice(k * stateStride, n);
}
