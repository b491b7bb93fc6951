using System.CommandLine;
using ClusterConv.Cli.Inference;
using ClusterConv.Cli.Output;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.IO;
using ClusterConv.Onnx;

namespace ClusterConv.Cli.Commands;

/// <summary>`clusterconv export RUN_DIR --onnx FILE`: a run's weights as an ONNX model.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var runDir = new Argument<string>("RUN_DIR") { Description = "Run folder written by train (holds model.ckpt)." };
        var onnx = new Option<string>("--onnx") { Description = "ONNX file to write (replaced atomically).", Required = true };
        var checkpoint = new Option<long?>("--checkpoint")
        {
            Description = "Export the periodic checkpoint of this step, RUN_DIR/checkpoints/step-STEP.ckpt, instead of the final weights RUN_DIR/model.ckpt.",
        };
        checkpoint.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<long?>() is < 0)
            {
                r.AddError("--checkpoint must be a step number (0 or more)");
            }
        });
        var opset = new Option<int>("--opset")
        {
            Description = $"ONNX opset to write, {OnnxExporter.MinOpset} to {OnnxExporter.MaxOpset} (GELU is the Gelu operator from 20, Erf arithmetic below).",
            DefaultValueFactory = _ => OnnxExporter.DefaultOpset,
        };
        var verify = new Option<bool>("--verify") { Description = "Run the written file with ONNX Runtime on a few test-pattern images and print the largest logit difference from the engine." };
        var verbose = CommonOptions.Verbose();
        var command = new Command(
            "export",
            "Write a run's model as ONNX: input 'input' (batch, C, H, W) pixels byte/255 with the training normalization inside, output 'logits'.")
        {
            runDir, onnx, checkpoint, opset, verify, verbose,
        };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(verbose), _ =>
        {
            var source = RunCheckpoints.Resolve(parse.GetValue(runDir)!, parse.GetValue(checkpoint));
            var loaded = ModelCheckpoint.LoadFile(source);
            var target = parse.GetValue(onnx)!;
            byte[] bytes;
            try
            {
                bytes = OnnxExporter.Export(loaded, parse.GetValue(opset));
            }
            catch (OnnxExportException e)
            {
                throw new UserException($"cannot export '{source}' to ONNX: {e.Message}", e);
            }

            AtomicFile.Write(target, stream => stream.Write(bytes));
            Console.Out.WriteLine($"wrote {target}: model '{loaded.Model.Name}' from {source} (step {loaded.Step}), ONNX opset {parse.GetValue(opset)}, {bytes.Length:N0} bytes, normalization {loaded.Normalization.Name}");
            if (parse.GetValue(verify))
            {
                Console.Out.WriteLine($"verify: ONNX Runtime vs engine on 16 test-pattern images, max |logit difference| = {Verify(loaded, target):E2}");
            }

            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>Largest absolute logit difference between the engine and ONNX Runtime on deterministic pseudo-random images.</summary>
    internal static float Verify(ModelCheckpoint checkpoint, string onnxPath)
    {
        using var engine = new EngineClassifier(checkpoint, threads: 1);
        using var runtime = new OnnxClassifier(onnxPath, threads: 1);
        const int N = 16;
        var pixels = new float[N * engine.InputShape.Size];
        var random = new Engine.DeterministicRandom(12345);
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = random.NextFloat();
        }

        var a = new float[N * engine.Classes];
        var b = new float[N * engine.Classes];
        engine.Logits(pixels, N, a);
        runtime.Logits(pixels, N, b);
        var max = 0f;
        for (var i = 0; i < a.Length; i++)
        {
            max = MathF.Max(max, MathF.Abs(a[i] - b[i]));
        }

        return max;
    }
}
