using ClusterConv.Data;
using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.Optimizers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Onnx.Tests;

/// <summary>
/// A run folder holding a really trained lenet5 (80 Adam steps of 64 Fashion-MNIST images, trained here with the engine
/// directly, so these tests do not depend on how `train` schedules its work) as RUN/model.ckpt and RUN/model.json.
/// Shared by the tests of a class.
/// </summary>
public sealed class TrainedRun : IDisposable
{
    private const int Steps = 80;
    private const int Batch = 64;
    private readonly TempDirectory directory = new();

    public TrainedRun()
    {
        RunDirectory = directory.File("run");
        var model = new Model(BuiltInModels.LeNet5);
        model.Initialize(3);
        var optimizer = Optimizers.Create(new OptimizerSettings { Name = "adam", LearningRate = 0.002f });
        var states = model.TrainableParameters.Select(p => new float[p.Length * optimizer.StateSlotsPerParameter]).ToArray();
        var assembler = new BatchAssembler(TestData.Train, Normalization.Scale);
        var input = assembler.CreateTensor(Batch);
        var labels = new int[Batch];
        var dLogits = new float[Batch * model.Classes];
        using var pool = new ComputePool(2);
        for (var step = 0; step < Steps; step++)
        {
            var indices = Enumerable.Range(step * Batch, Batch).ToArray();
            assembler.Fill(input, labels, indices);
            var context = new StepContext(true, pool, 3, 0, indices);
            var logits = model.Forward(input, context);
            SoftmaxCrossEntropy.Compute(logits.Span, labels, model.Classes, dLogits, 1f / Batch);
            model.Backward(dLogits, context);
            for (var i = 0; i < states.Length; i++)
            {
                var p = model.TrainableParameters[i];
                optimizer.Step(p.Value, p.Gradient, states[i], step + 1, 0.002f, decay: p.Name == "kernel");
            }
        }

        ModelCheckpoint.Capture(model, Steps, 0, InputNormalization.Scale, "adam").SaveFile(Checkpoint);
        System.IO.File.WriteAllText(Path.Combine(RunDirectory, "model.json"), KerasModelWriter.Write(model.Spec));
    }

    public string RunDirectory { get; }

    public string Checkpoint => Path.Combine(RunDirectory, "model.ckpt");

    public string File(string name) => directory.File(name);

    public void Dispose() => directory.Dispose();
}
