using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ClusterConv.Integration.Tests;

/// <summary>A PromQL expression of a dashboard: a panel target's expr, or a template variable's query.</summary>
public sealed record DashboardQuery(string Dashboard, string Where, string Expr, bool IsVariable);

/// <summary>Reads the PromQL of Grafana dashboards and fills in their variables the way Grafana would.</summary>
public static partial class DashboardQueries
{
    /// <summary>Grafana's built-in interval variables, at this test's 1 s scrape interval.</summary>
    private static readonly Dictionary<string, string> BuiltIns = new()
    {
        ["__rate_interval"] = "1m",
        ["__interval"] = "15s",
        ["__interval_ms"] = "15000",
        ["__range"] = "5m",
        ["__range_s"] = "300",
        ["__range_ms"] = "300000",
    };

    /// <summary>Every panel target (rows' nested panels included) that has an expr, and every query variable.</summary>
    public static IReadOnlyList<DashboardQuery> Read(string file)
    {
        var name = Path.GetFileName(file);
        var root = JsonNode.Parse(File.ReadAllText(file))!;
        var queries = new List<DashboardQuery>();
        foreach (var variable in root["templating"]?["list"]?.AsArray() ?? [])
        {
            if (variable?["type"]?.GetValue<string>() == "query" && QueryText(variable["query"]) is { } q)
            {
                queries.Add(new DashboardQuery(name, $"variable {variable["name"]}", q, IsVariable: true));
            }
        }

        Walk(root["panels"], name, queries);
        return queries;
    }

    /// <summary>Template variables in order: (name, type, query or options), for <see cref="ResolveVariablesAsync"/>.</summary>
    public static IEnumerable<JsonNode> Variables(string file) =>
        (JsonNode.Parse(File.ReadAllText(file))!["templating"]?["list"]?.AsArray() ?? []).Where(v => v is not null)!;

    /// <summary>
    /// The "All" value of each multi-value variable that offers one (Grafana's default selection): its allValue, else ".*".
    /// It stands for the variable where a query matches it as a regex (=~"$name").
    /// </summary>
    public static Dictionary<string, string> AllValues(string file) =>
        Variables(file)
            .Where(v => v["includeAll"]?.GetValue<bool>() == true && v["name"] is not null)
            .ToDictionary(v => v["name"]!.GetValue<string>(), v => v["allValue"]?.GetValue<string>() is { Length: > 0 } a ? a : ".*");

    /// <summary>
    /// A value for each variable: query variables take the first value Prometheus has (a preferred one when present, e.g.
    /// the run's job id), custom ones their first option, interval ones their first interval.
    /// </summary>
    public static async Task<Dictionary<string, string>> ResolveVariablesAsync(string file, PrometheusServer prometheus, IReadOnlyDictionary<string, string> preferred)
    {
        var values = new Dictionary<string, string>(BuiltIns);
        var all = AllValues(file);
        foreach (var v in Variables(file))
        {
            var name = v["name"]?.GetValue<string>() ?? string.Empty;
            var type = v["type"]?.GetValue<string>();
            string? value = null;
            if (type == "query" && QueryText(v["query"]) is { } q)
            {
                var candidates = await EvaluateVariableAsync(Substitute(q, values, all), prometheus);
                value = preferred.TryGetValue(name, out var p) && candidates.Contains(p) ? p : candidates.FirstOrDefault();
            }
            else if (type is "custom" or "interval")
            {
                value = (v["query"]?.GetValue<string>() ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
            }
            else if (type is "constant" or "textbox")
            {
                value = v["query"]?.GetValue<string>();
            }
            else if (type == "datasource")
            {
                value = "prometheus";
            }

            values[name] = value ?? ".+";
        }

        return values;
    }

    /// <summary>label_values(metric, label), label_values(label) and query_result(expr), as Grafana's Prometheus data source runs them.</summary>
    public static async Task<string[]> EvaluateVariableAsync(string query, PrometheusServer prometheus)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(prometheus);
        var labelValues = LabelValues().Match(query.Trim());
        if (labelValues.Success)
        {
            var match = labelValues.Groups["match"].Success ? labelValues.Groups["match"].Value.Trim() : null;
            return await prometheus.LabelValuesAsync(labelValues.Groups["label"].Value, match);
        }

        var queryResult = QueryResult().Match(query.Trim());
        var expr = queryResult.Success ? queryResult.Groups["expr"].Value : query;
        var (status, series, _) = await prometheus.QueryAsync(expr, DateTimeOffset.UtcNow);
        return status == "success" && series > 0 ? ["(result)"] : [];
    }

    /// <summary>$name, ${name}, ${name:format} and [[name]] replaced by their values; =~"$name" by the All value when there is one.</summary>
    public static string Substitute(string expr, IReadOnlyDictionary<string, string> values, IReadOnlyDictionary<string, string> all)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(all);
        expr = RegexMatchOfVariable().Replace(expr, m =>
        {
            var name = m.Groups["a"].Success ? m.Groups["a"].Value : m.Groups["b"].Value;
            return all.TryGetValue(name, out var v) ? $"=~\"{v}\"" : m.Value;
        });
        return VariableReference().Replace(expr, m =>
        {
            var name = m.Groups["a"].Success ? m.Groups["a"].Value : m.Groups["b"].Success ? m.Groups["b"].Value : m.Groups["c"].Value;
            return values.TryGetValue(name, out var v) ? v : m.Value;
        });
    }

    private static string? QueryText(JsonNode? query) => query switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject o => o["query"]?.GetValue<string>(),
        _ => null,
    };

    private static void Walk(JsonNode? panels, string dashboard, List<DashboardQuery> queries)
    {
        foreach (var panel in panels?.AsArray() ?? [])
        {
            if (panel is null)
            {
                continue;
            }

            var title = panel["title"]?.GetValue<string>() ?? $"panel {panel["id"]}";
            foreach (var target in panel["targets"]?.AsArray() ?? [])
            {
                if (target?["expr"]?.GetValue<string>() is { Length: > 0 } expr)
                {
                    queries.Add(new DashboardQuery(dashboard, $"panel '{title}' target {target["refId"]}", expr, IsVariable: false));
                }
            }

            // Collapsed rows keep their panels inside the row.
            Walk(panel["panels"], dashboard, queries);
        }
    }

    [GeneratedRegex(@"^label_values\(\s*(?:(?<match>.+?)\s*,\s*)?(?<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*\)$", RegexOptions.Singleline)]
    private static partial Regex LabelValues();

    [GeneratedRegex(@"^query_result\((?<expr>.+)\)$", RegexOptions.Singleline)]
    private static partial Regex QueryResult();

    [GeneratedRegex(@"\$\{(?<a>[a-zA-Z_][a-zA-Z0-9_]*)(?::[^}]*)?\}|\[\[(?<b>[a-zA-Z_][a-zA-Z0-9_]*)(?::[^\]]*)?\]\]|\$(?<c>[a-zA-Z_][a-zA-Z0-9_]*)")]
    private static partial Regex VariableReference();

    [GeneratedRegex(@"=~\s*""(?:\$\{(?<a>[a-zA-Z_][a-zA-Z0-9_]*)(?::[^}]*)?\}|\$(?<b>[a-zA-Z_][a-zA-Z0-9_]*))""")]
    private static partial Regex RegexMatchOfVariable();
}
