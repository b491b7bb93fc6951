using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Onnx;

namespace ClusterConv.Cli.Inference;

/// <summary>Accuracy, mean loss and confusion matrix of a classifier over a data set; confusion[true][predicted].</summary>
public sealed record EvaluationResult(int Count, double Accuracy, double Loss, IReadOnlyList<string> ClassNames, long[][] Confusion);

public static class Evaluation
{
    /// <summary>Runs the first <paramref name="limit"/> samples of <paramref name="data"/> (pixel byte/255 in) in batches.</summary>
    public static EvaluationResult Run(IImageClassifier classifier, Dataset data, int? limit = null, int batchSize = 500, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        ArgumentNullException.ThrowIfNull(data);
        CheckCompatible(classifier, data);
        var classes = classifier.Classes;
        var count = Math.Min(data.Count, limit ?? int.MaxValue);
        var size = data.ImageSize;
        var pixels = new float[batchSize * size];
        var logits = new float[batchSize * classes];
        var labels = new int[batchSize];
        var confusion = Enumerable.Range(0, classes).Select(_ => new long[classes]).ToArray();
        double lossSum = 0;
        for (var start = 0; start < count; start += batchSize)
        {
            cancellation.ThrowIfCancellationRequested();
            var n = Math.Min(batchSize, count - start);
            var bytes = data.Pixels.Span.Slice(start * size, n * size);
            for (var i = 0; i < bytes.Length; i++)
            {
                pixels[i] = bytes[i] / 255f;
            }

            for (var i = 0; i < n; i++)
            {
                labels[i] = data.Label(start + i);
            }

            var batchLogits = logits.AsSpan(0, n * classes);
            classifier.Logits(pixels.AsSpan(0, n * size), n, batchLogits);
            lossSum += SoftmaxCrossEntropy.Compute(batchLogits, labels.AsSpan(0, n), classes, [], 1f).Sum;
            for (var i = 0; i < n; i++)
            {
                confusion[labels[i]][ArgMax(batchLogits.Slice(i * classes, classes))]++;
            }
        }

        var correct = Enumerable.Range(0, classes).Sum(c => confusion[c][c]);
        return new EvaluationResult(count, count == 0 ? 0 : (double)correct / count, count == 0 ? 0 : lossSum / count, data.ClassNames, confusion);
    }

    /// <summary>First index of the largest value, as the training loss counts a correct prediction.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var k = 1; k < values.Length; k++)
        {
            best = values[k] > values[best] ? k : best;
        }

        return best;
    }

    private static void CheckCompatible(IImageClassifier classifier, Dataset data)
    {
        var expected = new SampleShape(1, data.Height, data.Width);
        if (classifier.InputShape != expected)
        {
            throw new UserException($"the model takes inputs of {classifier.InputShape} but {data.Name} images are {expected}");
        }

        if (classifier.Classes != data.ClassCount)
        {
            throw new UserException($"the model has {classifier.Classes} classes but {data.Name} has {data.ClassCount}");
        }
    }
}
