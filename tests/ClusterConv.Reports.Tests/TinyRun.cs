using System.Diagnostics;
using System.Text.Json.Nodes;
using ClusterConv.Cli.Inference;
using ClusterConv.Cli.Output;
using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Optimizers;
using ClusterConv.Engine.Specs;
using ClusterConv.Engine.Statistics;

namespace ClusterConv.Reports.Tests;

/// <summary>
/// A run folder made by a really short training of keras-cnn on the synthetic data, with the engine driven here so the
/// test controls it: metrics.jsonl (per-filter statistics every few steps, written by the trainer's MetricsLog),
/// summary.json, model.ckpt and the step checkpoints checkpoints/step-0.ckpt and step-(Steps/2).ckpt. With
/// <paramref name="deadFilters"/> those filters of the first conv layer start with negative weights and bias: on inputs
/// in [0, 1] they never output a positive value, receive no gradient, and die after the dead window.
/// </summary>
public sealed class TinyRun
{
    public const int Steps = 40;
    public const int Batch = 32;
    public const int StatsEvery = 4;
    public const int DeadWindow = 8;
    public const ulong Seed = 5;

    public TinyRun(string directory, IReadOnlyList<int>? deadFilters = null, bool checkpoints = true)
    {
        Directory = directory;
        System.IO.Directory.CreateDirectory(directory);
        var data = SyntheticDataset.Generate(Seed, Steps * Batch, 200);
        var model = new Model(BuiltInModels.KerasCnn);
        model.Initialize(Seed);
        var conv = (Conv2D)model.Layers[0];
        foreach (var k in deadFilters ?? [])
        {
            var kernel = conv.Parameters[0];
            var size = kernel.Length / kernel.Shape[0];
            foreach (ref var w in kernel.Value.AsSpan(k * size, size))
            {
                w = -Math.Abs(w) - 0.01f;
            }

            conv.Parameters[1].Value[k] = -1f;
        }

        if (checkpoints)
        {
            ModelCheckpoint.Capture(model, 0, 0, InputNormalization.Scale, "adam").SaveFile(RunCheckpoints.StepPath(directory, 0));
        }

        var optimizer = Optimizers.Create(new OptimizerSettings { Name = "adam", LearningRate = 0.002f });
        var states = model.TrainableParameters.Select(p => new float[p.Length * optimizer.StateSlotsPerParameter]).ToArray();
        var collector = new FilterStatisticsCollector(model, DeadWindow);
        var assembler = new BatchAssembler(data.Train, Normalization.Scale);
        var input = assembler.CreateTensor(Batch);
        var labels = new int[Batch];
        var dLogits = new float[Batch * model.Classes];
        var clock = Stopwatch.StartNew();
        double lossSum = 0;
        long correctSum = 0;
        using var pool = new ComputePool(2);
        using (var metrics = new MetricsLog(Path.Combine(directory, "metrics.jsonl")))
        {
            for (var step = 0; step < Steps; step++)
            {
                var indices = Enumerable.Range(step * Batch, Batch).ToArray();
                assembler.Fill(input, labels, indices);
                var context = new StepContext(true, pool, Seed, 0, indices);
                var logits = model.Forward(input, context);
                var (loss, correct) = SoftmaxCrossEntropy.Compute(logits.Span, labels, model.Classes, dLogits, 1f / Batch);
                model.Backward(dLogits, context);
                lossSum += loss;
                correctSum += correct;
                collector.ObserveActivations(step);
                var withStats = step % StatsEvery == 0 || step == Steps - 1;
                if (withStats)
                {
                    collector.BeforeUpdate();
                }

                for (var i = 0; i < states.Length; i++)
                {
                    var p = model.TrainableParameters[i];
                    optimizer.Step(p.Value, p.Gradient, states[i], step + 1, 0.002f, decay: p.Name == "kernel");
                }

                metrics.WriteStep(0, step, clock.Elapsed.TotalSeconds, loss, (double)correct / Batch, 0.002, withStats ? collector.Complete() : null);
                if (checkpoints && step + 1 == Steps / 2)
                {
                    ModelCheckpoint.Capture(model, step + 1, 0, InputNormalization.Scale, "adam").SaveFile(RunCheckpoints.StepPath(directory, step + 1));
                }
            }

            var test = new BatchAssembler(data.Test, Normalization.Scale);
            var testInput = test.CreateTensor(data.Test.Count);
            var testLabels = new int[data.Test.Count];
            test.Fill(testInput, testLabels, Enumerable.Range(0, data.Test.Count).ToArray());
            var testLogits = model.Forward(testInput, new StepContext(false, pool));
            var (testLoss, testCorrect) = SoftmaxCrossEntropy.Compute(testLogits.Span, testLabels, model.Classes, new float[data.Test.Count * model.Classes], 1f / data.Test.Count);
            TestAccuracy = (double)testCorrect / data.Test.Count;
            metrics.WriteEpoch(1, Steps, clock.Elapsed.TotalSeconds, lossSum / Steps, (double)correctSum / (Steps * Batch), testLoss, TestAccuracy);
        }

        ModelCheckpoint.Capture(model, Steps, 1, InputNormalization.Scale, "adam").SaveFile(RunCheckpoints.FinalPath(directory));
        var summary = new JsonObject
        {
            ["model"] = model.Spec.Name,
            ["dataset"] = "synthetic",
            ["epochs"] = 1,
            ["steps"] = Steps,
            ["batch_size"] = Batch,
            ["seed"] = Seed,
            ["test_accuracy"] = TestAccuracy,
            ["wall_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 3),
        };
        File.WriteAllText(Path.Combine(directory, "summary.json"), summary.ToJsonString());
    }

    public string Directory { get; }

    public double TestAccuracy { get; }

    /// <summary>The test split as `report` loads it for a run on the synthetic data (test images do not depend on the train count).</summary>
    public static Dataset TestImages(string dataset, ulong seed) =>
        dataset == "synthetic" ? SyntheticDataset.Generate(seed, 0, 50).Test : throw new InvalidOperationException($"unexpected dataset {dataset}");
}
