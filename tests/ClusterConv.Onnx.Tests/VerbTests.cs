using System.Text.Json.Nodes;
using ClusterConv.Cli;
using ClusterConv.Cli.Commands;
using ClusterConv.Cli.Inference;
using ClusterConv.Engine.Checkpoints;
using Xunit.Abstractions;

namespace ClusterConv.Onnx.Tests;

public sealed class VerbTests(TrainedRun run, ITestOutputHelper output) : IClassFixture<TrainedRun>
{
    [Fact]
    public void Evaluate_gives_the_same_accuracy_loss_and_confusion_matrix_for_the_checkpoint_and_its_onnx_export()
    {
        var onnx = run.File("lenet5.onnx");
        Assert.Equal(0, CliRunner.Run(ExportCommand.Create(), run.RunDirectory, "--onnx", onnx).ExitCode);
        var fromCheckpoint = Evaluate(run.Checkpoint, "--limit", "3000");
        var fromOnnx = Evaluate(onnx, "--limit", "3000");
        output.WriteLine($"checkpoint: accuracy {fromCheckpoint["accuracy"]}, loss {fromCheckpoint["loss"]}; onnx: accuracy {fromOnnx["accuracy"]}, loss {fromOnnx["loss"]}");
        Assert.Equal(3000, fromCheckpoint["count"]!.GetValue<int>());
        Assert.True(fromCheckpoint["accuracy"]!.GetValue<double>() > 0.5, "80 steps of training beat chance by far");
        Assert.Equal(fromCheckpoint["accuracy"]!.GetValue<double>(), fromOnnx["accuracy"]!.GetValue<double>());
        Assert.Equal(fromCheckpoint["loss"]!.GetValue<double>(), fromOnnx["loss"]!.GetValue<double>(), 1e-5);
        Assert.Equal(fromCheckpoint["confusion_matrix"]!.ToJsonString(), fromOnnx["confusion_matrix"]!.ToJsonString());
        Assert.Equal("T-shirt/top", fromOnnx["classes"]![0]!.GetValue<string>());
    }

    [Fact]
    public void Accuracy_of_the_exported_trained_model_over_the_whole_test_set_equals_the_engines()
    {
        var onnx = run.File("full.onnx");
        File.WriteAllBytes(onnx, OnnxExporter.Export(ModelCheckpoint.LoadFile(run.Checkpoint)));
        using var engine = Classifiers.Open(run.Checkpoint, threads: 2);
        using var runtime = Classifiers.Open(onnx, threads: 2);
        Assert.IsType<EngineClassifier>(engine);
        Assert.IsType<OnnxClassifier>(runtime);
        var a = Evaluation.Run(engine, TestData.Test);
        var b = Evaluation.Run(runtime, TestData.Test);
        output.WriteLine($"10000 test images: engine {a.Accuracy:P2} loss {a.Loss:F6}, ONNX Runtime {b.Accuracy:P2} loss {b.Loss:F6}");
        Assert.Equal(10_000, a.Count);
        Assert.Equal(a.Accuracy, b.Accuracy);
        Assert.Equal(a.Confusion, b.Confusion);
        Assert.Equal(a.Loss, b.Loss, 1e-5);
    }

    [Fact]
    public void Evaluate_prints_accuracy_loss_and_a_confusion_matrix_with_class_names()
    {
        var result = CliRunner.Run(EvaluateCommand.Create(), "--model", run.Checkpoint, "--data", "fashion-mnist", "--limit", "500", "--threads", "2");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("accuracy", result.Out, StringComparison.Ordinal);
        Assert.Contains("loss", result.Out, StringComparison.Ordinal);
        Assert.Contains("9 Ankle boot", result.Out, StringComparison.Ordinal);
        Assert.Contains("500 images", result.Out, StringComparison.Ordinal);
    }

    [Fact]
    public void Export_with_checkpoint_reads_checkpoints_step_N_of_the_run_folder()
    {
        var early = ModelCheckpoint.LoadFile(run.Checkpoint) with { Step = 40 };
        early.Parameters.AsSpan().Clear(); // recognisable: every logit 0
        early.SaveFile(RunCheckpoints.StepPath(run.RunDirectory, 40));
        Assert.EndsWith(Path.Combine("checkpoints", "step-40.ckpt"), RunCheckpoints.StepPath(run.RunDirectory, 40), StringComparison.Ordinal);
        var onnx = run.File("step40.onnx");
        var result = CliRunner.Run(ExportCommand.Create(), run.RunDirectory, "--onnx", onnx, "--checkpoint", "40");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("step 40", result.Out, StringComparison.Ordinal);
        using var classifier = new OnnxClassifier(onnx, 1);
        var logits = new float[10];
        classifier.Logits(TestData.Pixels(0, 1), 1, logits);
        Assert.All(logits, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Export_of_a_missing_checkpoint_names_the_file_and_the_saved_steps()
    {
        var result = CliRunner.Run(ExportCommand.Create(), run.RunDirectory, "--onnx", run.File("x.onnx"), "--checkpoint", "999");
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains(Path.Combine(run.RunDirectory, "checkpoints", "step-999.ckpt"), result.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(run.File("x.onnx")));
    }

    [Fact]
    public void Export_of_a_missing_run_folder_is_a_clear_error()
    {
        var result = CliRunner.Run(ExportCommand.Create(), run.File("no-such-run"), "--onnx", run.File("x.onnx"));
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains("run folder not found", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Export_refuses_an_unsupported_opset_with_a_clear_error()
    {
        var result = CliRunner.Run(ExportCommand.Create(), run.RunDirectory, "--onnx", run.File("x.onnx"), "--opset", "11");
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains("cannot export", result.Error, StringComparison.Ordinal);
        Assert.Contains("opset 11", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Export_with_verify_reports_the_logit_difference_from_the_engine()
    {
        var result = CliRunner.Run(ExportCommand.Create(), run.RunDirectory, "--onnx", run.File("verified.onnx"), "--verify");
        Assert.Equal(0, result.ExitCode);
        output.WriteLine(result.Out);
        Assert.Contains("max |logit difference|", result.Out, StringComparison.Ordinal);
        Assert.True(ExportCommand.Verify(ModelCheckpoint.LoadFile(run.Checkpoint), run.File("verified.onnx")) <= 1e-4f);
    }

    [Fact]
    public void Evaluate_of_a_file_that_is_no_model_is_a_clear_error()
    {
        var path = run.File("junk.onnx");
        File.WriteAllText(path, "not a model");
        var result = CliRunner.Run(EvaluateCommand.Create(), "--model", path, "--data", "fashion-mnist", "--limit", "10");
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains("neither a ClusterConv checkpoint nor an ONNX model", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_on_synthetic_data_uses_its_class_names()
    {
        var result = Evaluate(run.Checkpoint, "--data", "synthetic", "--limit", "200");
        Assert.Equal(200, result["count"]!.GetValue<int>());
        Assert.Equal(Data.SyntheticDataset.ClassNames, result["classes"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(200, result["confusion_matrix"]!.AsArray().SelectMany(row => row!.AsArray()).Sum(v => v!.GetValue<long>()));
    }

    [Fact]
    public void An_onnx_model_without_a_fixed_image_size_is_refused_naming_its_input()
    {
        var model = OnnxExporter.Build(ModelCheckpoint.LoadFile(run.Checkpoint));
        model.Graph.Input[0].Type.TensorType.Shape.Dim[2].DimParam = "height";
        var path = run.File("dynamic-height.onnx");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));
        var result = CliRunner.Run(EvaluateCommand.Create(), "--model", path, "--data", "fashion-mnist", "--limit", "10");
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains("input 'input' must be float32 (batch, C, H, W) with fixed C, H, W", result.Error, StringComparison.Ordinal);
    }

    private static JsonNode Evaluate(string model, params string[] extra)
    {
        var data = extra.Contains("--data") ? [] : new[] { "--data", "fashion-mnist" };
        var result = CliRunner.Run(EvaluateCommand.Create(), ["--model", model, .. data, "--json", "--threads", "2", .. extra]);
        Assert.True(result.ExitCode == 0, result.Error);
        return result.Json;
    }
}
