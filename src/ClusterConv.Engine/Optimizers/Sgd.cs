using System.Runtime.Intrinsics;

namespace ClusterConv.Engine.Optimizers;

/// <summary>
/// Stochastic gradient descent, the simplest optimizer; momentum, Nesterov and weight decay are
/// settings of this one class. Per element, with g the gradient and wd the weight decay:
/// <code>
/// coupled (L2, the default):  g' = g + wd·w
/// momentum = 0:               w  = w - lr·g'
/// momentum μ &gt; 0:             v  = μ·v + g'
///                             w  = w - lr·(nesterov ? g' + μ·v : v)
/// decoupled (SGDW):           g' = g and w is first shrunk by w·lr·wd
/// </code>
/// This is PyTorch's torch.optim.SGD (dampening 0). Keras' SGD keeps a velocity already scaled by
/// the learning rate (v = μ·v - lr·g; w += v, or w += μ·v - lr·g with Nesterov); the two give the
/// same weights while the learning rate is constant and differ only in how a schedule's change
/// reaches momentum already accumulated. State: 0 slots, or 1 (v) with momentum.
/// </summary>
public sealed class Sgd : IOptimizer
{
    public Sgd(float momentum = 0f, bool nesterov = false, float weightDecay = 0f, bool decoupledWeightDecay = false)
    {
        if (!(momentum is >= 0f and < 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "momentum must be in [0, 1)");
        }

        if (nesterov && momentum == 0f)
        {
            throw new ArgumentException("nesterov needs a momentum above 0", nameof(nesterov));
        }

        if (!(weightDecay >= 0f) || !float.IsFinite(weightDecay))
        {
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weight decay must be finite and not negative");
        }

        Momentum = momentum;
        Nesterov = nesterov;
        WeightDecay = weightDecay;
        DecoupledWeightDecay = decoupledWeightDecay;
    }

    public float Momentum { get; }

    public bool Nesterov { get; }

    public float WeightDecay { get; }

    public bool DecoupledWeightDecay { get; }

    public int StateSlotsPerParameter => Momentum > 0f ? 1 : 0;

    public void Step(Span<float> weights, ReadOnlySpan<float> gradients, Span<float> state, int stateStride, long step, float learningRate, bool decay)
    {
        OptimizerGuard.Check(StateSlotsPerParameter, weights, gradients, state, stateStride, step, learningRate);
        var wd = decay ? WeightDecay : 0f;
        var l2 = DecoupledWeightDecay ? 0f : wd;
        var shrink = DecoupledWeightDecay ? learningRate * wd : 0f;
        if (Momentum == 0f)
        {
            Elementwise.Update(new Plain(learningRate, l2, shrink), weights, default, default, gradients);
        }
        else
        {
            var velocity = OptimizerGuard.Slot(state, stateStride, 0, weights.Length);
            Elementwise.Update(new WithMomentum(learningRate, l2, shrink, Momentum, Nesterov), weights, velocity, default, gradients);
        }
    }

    // w = (w - shrink·w) - lr·(g + l2·w)
    private readonly struct Plain(float lr, float l2, float shrink) : Elementwise.IUpdate
    {
        public static int Slots => 0;

        public void Invoke(ref float w, ref float s0, ref float s1, float g)
        {
            var gd = g + (l2 * w);
            w = (w - (shrink * w)) - (lr * gd);
        }

        public void Invoke(ref Vector128<float> w, ref Vector128<float> s0, ref Vector128<float> s1, Vector128<float> g)
        {
            var gd = g + (Vector128.Create(l2) * w);
            w = (w - (Vector128.Create(shrink) * w)) - (Vector128.Create(lr) * gd);
        }

        public void Invoke(ref Vector256<float> w, ref Vector256<float> s0, ref Vector256<float> s1, Vector256<float> g)
        {
            var gd = g + (Vector256.Create(l2) * w);
            w = (w - (Vector256.Create(shrink) * w)) - (Vector256.Create(lr) * gd);
        }
    }

    // v = μ·v + g', w = (w - shrink·w) - lr·(nesterov ? g' + μ·v : v), g' = g + l2·w
    private readonly struct WithMomentum(float lr, float l2, float shrink, float mu, bool nesterov) : Elementwise.IUpdate
    {
        public static int Slots => 1;

        public void Invoke(ref float w, ref float v, ref float s1, float g)
        {
            var gd = g + (l2 * w);
            v = (mu * v) + gd;
            var update = nesterov ? gd + (mu * v) : v;
            w = (w - (shrink * w)) - (lr * update);
        }

        public void Invoke(ref Vector128<float> w, ref Vector128<float> v, ref Vector128<float> s1, Vector128<float> g)
        {
            var muv = Vector128.Create(mu);
            var gd = g + (Vector128.Create(l2) * w);
            v = (muv * v) + gd;
            var update = nesterov ? gd + (muv * v) : v;
            w = (w - (Vector128.Create(shrink) * w)) - (Vector128.Create(lr) * update);
        }

        public void Invoke(ref Vector256<float> w, ref Vector256<float> v, ref Vector256<float> s1, Vector256<float> g)
        {
            var muv = Vector256.Create(mu);
            var gd = g + (Vector256.Create(l2) * w);
            v = (muv * v) + gd;
            var update = nesterov ? gd + (muv * v) : v;
            w = (w - (Vector256.Create(shrink) * w)) - (Vector256.Create(lr) * update);
        }
    }
}
