using ClusterConv.Cli;
using ClusterConv.Cli.Commands;
using ClusterConv.Cli.Inference;
using ClusterConv.Engine.Checkpoints;
using SkiaSharp;

namespace ClusterConv.Onnx.Tests;

public sealed class PredictTests(TrainedRun run) : IClassFixture<TrainedRun>
{
    private const int Images = 8;
    private const int First = 200;

    [Fact]
    public void Predict_on_PNG_renderings_of_test_images_gives_the_engines_top_class_for_the_checkpoint_and_the_onnx_export()
    {
        var paths = Enumerable.Range(First, Images).Select(i => WriteImage(run.File($"test-{i}.png"), i, SKEncodedImageFormat.Png, scale: 1, invert: false)).ToArray();
        var expected = EngineTopClasses();
        var onnx = run.File("predict.onnx");
        File.WriteAllBytes(onnx, OnnxExporter.Export(ModelCheckpoint.LoadFile(run.Checkpoint)));
        foreach (var model in new[] { run.Checkpoint, onnx })
        {
            var result = CliRunner.Run(PredictCommand.Create(), ["--model", model, "--json", "--top", "3", "--threads", "2", .. paths]);
            Assert.True(result.ExitCode == 0, result.Error);
            var predictions = result.Json.AsArray();
            Assert.Equal(Images, predictions.Count);
            for (var i = 0; i < Images; i++)
            {
                Assert.Equal(paths[i], predictions[i]!["image"]!.GetValue<string>());
                var top = predictions[i]!["predictions"]!.AsArray();
                Assert.Equal(3, top.Count);
                Assert.Equal(expected[i], top[0]!["class"]!.GetValue<int>());
                var probabilities = top.Select(p => p!["probability"]!.GetValue<double>()).ToArray();
                Assert.True(probabilities[0] >= probabilities[1] && probabilities[1] >= probabilities[2] && probabilities.Sum() <= 1 + 1e-9);
                Assert.Equal(Data.DatasetInfo.FashionMnist.ClassNames[expected[i]], top[0]!["name"]!.GetValue<string>());
            }
        }
    }

    [Fact]
    public void A_PNG_of_the_models_size_decodes_to_exactly_the_training_pixel_values()
    {
        var path = WriteImage(run.File("exact.png"), First, SKEncodedImageFormat.Png, scale: 1, invert: false);
        Assert.Equal(TestData.Pixels(First, 1), ImageInput.Load(path, new Engine.SampleShape(1, 28, 28), invert: false), new FloatTolerance(1e-6f));
    }

    [Fact]
    public void A_test_image_rendered_larger_as_inverted_JPEG_is_decoded_inverted_and_resized_to_the_models_input()
    {
        var path = WriteImage(run.File("big-inverted.jpg"), First, SKEncodedImageFormat.Jpeg, scale: 4, invert: true);
        var pixels = ImageInput.Load(path, new Engine.SampleShape(1, 28, 28), invert: true);
        var original = TestData.Pixels(First, 1);
        var meanError = pixels.Zip(original, (a, b) => Math.Abs(a - b)).Average();
        Assert.True(meanError < 0.05, $"mean absolute difference from the original image {meanError}");
        var result = CliRunner.Run(PredictCommand.Create(), "--model", run.Checkpoint, "--invert", "--top", "2", path);
        Assert.Equal(0, result.ExitCode);
        Assert.Contains(path, result.Out, StringComparison.Ordinal);
        Assert.Equal(3, result.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public void Predict_on_a_file_that_is_not_an_image_is_a_clear_error()
    {
        var path = run.File("not-an-image.png");
        File.WriteAllText(path, "hello");
        var result = CliRunner.Run(PredictCommand.Create(), "--model", run.Checkpoint, path);
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains("not an image", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Predict_refuses_class_names_that_do_not_match_the_model()
    {
        var path = WriteImage(run.File("one.png"), First, SKEncodedImageFormat.Png, scale: 1, invert: false);
        var result = CliRunner.Run(PredictCommand.Create(), "--model", run.Checkpoint, "--classes", "cat,dog", path);
        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("2 class names but the model has 10", result.Error, StringComparison.Ordinal);
    }

    private sealed class FloatTolerance(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => MathF.Abs(x - y) <= tolerance;

        public int GetHashCode(float obj) => 0;
    }

    private int[] EngineTopClasses()
    {
        using var engine = new EngineClassifier(ModelCheckpoint.LoadFile(run.Checkpoint), threads: 2);
        var logits = new float[Images * 10];
        engine.Logits(TestData.Pixels(First, Images), Images, logits);
        return TestData.ArgMax(logits, 10);
    }

    /// <summary>Test image <paramref name="index"/> as a grey picture, each pixel a scale×scale block, optionally black on white.</summary>
    private static string WriteImage(string path, int index, SKEncodedImageFormat format, int scale, bool invert)
    {
        var image = TestData.Test.Image(index);
        using var bitmap = new SKBitmap(new SKImageInfo(28 * scale, 28 * scale, SKColorType.Gray8, SKAlphaType.Opaque));
        var pixels = bitmap.GetPixelSpan();
        for (var y = 0; y < 28 * scale; y++)
        {
            for (var x = 0; x < 28 * scale; x++)
            {
                var v = image[((y / scale) * 28) + (x / scale)];
                pixels[(y * bitmap.RowBytes) + x] = invert ? (byte)(255 - v) : v;
            }
        }

        using var data = bitmap.Encode(format, 95);
        using (var file = File.Create(path))
        {
            data.SaveTo(file);
        }

        return path;
    }
}
