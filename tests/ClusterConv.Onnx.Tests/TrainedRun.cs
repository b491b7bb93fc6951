using ClusterConv.Cli.Commands;

namespace ClusterConv.Onnx.Tests;

/// <summary>One short real training run (lenet5, 80 steps of Fashion-MNIST through `clusterconv train`), shared by the tests of a class.</summary>
public sealed class TrainedRun : IDisposable
{
    private readonly TempDirectory directory = new();

    public TrainedRun()
    {
        RunDirectory = directory.File("run");
        var result = CliRunner.Run(TrainCommand.Create(), "--model", "lenet5", "--data", "fashion-mnist", "--max-steps", "80", "--test-limit", "500", "--threads", "2", "--out", RunDirectory);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"training failed ({result.ExitCode}): {result.Error}");
        }
    }

    public string RunDirectory { get; }

    public string Checkpoint => Path.Combine(RunDirectory, "model.ckpt");

    public string File(string name) => directory.File(name);

    public void Dispose() => directory.Dispose();
}
