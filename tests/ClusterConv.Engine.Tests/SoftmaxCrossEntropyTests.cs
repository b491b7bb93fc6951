namespace ClusterConv.Engine.Tests;

public class SoftmaxCrossEntropyTests
{
    [Fact]
    public void Gradient_matches_finite_differences_of_the_scaled_summed_loss()
    {
        const int N = 3, Classes = 5;
        const float Scale = 1f / N;
        var logits = LayerHarness.RandomArray(N * Classes, 4, 3f);
        int[] labels = [2, 0, 4];
        var dLogits = new float[logits.Length];
        SoftmaxCrossEntropy.Compute(logits, labels, Classes, dLogits, Scale);
        const float Epsilon = 1e-3f;
        for (var i = 0; i < logits.Length; i++)
        {
            var saved = logits[i];
            logits[i] = saved + Epsilon;
            var plus = SoftmaxCrossEntropy.Compute(logits, labels, Classes, [], Scale).Sum;
            logits[i] = saved - Epsilon;
            var minus = SoftmaxCrossEntropy.Compute(logits, labels, Classes, [], Scale).Sum;
            logits[i] = saved;
            var numeric = Scale * (plus - minus) / (2 * Epsilon);
            Assert.True(Math.Abs(numeric - dLogits[i]) < 1e-4, $"logit {i}: numeric {numeric}, analytic {dLogits[i]}");
        }
    }

    [Fact]
    public void Equal_logits_give_log_of_the_class_count()
    {
        var result = SoftmaxCrossEntropy.Compute(new float[2 * 10], [3, 7], 10, new float[20], 0.5f);
        Assert.Equal(Math.Log(10), result.Loss, 12);
        Assert.Equal(2 * Math.Log(10), result.Sum, 12);
    }

    [Fact]
    public void Huge_logits_stay_finite_and_shift_invariant()
    {
        float[] small = [1f, 2f, 3f];
        float[] huge = [10001f, 10002f, 10003f];
        var dSmall = new float[3];
        var dHuge = new float[3];
        var a = SoftmaxCrossEntropy.Compute(small, [0], 3, dSmall, 1f);
        var b = SoftmaxCrossEntropy.Compute(huge, [0], 3, dHuge, 1f);
        Assert.True(double.IsFinite(b.Loss));
        Assert.Equal(a.Loss, b.Loss, 9);
        Assert.Equal(dSmall, dHuge);
    }

    [Fact]
    public void Gradient_is_softmax_minus_one_hot_times_the_scale()
    {
        float[] logits = [0f, (float)Math.Log(3)]; // softmax 0.25, 0.75
        var d = new float[2];
        SoftmaxCrossEntropy.Compute(logits, [1], 2, d, 0.5f);
        Assert.Equal(0.125f, d[0], 6);
        Assert.Equal(-0.125f, d[1], 6);
    }

    [Fact]
    public void Micro_batches_scaled_by_the_global_batch_add_up_to_the_global_mean_gradient()
    {
        const int Classes = 4;
        var logits = LayerHarness.RandomArray(6 * Classes, 8, 2f);
        int[] labels = [0, 1, 2, 3, 1, 2];
        var whole = new float[logits.Length];
        var global = SoftmaxCrossEntropy.Compute(logits, labels, Classes, whole, 1f / 6);
        var parts = new float[logits.Length];
        var first = SoftmaxCrossEntropy.Compute(logits.AsSpan(0, 2 * Classes), labels.AsSpan(0, 2), Classes, parts.AsSpan(0, 2 * Classes), 1f / 6);
        var second = SoftmaxCrossEntropy.Compute(logits.AsSpan(2 * Classes), labels.AsSpan(2), Classes, parts.AsSpan(2 * Classes), 1f / 6);
        Assert.Equal(whole, parts);
        Assert.Equal(global.Sum, first.Sum + second.Sum, 9);
        Assert.Equal(global.Correct, first.Correct + second.Correct);
    }

    [Fact]
    public void Correct_counts_samples_whose_first_largest_logit_is_the_label()
    {
        float[] logits = [5f, 5f, 1f, 0f, 2f, 9f, 3f, 3f, 3f];
        var (loss, correct) = SoftmaxCrossEntropy.Compute(logits, [1, 2, 0], 3, [], 1f);
        Assert.True(loss > 0);
        Assert.Equal(2, correct); // tie 5,5 -> class 0 (label 1 wrong); 9 -> class 2 right; all 3 -> class 0 right
    }

    [Fact]
    public void A_label_outside_the_classes_is_rejected_naming_the_sample()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => SoftmaxCrossEntropy.Compute(new float[6], [1, 3], 3, [], 1f));
        Assert.Contains("sample 1", error.Message, StringComparison.Ordinal);
    }
}
