using ClusterConv.Engine;
using SkiaSharp;

namespace ClusterConv.Cli.Inference;

/// <summary>
/// Turns a PNG or JPEG file into a model input, decoded by SkiaSharp: the picture is centered on a square canvas
/// (aspect ratio kept; the margin and any transparency take the background colour, black, or white with
/// <c>invert</c>), resized to the model's H×W (mipmapped linear filtering; none when the size already fits),
/// converted to grey with the Rec. 601 luma weights (0.299 R + 0.587 G + 0.114 B) and scaled to [0, 1].
/// Fashion-MNIST images are light objects on a black background: a photo of a dark object on a light background
/// needs <c>invert</c> (1 − value) to look like the training data.
/// </summary>
public static class ImageInput
{
    // pixels (H, W) in [0, 1] <- image file
    public static float[] Load(string path, SampleShape shape, bool invert)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (shape.C != 1)
        {
            throw new UserException($"the model takes {shape.C} input channels; predict feeds grey images (1 channel) only");
        }

        if (!File.Exists(path))
        {
            throw new UserException($"image not found: '{path}'");
        }

        using var image = SKImage.FromEncodedData(path)
            ?? throw new UserException($"'{path}': not an image SkiaSharp can decode (PNG or JPEG expected)");
        var side = Math.Max(image.Width, image.Height);
        using var square = new SKBitmap(new SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(square))
        {
            canvas.Clear(invert ? SKColors.White : SKColors.Black);
            canvas.DrawImage(image, (side - image.Width) / 2, (side - image.Height) / 2, SKSamplingOptions.Default); // integer offset: an exact copy
        }

        using var sized = square.Width == shape.W && square.Height == shape.H
            ? square.Copy()
            : square.Resize(new SKImageInfo(shape.W, shape.H, SKColorType.Rgba8888, SKAlphaType.Premul), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear))
              ?? throw new UserException($"'{path}': could not resize to {shape.W}x{shape.H}");
        var pixels = new float[shape.H * shape.W];
        var bytes = sized.GetPixelSpan();
        for (var i = 0; i < pixels.Length; i++)
        {
            var luma = ((0.299f * bytes[4 * i]) + (0.587f * bytes[(4 * i) + 1]) + (0.114f * bytes[(4 * i) + 2])) / 255f;
            luma = Math.Clamp(luma, 0f, 1f);
            pixels[i] = invert ? 1f - luma : luma;
        }

        return pixels;
    }
}
