using SkiaSharp;

namespace ClusterConv.Reports;

/// <summary>
/// Fonts for plots and image labels. SkiaSharp's Linux assets without dependencies (the ones this solution ships) carry
/// no fontconfig, so Skia finds no system font by name and text would not be drawn: the report loads DejaVu Sans (Debian
/// package fonts-dejavu-core) from its file and registers it with ScottPlot. Without it plots are drawn without text
/// and <see cref="Missing"/> says so.
/// </summary>
public static class PlotFonts
{
    public const string Family = "DejaVu Sans";

    private static readonly string[] Directories =
    [
        "/usr/share/fonts/truetype/dejavu",
        "/usr/share/fonts/dejavu",
        "/usr/share/fonts/TTF",
        "/usr/local/share/fonts",
    ];

    private static readonly Lazy<SKTypeface?> Loaded = new(Load);

    /// <summary>The regular face, or null when no DejaVu Sans file was found.</summary>
    public static SKTypeface? Typeface => Loaded.Value;

    /// <summary>A sentence for the report when text in images cannot be drawn; null when it can.</summary>
    public static string? Missing => Typeface is null ? "DejaVu Sans was not found (install the Debian package fonts-dejavu-core): plot text is missing." : null;

    public static void EnsureRegistered() => _ = Loaded.Value;

    private static SKTypeface? Load()
    {
        var regular = Find("DejaVuSans.ttf");
        if (regular is null)
        {
            return null;
        }

        ScottPlot.Fonts.AddFontFile(Family, regular, bold: false, italic: false);
        var bold = Find("DejaVuSans-Bold.ttf");
        ScottPlot.Fonts.AddFontFile(Family, bold ?? regular, bold: true, italic: false);
        ScottPlot.Fonts.Default = Family;
        return SKTypeface.FromFile(regular);
    }

    private static string? Find(string file) =>
        Directories.Select(d => Path.Combine(d, file)).FirstOrDefault(File.Exists);
}
