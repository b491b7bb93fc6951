using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ClusterConv.Engine.Optimizers;

/// <summary>
/// Adam as Keras computes it, with AdamW (decoupled weight decay) as a setting. Per element, at
/// 1-based step t:
/// <code>
/// coupled (L2, "adam"):     g' = g + wd·w            (PyTorch Adam's weight_decay)
/// decoupled ("adamw"):      g' = g; w is first shrunk by w·lr·wd   (Keras and PyTorch AdamW)
/// m = m + (g' - m)·(1 - β1)
/// v = v + (g'² - v)·(1 - β2)
/// w = w - α·m / (√v + ε),   α = lr·√(1 - β2^t) / (1 - β1^t)
/// </code>
/// ε is added to √v of the uncorrected v, as in Keras (PyTorch adds it to the bias-corrected
/// √v̂; equivalent to Keras with ε scaled by √(1 - β2^t)). Defaults are Keras': β1 0.9, β2 0.999,
/// ε 1e-7. α is computed once per call in double. State: 2 slots, m then v.
/// </summary>
public sealed class Adam : IOptimizer
{
    public Adam(float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-7f, float weightDecay = 0f, bool decoupledWeightDecay = false)
    {
        if (!(beta1 is >= 0f and < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "beta1 must be in [0, 1)");
        }

        if (!(beta2 is >= 0f and < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "beta2 must be in [0, 1)");
        }

        if (!(epsilon > 0f) || !float.IsFinite(epsilon))
        {
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "epsilon must be positive");
        }

        if (!(weightDecay >= 0f) || !float.IsFinite(weightDecay))
        {
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weight decay must be finite and not negative");
        }

        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        DecoupledWeightDecay = decoupledWeightDecay;
    }

    public float Beta1 { get; }

    public float Beta2 { get; }

    public float Epsilon { get; }

    public float WeightDecay { get; }

    public bool DecoupledWeightDecay { get; }

    public int StateSlotsPerParameter => 2;

    public void Step(Span<float> weights, ReadOnlySpan<float> gradients, Span<float> state, int stateStride, long step, float learningRate, bool decay)
    {
        OptimizerGuard.Check(2, weights, gradients, state, stateStride, step, learningRate);
        var m = OptimizerGuard.Slot(state, stateStride, 0, weights.Length);
        var v = OptimizerGuard.Slot(state, stateStride, 1, weights.Length);
        var wd = decay ? WeightDecay : 0f;
        var alpha = learningRate * Math.Sqrt(1.0 - Math.Pow(Beta2, step)) / (1.0 - Math.Pow(Beta1, step));
        var op = new Update(
            (float)alpha,
            DecoupledWeightDecay ? 0f : wd,
            DecoupledWeightDecay ? learningRate * wd : 0f,
            1f - Beta1,
            1f - Beta2,
            Epsilon);
        Elementwise.Update(op, weights, m, v, gradients);
    }

    // Invoke is too large for the JIT to inline on its own; called instead, it ran unoptimized (tier 0, every vector
    // operator a call) for the first second or so of a cluster run, doubling the step time while the silo kept the JIT busy.
    private readonly struct Update(float alpha, float l2, float shrink, float oneMinusBeta1, float oneMinusBeta2, float epsilon) : Elementwise.IUpdate
    {
        public static int Slots => 2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke(ref float w, ref float m, ref float v, float g)
        {
            var gd = g + (l2 * w);
            m += (gd - m) * oneMinusBeta1;
            v += ((gd * gd) - v) * oneMinusBeta2;
            w = (w - (shrink * w)) - ((alpha * m) / (MathF.Sqrt(v) + epsilon));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke(ref Vector128<float> w, ref Vector128<float> m, ref Vector128<float> v, Vector128<float> g)
        {
            var gd = g + (Vector128.Create(l2) * w);
            m += (gd - m) * Vector128.Create(oneMinusBeta1);
            v += ((gd * gd) - v) * Vector128.Create(oneMinusBeta2);
            w = (w - (Vector128.Create(shrink) * w)) - ((Vector128.Create(alpha) * m) / (Vector128.Sqrt(v) + Vector128.Create(epsilon)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke(ref Vector256<float> w, ref Vector256<float> m, ref Vector256<float> v, Vector256<float> g)
        {
            var gd = g + (Vector256.Create(l2) * w);
            m += (gd - m) * Vector256.Create(oneMinusBeta1);
            v += ((gd * gd) - v) * Vector256.Create(oneMinusBeta2);
            w = (w - (Vector256.Create(shrink) * w)) - ((Vector256.Create(alpha) * m) / (Vector256.Sqrt(v) + Vector256.Create(epsilon)));
        }
    }
}
