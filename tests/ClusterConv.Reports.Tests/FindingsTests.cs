using System.Text.Json.Nodes;

namespace ClusterConv.Reports.Tests;

/// <summary>The statements of "What the measurements say" follow from the numbers: metrics written here with known properties.</summary>
public sealed class FindingsTests
{
    private const int Filters = 8;
    private const int Records = 20;
    private const int Every = 10;

    /// <summary>One conv layer of 8 filters measured every 10 steps; each property a function of (step, filter).</summary>
    private static RunMetrics Metrics(
        Func<long, int, double>? weight = null,
        Func<long, int, double>? grad = null,
        Func<long, int, double>? sparsity = null,
        Func<long, int, bool>? dead = null,
        string activation = "relu")
    {
        weight ??= (_, _) => 1.0;
        grad ??= (_, _) => 0.01;
        sparsity ??= (_, f) => 0.3 + (0.05 * f);
        dead ??= (_, _) => false;
        var lines = new List<string>();
        for (var r = 0; r < Records; r++)
        {
            long step = r * Every;
            var layer = new JsonObject
            {
                ["type"] = "Conv2D",
                ["activation"] = activation,
                ["grad_norm"] = Values(f => grad(step, f)),
                ["weight_norm"] = Values(f => weight(step, f)),
                ["update_ratio"] = Values(_ => 0.001),
                [activation == "relu" ? "sparsity" : "nonpositive_fraction"] = Values(f => sparsity(step, f)),
                ["dead"] = new JsonArray(Enumerable.Range(0, Filters).Where(f => dead(step, f)).Select(f => (JsonNode)f).ToArray()),
            };
            lines.Add(new JsonObject
            {
                ["type"] = "step", ["epoch"] = 0, ["step"] = step, ["wall_seconds"] = step * 0.01, ["loss"] = 1.0, ["accuracy"] = 0.5, ["lr"] = 0.002,
                ["filters"] = new JsonObject { ["conv2d"] = layer },
            }.ToJsonString());
        }

        return RunMetrics.Read(new StringReader(string.Join('\n', lines)));
    }

    private static JsonArray Values(Func<int, double> value) => new(Enumerable.Range(0, Filters).Select(f => (JsonNode)value(f)).ToArray());

    private static Statement Say(RunMetrics metrics, string key) => Findings.Describe(Findings.Measure(metrics)).Single(s => s.Key == key);

    [Fact]
    public void No_filter_went_to_zero_when_the_smallest_weight_norm_is_well_above_one_percent_of_the_median()
    {
        var statement = Say(Metrics(weight: (_, f) => f == 3 ? 0.5 : 1.0), "weights");
        Assert.StartsWith("No.", statement.Answer, StringComparison.Ordinal);
        Assert.Contains("50% (conv2d, filter 3)", statement.Answer, StringComparison.Ordinal);
    }

    [Fact]
    public void A_filter_whose_weight_norm_falls_below_one_percent_of_the_median_went_to_zero()
    {
        var metrics = Metrics(weight: (step, f) => f == 3 && step >= 100 ? 0.001 : 1.0);
        var facts = Findings.Measure(metrics).Single();
        Assert.Equal(1, facts.NearZeroFilters);
        Assert.Equal(3, facts.MinWeightFilter);
        Assert.StartsWith("Yes, in conv2d: 1 filter(s)", Say(metrics, "weights").Answer, StringComparison.Ordinal);
    }

    [Fact]
    public void Relu_sparsity_is_quoted_as_exact_zeros_and_other_activations_as_at_or_below_zero()
    {
        var relu = Say(Metrics(sparsity: (_, _) => 0.4), "zeros").Answer;
        Assert.Contains("40% of the conv outputs are exactly zero", relu, StringComparison.Ordinal);
        var tanh = Say(Metrics(sparsity: (_, _) => 0.4, activation: "tanh"), "zeros").Answer;
        Assert.StartsWith("tanh zeroes nothing exactly: 40% of the conv outputs are at or below zero", tanh, StringComparison.Ordinal);
    }

    [Fact]
    public void Least_active_filters_that_keep_their_gradient_keep_receiving_gradient()
    {
        // Filters 6 and 7 are the sparsest (the least active quarter) and get as much gradient as the others.
        var statement = Say(Metrics(sparsity: (_, f) => f >= 6 ? 0.9 : 0.3), "gradient");
        Assert.StartsWith("They keep receiving gradient, about as much as the other filters", statement.Answer, StringComparison.Ordinal);
        Assert.Contains("least active living filters (6 and 7", statement.Details[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Least_active_filters_with_a_fifth_of_the_gradient_receive_less_and_with_none_stop_being_updated()
    {
        var less = Say(Metrics(sparsity: (_, f) => f >= 6 ? 0.9 : 0.3, grad: (_, f) => f >= 6 ? 0.002 : 0.01), "gradient");
        Assert.StartsWith("They keep receiving gradient, less than the others in conv2d (median ratio 0.2)", less.Answer, StringComparison.Ordinal);
        var stopped = Say(Metrics(sparsity: (_, f) => f >= 6 ? 0.9 : 0.3, grad: (_, f) => f >= 6 ? 1e-6 : 0.01), "gradient");
        Assert.StartsWith("They stop being updated", stopped.Answer, StringComparison.Ordinal);
    }

    [Fact]
    public void Filters_listed_dead_from_a_step_on_are_counted_dead_from_that_step()
    {
        var metrics = Metrics(dead: (step, f) => (f == 2 && step >= 50) || (f == 5 && step >= 120), grad: (step, f) => (f == 2 && step >= 50) || (f == 5 && step >= 120) ? 0 : 0.01);
        var facts = Findings.Measure(metrics).Single();
        Assert.Equal([new DeadFilter("conv2d", 2, 50, true), new DeadFilter("conv2d", 5, 120, true)], facts.Dead);
        var dead = Say(metrics, "dead");
        Assert.Equal("2 of 8 conv filters (25%) are dead at the last measured step; the first died at step 50, the last at step 120.", dead.Answer);
        Assert.Contains("filter 2 from step 50 and filter 5 from step 120", dead.Details[0], StringComparison.Ordinal);
        Assert.Contains("their gradient norm is exactly 0", Say(metrics, "gradient").Answer, StringComparison.Ordinal);
    }

    [Fact]
    public void A_filter_listed_dead_for_a_while_that_comes_back_is_not_dead_and_a_second_death_counts_from_its_own_start()
    {
        var metrics = Metrics(dead: (step, f) => f == 4 && ((step >= 30 && step < 60) || step >= 150));
        var facts = Findings.Measure(metrics).Single();
        Assert.Equal([new DeadFilter("conv2d", 4, 150, true)], facts.Dead);

        var revived = Metrics(dead: (step, f) => f == 4 && step >= 30 && step < 60);
        Assert.Equal("None: no filter of the 8 in 1 conv layer(s) is dead at the last measured step (1 were listed dead for a while and came back).", Say(revived, "dead").Answer);
    }

    [Fact]
    public void The_conclusion_says_whether_weights_or_outputs_went_to_zero_and_how_many_filters_are_black_for_every_input()
    {
        var healthy = Findings.Conclude(Findings.Measure(Metrics(sparsity: (_, _) => 0.4)));
        Assert.StartsWith("In this run, relu did not set the weights of filters that contribute little to zero", healthy, StringComparison.Ordinal);
        Assert.Contains("What relu zeroes is outputs: 40% of the conv outputs", healthy, StringComparison.Ordinal);
        Assert.EndsWith("No filter is black for every input: each one passes some patches on to the next layer.", healthy, StringComparison.Ordinal);

        var dying = Findings.Conclude(Findings.Measure(Metrics(dead: (step, f) => f < 3 && step >= 40, weight: (step, f) => f == 7 && step > 100 ? 0 : 1)));
        Assert.StartsWith("In this run, 1 conv filter(s) did end with weights near zero", dying, StringComparison.Ordinal);
        Assert.Contains("3 of 8 filters are black for every input (dead)", dying, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_per_filter_statistics_every_statement_says_not_measured()
    {
        var metrics = RunMetrics.Read(new StringReader("""{"type":"step","epoch":0,"step":0,"wall_seconds":0.1,"loss":2.3,"accuracy":0.1,"lr":0.002}"""));
        Assert.All(Findings.Describe(Findings.Measure(metrics)), s => Assert.StartsWith("Not measured", s.Answer, StringComparison.Ordinal));
    }

    [Fact]
    public void A_line_cut_short_is_reported_and_skipped()
    {
        var metrics = RunMetrics.Read(new StringReader("{\"type\":\"step\",\"epoch\":0,\"step\":0,\"wall_seconds\":0.1,\"loss\":2.3,\"accuracy\":0.1,\"lr\":0.002}\n{\"type\":\"step\",\"ep"));
        Assert.Single(metrics.Steps);
        Assert.StartsWith("line 2:", Assert.Single(metrics.Problems), StringComparison.Ordinal);
    }
}
