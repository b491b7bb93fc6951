using System.Net;
using System.Text;

namespace ClusterConv.Reports;

/// <summary>A self-contained HTML page: inline style, images as base64 PNG data URIs, no script and no network.</summary>
public sealed class Html
{
    private readonly StringBuilder body = new();

    public static string Encode(string text) => WebUtility.HtmlEncode(text);

    public Html Raw(string html)
    {
        body.Append(html).Append('\n');
        return this;
    }

    public Html Heading(int level, string text, string? id = null) =>
        Raw(id is null ? $"<h{level}>{Encode(text)}</h{level}>" : $"<h{level} id=\"{id}\">{Encode(text)}</h{level}>");

    public Html Paragraph(string text, string? cssClass = null) =>
        Raw(cssClass is null ? $"<p>{Encode(text)}</p>" : $"<p class=\"{cssClass}\">{Encode(text)}</p>");

    public Html Note(string text) => Paragraph(text, "note");

    public static string Image(byte[] png, string alt, string? title = null) =>
        $"<img src=\"data:image/png;base64,{Convert.ToBase64String(png)}\" alt=\"{Encode(alt)}\"{(title is null ? string.Empty : $" title=\"{Encode(title)}\"")}>";

    public Html Figure(byte[] png, string alt, string? caption = null) =>
        Raw($"<figure>{Image(png, alt)}{(caption is null ? string.Empty : $"<figcaption>{Encode(caption)}</figcaption>")}</figure>");

    public Html Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        var sb = new StringBuilder("<table><thead><tr>");
        foreach (var h in header)
        {
            sb.Append("<th>").Append(Encode(h)).Append("</th>");
        }

        sb.Append("</tr></thead><tbody>");
        foreach (var row in rows)
        {
            sb.Append("<tr>");
            foreach (var cell in row)
            {
                sb.Append("<td>").Append(Encode(cell)).Append("</td>");
            }

            sb.Append("</tr>");
        }

        return Raw(sb.Append("</tbody></table>").ToString());
    }

    public Html OpenSection(string id, string title)
    {
        Raw($"<section id=\"{id}\">");
        return Heading(2, title);
    }

    public Html CloseSection() => Raw("</section>");

    public string Page(string title) =>
        $$"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{Encode(title)}}</title>
        <style>
        body { font-family: "DejaVu Sans", Verdana, sans-serif; margin: 1.5em auto; max-width: 1240px; color: #222; background: #fff; padding: 0 1em; }
        h1 { font-size: 1.6em; margin-bottom: 0.2em; }
        h2 { border-bottom: 2px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
        h3 { margin-bottom: 0.3em; }
        figure { display: inline-block; margin: 0.4em 0.8em 0.4em 0; vertical-align: top; }
        figcaption { font-size: 0.85em; color: #444; max-width: 560px; }
        img { image-rendering: pixelated; }
        table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
        th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
        th { background: #f0f0f0; }
        .note { color: #555; font-size: 0.9em; }
        .answer { font-size: 1.05em; }
        .conclusion { font-size: 1.1em; background: #f3f7fb; border-left: 4px solid #3b75af; padding: 0.6em 0.8em; }
        .question { font-weight: bold; margin-bottom: 0.2em; }
        .row { display: flex; flex-wrap: wrap; gap: 0.8em; align-items: flex-start; }
        nav a { margin-right: 1em; }
        code { background: #f4f4f4; padding: 0 0.2em; }
        </style>
        </head>
        <body>
        {{body}}
        </body>
        </html>

        """;
}
