using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClusterConv.Cli.Inference;
using ClusterConv.Cli.Training;
using ClusterConv.Onnx;
using Spectre.Console;

namespace ClusterConv.Cli.Commands;

/// <summary>`clusterconv evaluate --model FILE --data D`: accuracy, loss and confusion matrix on a test set.</summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A ClusterConv checkpoint (.ckpt, run by the engine) or an ONNX file (run by ONNX Runtime).", Required = true };
        var data = new Option<string>("--data") { Description = "fashion-mnist (found or downloaded), synthetic, or a folder of IDX files (MNIST format); its test split is used.", DefaultValueFactory = _ => DataSources.FashionMnistName };
        var limit = CommonOptions.OptionalPositive("--limit", "Evaluate only the first N test samples.");
        var threads = CommonOptions.Threads();
        var json = CommonOptions.Json("{accuracy, loss, count, classes, confusion_matrix} (rows: true class, columns: predicted)");
        var verbose = CommonOptions.Verbose();
        var command = new Command("evaluate", "Run a checkpoint or an ONNX model over a test set: accuracy, mean cross-entropy loss and a confusion matrix.")
        {
            model, data, limit, threads, json, verbose,
        };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(verbose), cancellation =>
        {
            var modelPath = parse.GetValue(model)!;
            using var classifier = Classifiers.Open(modelPath, parse.GetValue(threads));
            var splits = DataSources.Load(parse.GetValue(data)!, 0, CommandRunner.ErrorConsole(), cancellation);
            var result = Evaluation.Run(classifier, splits.Test, parse.GetValue(limit), cancellation: cancellation);
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(ToJson(result, modelPath, splits.Test.Name).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                Render(AnsiConsole.Console, result, classifier.Description, splits.Test.Name);
            }

            return ExitCodes.Success;
        }));
        return command;
    }

    public static JsonObject ToJson(EvaluationResult result, string model, string data)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new JsonObject
        {
            ["model"] = model,
            ["data"] = data,
            ["count"] = result.Count,
            ["accuracy"] = result.Accuracy,
            ["loss"] = result.Loss,
            ["classes"] = new JsonArray([.. result.ClassNames.Select(n => (JsonNode)n)]),
            ["confusion_matrix"] = new JsonArray([.. result.Confusion.Select(row => (JsonNode)new JsonArray([.. row.Select(v => (JsonNode)v)]))]),
        };
    }

    private static void Render(IAnsiConsole console, EvaluationResult result, string model, string data)
    {
        console.MarkupLine($"model [bold]{Markup.Escape(model)}[/]");
        console.MarkupLine($"data  {Markup.Escape(data)}, {result.Count:N0} images");
        console.MarkupLine($"accuracy [bold]{result.Accuracy.ToString("P2", CultureInfo.InvariantCulture)}[/]   loss [bold]{result.Loss.ToString("F4", CultureInfo.InvariantCulture)}[/]");
        console.MarkupLine("confusion matrix: rows are the true class, columns the predicted class");
        var table = new Table { Border = TableBorder.Minimal };
        table.AddColumn(new TableColumn("class").NoWrap());
        for (var c = 0; c < result.ClassNames.Count; c++)
        {
            table.AddColumn(new TableColumn(c.ToString(CultureInfo.InvariantCulture)).RightAligned().PadLeft(0));
        }

        table.AddColumn(new TableColumn("recall").RightAligned().NoWrap());
        for (var t = 0; t < result.Confusion.Length; t++)
        {
            var row = result.Confusion[t];
            var total = row.Sum();
            var cells = new List<string> { Markup.Escape($"{t} {result.ClassNames[t]}") };
            cells.AddRange(row.Select((v, p) => p == t ? $"[green]{v}[/]" : v == 0 ? "[grey]0[/]" : v.ToString(CultureInfo.InvariantCulture)));
            cells.Add(total == 0 ? "-" : ((double)row[t] / total).ToString("P1", CultureInfo.InvariantCulture));
            table.AddRow(cells.ToArray());
        }

        console.Write(table);
    }
}
