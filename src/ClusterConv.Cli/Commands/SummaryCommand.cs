using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Cli.Commands;

/// <summary>`clusterconv summary`: the Keras-style table of a model (layer, output shape, parameters).</summary>
internal static class SummaryCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A built-in model (keras-cnn, tf-cnn, lenet5) or a Keras JSON file.", Required = true };
        var json = CommonOptions.Json("the summary");
        var verbose = CommonOptions.Verbose();
        var command = new Command("summary", "Print a model's layers, output shapes and parameter counts as Keras does.") { model, json, verbose };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(verbose), _ =>
        {
            var summary = ModelSummary.Create(ModelCatalog.Resolve(parse.GetValue(model)!));
            Console.Out.Write(parse.GetValue(json) ? ToJson(summary).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n" : summary.Render());
            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>{"layers": [{"name", "type", "output_shape", "params"}], "total_params", ...}; output_shape uses null for the batch dimension.</summary>
    public static JsonObject ToJson(ModelSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        var layers = new JsonArray();
        foreach (var row in summary.Rows)
        {
            var shape = new JsonArray { null };
            foreach (var d in row.OutputDims)
            {
                shape.Add(d);
            }

            layers.Add(new JsonObject
            {
                ["name"] = row.Name,
                ["type"] = row.KerasClass,
                ["output_shape"] = shape,
                ["params"] = row.Parameters,
            });
        }

        return new JsonObject
        {
            ["model"] = summary.ModelName,
            ["layers"] = layers,
            ["total_params"] = summary.TotalParameters,
            ["trainable_params"] = summary.TrainableParameters,
            ["non_trainable_params"] = summary.NonTrainableParameters,
        };
    }
}
