using ClusterConv.Engine;
using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Tests;

/// <summary>
/// Finite-difference check of a layer's backward pass. The scalar objective is L = sum(output * R)
/// for a fixed random R, so dL/dOutput = R; central differences of L estimate dL/dInput and
/// dL/dParameter, computed in double from float forwards.
/// </summary>
internal static class GradientCheck
{
    /// <summary>Returns the worst relative error over the checked input and parameter elements.</summary>
    /// <param name="layer">A built, initialized layer.</param>
    /// <param name="batch">Batch size N.</param>
    /// <param name="seed">Seeds input and R.</param>
    /// <param name="epsilon">Finite-difference step.</param>
    /// <param name="maxChecks">Elements checked per tensor (spread evenly), to keep big layers fast.</param>
    /// <param name="training">Forward in training mode (deterministic context: the same random stream every call).</param>
    /// <param name="inputInit">Optional input values, e.g. to keep clear of ReLU's kink.</param>
    public static double MaxRelativeError(Layer layer, int batch, int seed = 1, float epsilon = 1e-2f, int maxChecks = 60, bool training = true, Func<int, float>? inputInit = null)
    {
        var random = new DeterministicRandom((ulong)seed);
        var input = new Tensor(batch, layer.InputShape);
        var span = input.Span;
        for (var i = 0; i < span.Length; i++)
        {
            span[i] = inputInit?.Invoke(i) ?? ((random.NextFloat() * 2f) - 1f);
        }

        var output = new Tensor(batch, layer.OutputShape);
        var r = new float[output.Length];
        for (var i = 0; i < r.Length; i++)
        {
            r[i] = (random.NextFloat() * 2f) - 1f;
        }

        var context = new StepContext(training, ComputePool.Serial, Seed: 7);
        layer.Forward(output, input, context);
        var dOutput = new Tensor(batch, layer.OutputShape);
        r.CopyTo(dOutput.Span);
        var dInput = new Tensor(batch, layer.InputShape);
        layer.Backward(dInput, dOutput, input, output, context);

        var analyticInput = dInput.Span.ToArray();
        var analyticParams = layer.Parameters.Where(p => p.Trainable).Select(p => p.Gradient.ToArray()).ToList();

        double Objective()
        {
            var o = new Tensor(batch, layer.OutputShape);
            layer.Forward(o, input, context);
            double sum = 0;
            var os = o.Span;
            for (var i = 0; i < os.Length; i++)
            {
                sum += (double)os[i] * r[i];
            }

            return sum;
        }

        double worst = 0;
        void Check(float[] values, int length, float[] analytic)
        {
            var step = Math.Max(1, length / maxChecks);
            for (var i = 0; i < length; i += step)
            {
                var saved = values[i];
                values[i] = saved + epsilon;
                var plus = Objective();
                values[i] = saved - epsilon;
                var minus = Objective();
                values[i] = saved;
                var numeric = (plus - minus) / (2.0 * epsilon);
                var error = Math.Abs(numeric - analytic[i]) / Math.Max(1.0, Math.Abs(numeric) + Math.Abs(analytic[i]));
                worst = Math.Max(worst, error);
            }
        }

        Check(input.Data, input.Length, analyticInput);
        var trainable = layer.Parameters.Where(p => p.Trainable).ToList();
        for (var p = 0; p < trainable.Count; p++)
        {
            Check(trainable[p].Value, trainable[p].Length, analyticParams[p]);
        }

        return worst;
    }
}
