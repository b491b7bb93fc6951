using SkiaSharp;

namespace ClusterConv.Reports;

/// <summary>A small image of values to draw as one tile (row-major, <see cref="Height"/> × <see cref="Width"/>), with an optional caption below it.</summary>
public sealed record Tile(float[] Values, int Height, int Width, string? Caption = null);

/// <summary>How values map to colors.</summary>
public enum TileColors
{
    /// <summary>Weights: blue for negative, white for zero, red for positive (symmetric scale).</summary>
    Diverging,

    /// <summary>Activations: black for zero, orange to yellow for positive, blue for negative (symmetric scale), so exact zeros of relu show as black.</summary>
    ZeroBlack,

    /// <summary>Input images: black to white over [0, scale].</summary>
    Grey,
}

/// <summary>Grids of tiles (filters, feature maps) drawn with SkiaSharp and encoded as PNG.</summary>
public static class ImageGrids
{
    /// <summary>
    /// Draws tiles in rows of <paramref name="columns"/>, each pixel a <paramref name="scale"/>×<paramref name="scale"/>
    /// square, values divided by <paramref name="range"/> (clamped to [−1, 1]). Captions need <see cref="PlotFonts"/>.
    /// </summary>
    public static byte[] Draw(IReadOnlyList<Tile> tiles, int columns, int scale, double range, TileColors colors)
    {
        ArgumentNullException.ThrowIfNull(tiles);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        if (tiles.Count == 0)
        {
            throw new ArgumentException("no tiles to draw", nameof(tiles));
        }

        const int Gap = 4;
        var typeface = PlotFonts.Typeface;
        var captioned = typeface is not null && tiles.Any(t => t.Caption is not null);
        using var font = typeface is null ? null : new SKFont(typeface, 10);
        var tileW = tiles.Max(t => t.Width) * scale;
        var tileH = tiles.Max(t => t.Height) * scale;
        var captionH = captioned ? 13 : 0;
        if (captioned)
        {
            tileW = Math.Max(tileW, (int)Math.Ceiling(tiles.Max(t => font!.MeasureText(t.Caption ?? string.Empty))) + 2);
        }

        columns = Math.Min(columns, tiles.Count);
        var rows = (tiles.Count + columns - 1) / columns;
        var width = (columns * (tileW + Gap)) + Gap;
        var height = (rows * (tileH + captionH + Gap)) + Gap;
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(new SKColor(0xF4, 0xF4, 0xF4));
            using var paint = new SKPaint { IsAntialias = false, Style = SKPaintStyle.Fill };
            using var text = new SKPaint { IsAntialias = true, Color = new SKColor(0x33, 0x33, 0x33) };
            var inverse = range > 0 && double.IsFinite(range) ? 1 / range : 0;
            for (var i = 0; i < tiles.Count; i++)
            {
                var tile = tiles[i];
                var x0 = Gap + ((i % columns) * (tileW + Gap));
                var y0 = Gap + ((i / columns) * (tileH + captionH + Gap));
                var xOffset = x0 + ((tileW - (tile.Width * scale)) / 2);
                for (var y = 0; y < tile.Height; y++)
                {
                    for (var x = 0; x < tile.Width; x++)
                    {
                        paint.Color = Color(tile.Values[(y * tile.Width) + x] * inverse, colors);
                        canvas.DrawRect(xOffset + (x * scale), y0 + (y * scale), scale, scale, paint);
                    }
                }

                if (captioned && tile.Caption is { } caption)
                {
                    var w = font!.MeasureText(caption);
                    canvas.DrawText(caption, x0 + ((tileW - w) / 2), y0 + tileH + 11, SKTextAlign.Left, font, text);
                }
            }
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    private static SKColor Color(double t, TileColors colors)
    {
        if (double.IsNaN(t))
        {
            return new SKColor(0xCC, 0xCC, 0xCC);
        }

        t = Math.Clamp(t, -1, 1);
        switch (colors)
        {
            case TileColors.Diverging:
                // white at 0, #b2182b at +1, #2166ac at -1
                return t >= 0 ? Mix(255, 255, 255, 0xB2, 0x18, 0x2B, t) : Mix(255, 255, 255, 0x21, 0x66, 0xAC, -t);
            case TileColors.ZeroBlack:
                if (t >= 0)
                {
                    // black -> orange (#f46d1e) at 0.5 -> pale yellow (#fff5a0) at 1
                    return t < 0.5 ? Mix(0, 0, 0, 0xF4, 0x6D, 0x1E, t * 2) : Mix(0xF4, 0x6D, 0x1E, 0xFF, 0xF5, 0xA0, (t - 0.5) * 2);
                }

                return Mix(0, 0, 0, 0x5A, 0xB4, 0xFF, -t);
            default:
                var g = (byte)Math.Round(255 * Math.Clamp(t, 0, 1));
                return new SKColor(g, g, g);
        }
    }

    private static SKColor Mix(byte r0, byte g0, byte b0, byte r1, byte g1, byte b1, double t) =>
        new((byte)Math.Round(r0 + ((r1 - r0) * t)), (byte)Math.Round(g0 + ((g1 - g0) * t)), (byte)Math.Round(b0 + ((b1 - b0) * t)));
}
