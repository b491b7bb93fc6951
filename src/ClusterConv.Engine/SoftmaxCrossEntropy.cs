namespace ClusterConv.Engine;

/// <summary>The loss of a batch: mean and sum over its samples, and how many the argmax got right.</summary>
/// <param name="Loss">Mean cross-entropy over the batch (0 for an empty batch).</param>
/// <param name="Correct">Samples whose largest logit (first on ties) is the label.</param>
/// <param name="Sum">Summed cross-entropy, for adding micro-batches up exactly.</param>
public readonly record struct LossResult(double Loss, int Correct, double Sum)
{
    public void Deconstruct(out double loss, out int correct)
    {
        loss = Loss;
        correct = Correct;
    }
}

/// <summary>
/// Softmax followed by cross-entropy against integer labels, from logits. Per sample, with
/// m = max logit: loss = m + log Σ exp(z - m) - z[label] (stable for any logit range), and
/// dLogits = gradientScale · (softmax(z) - onehot(label)).
/// <para>
/// gradientScale is the caller's: 1/N for the mean over this batch; for a micro-batch of a
/// global batch of G samples spread over workers, 1/G, so the workers' gradients add up to the
/// gradient of the global mean loss.
/// </para>
/// </summary>
public static class SoftmaxCrossEntropy
{
    // logits (N, classes), labels (N) -> dLogits (N, classes) (skipped when empty), loss, correct.
    public static LossResult Compute(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int classes, Span<float> dLogits, float gradientScale)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);
        var n = labels.Length;
        if (logits.Length != n * classes)
        {
            throw new ArgumentException($"logits have {logits.Length} values, expected {n} samples x {classes} classes", nameof(logits));
        }

        var withGradient = !dLogits.IsEmpty;
        if (withGradient && dLogits.Length != logits.Length)
        {
            throw new ArgumentException($"dLogits have {dLogits.Length} values, expected {logits.Length} (or none, to skip the gradient)", nameof(dLogits));
        }

        double sum = 0;
        var correct = 0;
        for (var s = 0; s < n; s++)
        {
            var label = labels[s];
            if ((uint)label >= (uint)classes)
            {
                throw new ArgumentOutOfRangeException(nameof(labels), label, $"label of sample {s} is outside [0, {classes})");
            }

            var z = logits.Slice(s * classes, classes);
            var argmax = 0;
            for (var k = 1; k < classes; k++)
            {
                argmax = z[k] > z[argmax] ? k : argmax;
            }

            var max = z[argmax];
            double expSum = 0;
            for (var k = 0; k < classes; k++)
            {
                expSum += Math.Exp((double)z[k] - max);
            }

            sum += max + Math.Log(expSum) - z[label];
            correct += argmax == label ? 1 : 0;
            if (withGradient)
            {
                var dz = dLogits.Slice(s * classes, classes);
                for (var k = 0; k < classes; k++)
                {
                    var p = Math.Exp((double)z[k] - max) / expSum;
                    dz[k] = (float)((p - (k == label ? 1.0 : 0.0)) * gradientScale);
                }
            }
        }

        return new LossResult(n == 0 ? 0 : sum / n, correct, sum);
    }
}
