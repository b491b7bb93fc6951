using System.Diagnostics;
using ClusterConv.Cli.Output;
using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.Optimizers;
using ClusterConv.Engine.Statistics;

namespace ClusterConv.Cli.Training;

/// <summary>Progress of a training run, for a display; all callbacks come from the training thread.</summary>
public interface ITrainingObserver
{
    void EpochStarted(int epoch, int epochs, long stepsInEpoch);

    void StepCompleted(int epoch, long stepInEpoch, double loss, double samplesPerSecond);

    void EpochCompleted(EpochResult result);
}

public sealed record EpochResult(int Epoch, long Step, double WallSeconds, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy);

public sealed record TrainResult(
    IReadOnlyList<EpochResult> Epochs,
    long Steps,
    double WallSeconds,
    double TrainSeconds,
    long TrainSamples,
    string WeightsSha256,
    int ParameterCount,
    double MedianStepSeconds = 0);

/// <summary>
/// Trains a model in this process with the engine: one optimizer over the whole parameter vector,
/// per-filter statistics every few steps, evaluation after each epoch. Writes metrics.jsonl as it goes.
/// </summary>
public sealed class LocalTrainer
{
    private readonly TrainSettings settings;
    private readonly Model model;
    private readonly DataSplits data;
    private readonly ITrainingObserver observer;

    public LocalTrainer(TrainSettings settings, Model model, DataSplits data, ITrainingObserver observer)
    {
        this.settings = settings;
        this.model = model;
        this.data = data;
        this.observer = observer;
    }

    /// <param name="metrics">metrics.jsonl of the run.</param>
    /// <param name="cancellation">Stops between steps.</param>
    /// <param name="checkpointDirectory">Run folder to write checkpoints/step-N.ckpt into after every epoch, or null.</param>
    public TrainResult Run(MetricsLog metrics, CancellationToken cancellation, string? checkpointDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        using var pool = new ComputePool(settings.Threads);
        model.Initialize(settings.Seed);

        var optimizer = Optimizers.Create(OptimizerFor(settings));
        var schedule = LearningRateSchedules.Create(settings.Schedule, settings.BaseLearningRate, TotalSteps());
        var parameters = model.TrainableParameters;
        var offsets = new int[parameters.Count];
        for (int i = 0, offset = 0; i < parameters.Count; i++)
        {
            offsets[i] = offset;
            offset += parameters[i].Length;
        }

        var state = new float[(long)model.TrainableParameterCount * optimizer.StateSlotsPerParameter];
        var collector = new FilterStatisticsCollector(model, settings.DeadWindow);

        var train = data.Train;
        var trainCount = Math.Min(train.Count, settings.TrainLimit ?? int.MaxValue);
        var batchSize = settings.BatchSize;
        var stepsPerEpoch = (trainCount + batchSize - 1) / batchSize;
        var assembler = new BatchAssembler(train, Normalization.Scale, settings.Augment ? new Augmentation(MaxShift: 2, HorizontalFlip: data.Train.Name.Contains("Fashion", StringComparison.OrdinalIgnoreCase)) : Augmentation.None, settings.Seed);
        var input = new Tensor(batchSize, model.InputShape);
        var labels = new int[batchSize];
        var dLogits = new float[batchSize * model.Classes];

        var wall = Stopwatch.StartNew();
        var trainClock = new Stopwatch();
        var stepSeconds = new List<double>();
        long step = 0;
        long samples = 0;
        var epochs = new List<EpochResult>();
        for (var epoch = 0; epoch < settings.Epochs && !Done(step); epoch++)
        {
            var order = EpochOrder.Permutation(trainCount, settings.Seed, epoch);
            observer.EpochStarted(epoch, settings.Epochs, stepsPerEpoch);
            double lossSum = 0;
            long correct = 0, seen = 0;
            var epochStart = trainClock.Elapsed;
            for (var b = 0; b < stepsPerEpoch && !Done(step); b++)
            {
                cancellation.ThrowIfCancellationRequested();
                var stepStarted = trainClock.Elapsed;
                trainClock.Start();
                var indices = order.AsSpan(b * batchSize, Math.Min(batchSize, trainCount - (b * batchSize))).ToArray();
                var n = indices.Length;
                input.Resize(n);
                assembler.Fill(input, labels.AsSpan(0, n), indices, epoch);
                var context = new StepContext(true, pool, settings.Seed, epoch, indices);
                var logits = model.Forward(input, context);
                var (batchLoss, batchCorrect) = SoftmaxCrossEntropy.Compute(logits.Span, labels.AsSpan(0, n), model.Classes, dLogits.AsSpan(0, n * model.Classes), 1f / n);
                if (!double.IsFinite(batchLoss))
                {
                    throw new UserException($"training diverged: the loss of step {step} (epoch {epoch + 1}) is {batchLoss}; lower --lr", ExitCodes.TrainingFailed);
                }

                model.Backward(dLogits.AsSpan(0, n * model.Classes), context);
                var withStats = settings.StatsEvery > 0 && step % settings.StatsEvery == 0;
                collector.ObserveActivations(step, countAll: withStats);
                if (withStats)
                {
                    collector.BeforeUpdate();
                }

                var lr = schedule.At(step);
                for (var i = 0; i < parameters.Count; i++)
                {
                    var p = parameters[i];
                    var slots = optimizer.StateSlotsPerParameter;
                    optimizer.Step(p.Value, p.Gradient, state.AsSpan(offsets[i] * slots, p.Length * slots), step + 1, lr, decay: p.Name == "kernel");
                }

                trainClock.Stop();
                stepSeconds.Add((trainClock.Elapsed - stepStarted).TotalSeconds);
                lossSum += batchLoss * n;
                correct += batchCorrect;
                seen += n;
                samples += n;
                var stats = withStats ? collector.Complete() : null;
                if (stats is not null || (settings.LogEvery > 0 && step % settings.LogEvery == 0))
                {
                    metrics.WriteStep(epoch, step, wall.Elapsed.TotalSeconds, batchLoss, (double)batchCorrect / n, lr, stats);
                }

                step++;
                var epochTrainSeconds = (trainClock.Elapsed - epochStart).TotalSeconds;
                observer.StepCompleted(epoch, b + 1, batchLoss, seen / Math.Max(epochTrainSeconds, 1e-9));
            }

            var (testLoss, testAccuracy) = Evaluate(pool);
            var result = new EpochResult(epoch + 1, step, wall.Elapsed.TotalSeconds, lossSum / Math.Max(seen, 1), (double)correct / Math.Max(seen, 1), testLoss, testAccuracy);
            metrics.WriteEpoch(result.Epoch, result.Step, result.WallSeconds, result.TrainLoss, result.TrainAccuracy, result.TestLoss, result.TestAccuracy);
            if (checkpointDirectory is not null)
            {
                // The filters as they were at each epoch's end, for the report (init, midway, end).
                ModelCheckpoint.Capture(model, step, epoch + 1, InputNormalization.Scale, settings.Optimizer).SaveFile(Inference.RunCheckpoints.StepPath(checkpointDirectory, step));
            }

            epochs.Add(result);
            observer.EpochCompleted(result);
        }

        return new TrainResult(epochs, step, wall.Elapsed.TotalSeconds, trainClock.Elapsed.TotalSeconds, samples, model.WeightsSha256(), model.ParameterCount, Median.Of(stepSeconds));
    }

    /// <summary>Mean loss and accuracy over the test split, in inference mode.</summary>
    public (double Loss, double Accuracy) Evaluate(ComputePool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        var test = data.Test;
        var count = Math.Min(test.Count, settings.TestLimit ?? int.MaxValue);
        const int EvalBatch = 500;
        var assembler = new BatchAssembler(test, Normalization.Scale);
        var input = new Tensor(EvalBatch, model.InputShape);
        var labels = new int[EvalBatch];
        var dLogits = new float[EvalBatch * model.Classes];
        var context = new StepContext(false, pool, settings.Seed);
        double lossSum = 0;
        long correct = 0;
        for (var start = 0; start < count; start += EvalBatch)
        {
            var n = Math.Min(EvalBatch, count - start);
            var indices = Enumerable.Range(start, n).ToArray();
            input.Resize(n);
            assembler.Fill(input, labels.AsSpan(0, n), indices);
            var logits = model.Forward(input, context);
            var (loss, right) = SoftmaxCrossEntropy.Compute(logits.Span, labels.AsSpan(0, n), model.Classes, dLogits.AsSpan(0, n * model.Classes), 1f / n);
            lossSum += loss * n;
            correct += right;
        }

        return (lossSum / Math.Max(count, 1), (double)correct / Math.Max(count, 1));
    }

    private static OptimizerSettings OptimizerFor(TrainSettings s) => new() { Name = s.Optimizer, LearningRate = s.BaseLearningRate };

    private long TotalSteps()
    {
        var trainCount = Math.Min(data.Train.Count, settings.TrainLimit ?? int.MaxValue);
        var total = (long)settings.Epochs * ((trainCount + settings.BatchSize - 1) / settings.BatchSize);
        return settings.MaxSteps is { } max ? Math.Min(max, total) : total;
    }

    private bool Done(long step) => settings.MaxSteps is { } max && step >= max;
}
