using ClusterConv.Engine.Optimizers;

namespace ClusterConv.Engine.Tests;

public class OptimizerTests
{
    private const float Lr = 0.1f;

    private static float StepOnce(IOptimizer optimizer, float w, float g, float[] state, long step, float lr = Lr, bool decay = true)
    {
        var weights = new[] { w };
        optimizer.Step(weights, [g], state, step, lr, decay);
        return weights[0];
    }

    [Fact]
    public void Sgd_subtracts_the_learning_rate_times_the_gradient()
    {
        var sgd = Optimizers.Optimizers.Create(new OptimizerSettings { Name = "sgd", LearningRate = Lr });
        Assert.Equal(0, sgd.StateSlotsPerParameter);
        Assert.Equal(0.95f, StepOnce(sgd, 1f, 0.5f, [], 1), 7);
    }

    [Fact]
    public void Sgd_with_momentum_accumulates_velocity()
    {
        var sgd = new Sgd(momentum: 0.9f);
        var state = new float[1];
        var w = StepOnce(sgd, 1f, 0.5f, state, 1); // v = 0.5, w = 1 - 0.05
        Assert.Equal(0.95f, w, 7);
        w = StepOnce(sgd, w, 0.5f, state, 2); // v = 0.45 + 0.5, w = 0.95 - 0.095
        Assert.Equal(0.855f, w, 6);
        Assert.Equal(0.95f, state[0], 7);
    }

    [Fact]
    public void Nesterov_steps_along_the_gradient_plus_momentum_times_the_new_velocity()
    {
        var sgd = new Sgd(momentum: 0.9f, nesterov: true);
        var state = new float[1];
        var w = StepOnce(sgd, 1f, 0.5f, state, 1); // v = 0.5, update 0.5 + 0.45
        Assert.Equal(0.905f, w, 6);
        w = StepOnce(sgd, w, 0.5f, state, 2); // v = 0.95, update 0.5 + 0.855
        Assert.Equal(0.7695f, w, 6);
    }

    [Fact]
    public void Coupled_weight_decay_adds_decay_times_weight_to_the_gradient_only_where_asked()
    {
        var sgd = new Sgd(weightDecay: 0.1f);
        Assert.Equal(1f - (Lr * 0.6f), StepOnce(sgd, 1f, 0.5f, [], 1, decay: true), 7);
        Assert.Equal(0.95f, StepOnce(sgd, 1f, 0.5f, [], 1, decay: false), 7);
    }

    [Fact]
    public void Sgd_matches_a_double_precision_hand_computation_over_several_steps()
    {
        foreach (var (momentum, nesterov, wd) in new[] { (0f, false, 0f), (0.9f, false, 0f), (0.8f, true, 0.01f), (0f, false, 0.05f) })
        {
            var sgd = new Sgd(momentum, nesterov, wd);
            var (w, grads) = Problem(19);
            var state = new float[sgd.StateSlotsPerParameter * w.Length];
            var ew = w.Select(x => (double)x).ToArray();
            var ev = new double[w.Length];
            for (var t = 1; t <= 3; t++)
            {
                sgd.Step(w, grads[t - 1], state, t, Lr, true);
                for (var i = 0; i < w.Length; i++)
                {
                    var g = grads[t - 1][i] + (wd * ew[i]);
                    ev[i] = (momentum * ev[i]) + g;
                    var update = momentum == 0 ? g : nesterov ? g + (momentum * ev[i]) : ev[i];
                    ew[i] -= Lr * update;
                }
            }

            AssertNear(ew, w, 1e-6, $"momentum {momentum}, nesterov {nesterov}, wd {wd}");
        }
    }

    [Fact]
    public void Adam_first_step_moves_each_weight_by_the_learning_rate_against_its_gradient()
    {
        var adam = Optimizers.Optimizers.Create(new OptimizerSettings { Name = "adam" });
        float[] w = [1f, 1f, 1f];
        var state = new float[6];
        adam.Step(w, [0.5f, -3f, 1e-2f], state, 1, 0.001f, true);
        Assert.Equal(0.999f, w[0], 6);
        Assert.Equal(1.001f, w[1], 6);
        Assert.Equal(0.999f, w[2], 5); // ε = 1e-7 is 1e-5 of |g| here
        const float OneMinusBeta1 = 1f - 0.9f; // in float, as Keras computes it: 0.100000024
        Assert.Equal([OneMinusBeta1 * 0.5f, OneMinusBeta1 * -3f, OneMinusBeta1 * 1e-2f], state.AsSpan(0, 3).ToArray()); // slot 0: m = (1 - β1)·g
    }

    [Fact]
    public void Adam_and_adamw_match_a_double_precision_hand_computation_over_several_steps()
    {
        foreach (var (decoupled, wd) in new[] { (false, 0f), (false, 0.01f), (true, 0.004f), (true, 0.1f) })
        {
            const double B1 = 0.9, B2 = 0.999, Eps = 1e-7;
            const float Rate = 0.01f;
            var adam = new Adam(weightDecay: wd, decoupledWeightDecay: decoupled);
            var (w, grads) = Problem(19);
            var state = new float[2 * w.Length];
            var ew = w.Select(x => (double)x).ToArray();
            var m = new double[w.Length];
            var v = new double[w.Length];
            for (var t = 1; t <= 3; t++)
            {
                adam.Step(w, grads[t - 1], state, t, Rate, true);
                var alpha = Rate * Math.Sqrt(1 - Math.Pow(B2, t)) / (1 - Math.Pow(B1, t));
                for (var i = 0; i < w.Length; i++)
                {
                    var g = grads[t - 1][i] + (decoupled ? 0 : wd * ew[i]);
                    m[i] = (B1 * m[i]) + ((1 - B1) * g);
                    v[i] = (B2 * v[i]) + ((1 - B2) * g * g);
                    ew[i] -= (decoupled ? Rate * wd * ew[i] : 0) + (alpha * m[i] / (Math.Sqrt(v[i]) + Eps));
                }
            }

            AssertNear(ew, w, 2e-6, $"decoupled {decoupled}, wd {wd}");
        }
    }

    [Fact]
    public void Adamw_shrinks_weights_by_learning_rate_times_decay_before_the_adam_step()
    {
        var adamw = Optimizers.Optimizers.Create(new OptimizerSettings { Name = "adamw", WeightDecay = 0.1f });
        var state = new float[2];
        // zero gradient: m = v = 0, the Adam step is 0 and only the decay acts.
        Assert.Equal(1f - (0.01f * 0.1f), StepOnce(adamw, 1f, 0f, state, 1, lr: 0.01f), 7);
        Assert.Equal(1f, StepOnce(adamw, 1f, 0f, new float[2], 1, lr: 0.01f, decay: false), 7);
    }

    public static TheoryData<string> Configurations => new() { "sgd", "momentum", "nesterov+wd", "adam+wd", "adamw" };

    private static IOptimizer Optimizer(string configuration) => configuration switch
    {
        "sgd" => new Sgd(weightDecay: 0.01f),
        "momentum" => new Sgd(momentum: 0.9f),
        "nesterov+wd" => new Sgd(momentum: 0.9f, nesterov: true, weightDecay: 1e-3f),
        "adam+wd" => new Adam(weightDecay: 1e-3f),
        _ => new Adam(weightDecay: 0.004f, decoupledWeightDecay: true),
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Applying_to_slices_equals_applying_to_the_whole_vector_bitwise(string configuration)
    {
        const int N = 1003; // splits at odd offsets send elements through the Vector128 and scalar paths
        var optimizer = Optimizer(configuration);
        var slots = optimizer.StateSlotsPerParameter;
        var (whole, grads) = Problem(N, steps: 5);
        var halves = (float[])whole.Clone();
        var singles = (float[])whole.Clone();
        var wholeState = new float[slots * N];
        var halvesState = new float[slots * N];
        var singlesState = new float[slots * N];
        for (var t = 1; t <= 5; t++)
        {
            var g = grads[t - 1];
            optimizer.Step(whole, g, wholeState, t, Lr, true);
            optimizer.Step(halves.AsSpan(0, 333), g.AsSpan(0, 333), halvesState, N, t, Lr, true);
            optimizer.Step(halves.AsSpan(333), g.AsSpan(333), From(halvesState, 333), N, t, Lr, true);
            for (var i = 0; i < N; i++)
            {
                optimizer.Step(singles.AsSpan(i, 1), g.AsSpan(i, 1), From(singlesState, i), N, t, Lr, true);
            }
        }

        Assert.Equal(Bits(whole), Bits(halves));
        Assert.Equal(Bits(wholeState), Bits(halvesState));
        Assert.Equal(Bits(whole), Bits(singles));
        Assert.Equal(Bits(wholeState), Bits(singlesState));
    }

    [Fact]
    public void A_state_too_short_for_the_slots_is_rejected()
    {
        var error = Assert.Throws<ArgumentException>(() => new Adam().Step(new float[4], new float[4], new float[7], 1, 0.1f, true));
        Assert.Equal("state", error.ParamName);
    }

    [Fact]
    public void Step_zero_is_rejected_because_steps_are_one_based()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Adam().Step(new float[4], new float[4], new float[8], 0, 0.1f, true));
    }

    private static (float[] Weights, float[][] Gradients) Problem(int n, int steps = 3)
    {
        var w = LayerHarness.RandomArray(n, 1, 2f);
        var grads = Enumerable.Range(0, steps).Select(t => LayerHarness.RandomArray(n, (ulong)(100 + t))).ToArray();
        return (w, grads);
    }

    // The state of a sub-range starting at offset (none for stateless optimizers).
    private static Span<float> From(float[] state, int offset) => state.Length == 0 ? [] : state.AsSpan(offset);

    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    private static void AssertNear(double[] expected, float[] actual, double tolerance, string what)
    {
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * Math.Max(1, Math.Abs(expected[i])), $"{what}: element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }
}
