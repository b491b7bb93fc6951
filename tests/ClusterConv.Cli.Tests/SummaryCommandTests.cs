using System.Text.Json;

namespace ClusterConv.Cli.Tests;

public class SummaryCommandTests
{
    [Fact]
    public void Json_summary_of_keras_cnn_lists_each_layer_with_keras_counts()
    {
        var result = CliRunner.Run("summary", "--model", "keras-cnn", "--json");
        Assert.Equal(0, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        Assert.Equal(225_034, root.GetProperty("total_params").GetInt64());
        var layers = root.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"], layers.Select(l => l.GetProperty("type").GetString()));
        Assert.Equal(320, layers[0].GetProperty("params").GetInt64());
        Assert.Equal(["null", "26", "26", "32"], layers[0].GetProperty("output_shape").EnumerateArray().Select(d => d.GetRawText()));
        Assert.Equal(layers.Sum(l => l.GetProperty("params").GetInt64()), root.GetProperty("total_params").GetInt64());
    }

    [Fact]
    public void Text_summary_prints_the_total_as_keras_does()
    {
        var result = CliRunner.Run("summary", "--model", "tf-cnn");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("Total params: 3,274,634", result.Stdout);
    }

    [Fact]
    public void A_model_file_with_an_unknown_layer_is_refused_naming_file_layer_and_field()
    {
        var directory = CliRunner.TempDirectory();
        try
        {
            var path = Path.Combine(directory.FullName, "bad.json");
            File.WriteAllText(path, """
                {"class_name": "Sequential", "config": {"name": "m", "layers": [
                  {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [null, 28, 28, 1]}},
                  {"class_name": "Conv3D", "config": {"name": "mystery"}}]}}
                """);
            var result = CliRunner.Run("summary", "--model", path);
            Assert.Equal(2, result.ExitCode);
            var error = Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains(path, error);
            Assert.Contains("mystery", error);
            Assert.Contains("Conv3D", error);
            Assert.DoesNotContain("   at ", result.Stderr);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void An_unknown_built_in_name_lists_the_known_ones()
    {
        var result = CliRunner.Run("summary", "--model", "resnet9000");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("keras-cnn", result.Stderr);
    }
}
