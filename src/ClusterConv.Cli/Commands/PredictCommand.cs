using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClusterConv.Cli.Inference;
using ClusterConv.Data;
using ClusterConv.Onnx;
using Spectre.Console;

namespace ClusterConv.Cli.Commands;

/// <summary>`clusterconv predict --model FILE IMAGE...`: the top classes of PNG or JPEG images.</summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A ClusterConv checkpoint (.ckpt) or an ONNX file.", Required = true };
        var images = new Argument<string[]>("IMAGE") { Description = "PNG or JPEG files.", Arity = ArgumentArity.OneOrMore };
        var top = CommonOptions.Positive("--top", "Classes to print per image, most probable first.", 3);
        var invert = new Option<bool>("--invert")
        {
            Description = "Invert grey values (1 - v). Fashion-MNIST images are light objects on black; use this for dark objects on a light background.",
        };
        var classes = new Option<string>("--classes")
        {
            Description = "Class names: fashion-mnist (default for 10 classes), mnist, index, or a comma-separated list.",
        };
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json("[{image, predictions: [{class, name, probability}]}]");
        var verbose = CommonOptions.Verbose();
        var command = new Command(
            "predict",
            "Classify PNG or JPEG images with a checkpoint or an ONNX model: top classes with probabilities. Each image is centered on a square black canvas (white with --invert), resized to the model's input, turned grey and scaled to [0, 1].")
        {
            model, images, top, invert, classes, threads, json, verbose,
        };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(verbose), cancellation =>
        {
            using var classifier = Classifiers.Open(parse.GetValue(model)!, parse.GetValue(threads));
            var names = ClassNames(parse.GetValue(classes), classifier.Classes);
            var k = Math.Min(parse.GetValue(top), classifier.Classes);
            var results = new JsonArray();
            var logits = new float[classifier.Classes];
            foreach (var path in parse.GetValue(images)!)
            {
                cancellation.ThrowIfCancellationRequested();
                var pixels = ImageInput.Load(path, classifier.InputShape, parse.GetValue(invert));
                classifier.Logits(pixels, 1, logits);
                var probabilities = Softmax(logits);
                var ranked = Enumerable.Range(0, classifier.Classes).OrderByDescending(c => probabilities[c]).ThenBy(c => c).Take(k).ToArray();
                results.Add(new JsonObject
                {
                    ["image"] = path,
                    ["predictions"] = new JsonArray([.. ranked.Select(c => (JsonNode)new JsonObject { ["class"] = c, ["name"] = names[c], ["probability"] = probabilities[c] })]),
                });
                if (!parse.GetValue(json))
                {
                    Console.Out.WriteLine(path);
                    foreach (var c in ranked)
                    {
                        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {probabilities[c],7:P2}  {c,3}  {names[c]}"));
                    }
                }
            }

            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }

            return ExitCodes.Success;
        }));
        return command;
    }

    internal static IReadOnlyList<string> ClassNames(string? option, int classes)
    {
        IReadOnlyList<string> names = (option ?? (classes == 10 ? "fashion-mnist" : "index")).Trim() switch
        {
            "fashion-mnist" => DatasetInfo.FashionMnist.ClassNames,
            "mnist" => DatasetInfo.Mnist.ClassNames,
            "index" => [.. Enumerable.Range(0, classes).Select(c => c.ToString(CultureInfo.InvariantCulture))],
            var list => [.. list.Split(',', StringSplitOptions.TrimEntries)],
        };
        return names.Count == classes
            ? names
            : throw new UserException($"--classes gives {names.Count} class names but the model has {classes} classes", ExitCodes.Usage);
    }

    private static double[] Softmax(ReadOnlySpan<float> logits)
    {
        var max = double.NegativeInfinity;
        foreach (var z in logits)
        {
            max = Math.Max(max, z);
        }

        var p = new double[logits.Length];
        double sum = 0;
        for (var i = 0; i < p.Length; i++)
        {
            p[i] = Math.Exp(logits[i] - max);
            sum += p[i];
        }

        for (var i = 0; i < p.Length; i++)
        {
            p[i] /= sum;
        }

        return p;
    }
}
