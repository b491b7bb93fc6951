using static ClusterConv.Reports.Stats;

namespace ClusterConv.Reports;

/// <summary>When a filter died: listed as dead from <see cref="FromStep"/> (the first measured step of its last unbroken run of dead listings).</summary>
public sealed record DeadFilter(string Layer, int Filter, long FromStep, bool DeadAtEnd);

/// <summary>The measured facts about one Conv2D layer that the statements are generated from.</summary>
public sealed record LayerFacts(
    string Layer,
    string Activation,
    bool ExactZeros,
    int Filters,
    long FirstStep,
    long LastStep,
    double MinWeightNorm,
    int MinWeightFilter,
    double MinWeightNormAtStart,
    double MedianWeightNorm,
    int NearZeroFilters,
    double MeanSparsityStart,
    double MeanSparsityEnd,
    double MinSparsityEnd,
    double MaxSparsityEnd,
    int PartlyZeroFilters,
    int[] LeastActive,
    double LeastActiveSparsity,
    double LeastActiveGradNorm,
    double OtherGradNorm,
    double LeastActiveUpdateRatio,
    double OtherUpdateRatio,
    IReadOnlyList<DeadFilter> Dead,
    double DeadGradNormAfterDeath,
    double DeadUpdateRatioAtEnd,
    int Revived)
{
    /// <summary>Median gradient norm of the least active filters over the layer's other filters (second half of the measured steps).</summary>
    public double GradientRatio => OtherGradNorm > 0 ? LeastActiveGradNorm / OtherGradNorm : double.NaN;
}

/// <summary>One answer of "What the measurements say": the question, the answer in a sentence, and the numbers behind it.</summary>
public sealed record Statement(string Key, string Question, string Answer, IReadOnlyList<string> Details);

/// <summary>
/// Turns a run's per-filter measurements into the statements of "What the measurements say". Every statement is
/// generated from the numbers with these thresholds:
/// <list type="bullet">
/// <item>a filter's weights "went to zero" when its L2 norm at the last measured step is below
/// <see cref="NearZeroFraction"/> of the layer's median filter norm (or below <see cref="AbsoluteZero"/>);</item>
/// <item>the "least active" filters of a layer are the quarter (rounded up) of its living filters (not dead at the last
/// measured step) with the highest mean sparsity over the second half of the measured steps; dead filters are reported
/// apart;</item>
/// <item>their gradient is compared with the other filters' by the ratio of medians over the same steps: below
/// <see cref="StoppedRatio"/> they "stop receiving gradient", below <see cref="ReducedRatio"/> they "receive less",
/// otherwise "as much as the others";</item>
/// <item>a filter "died" when the trainer lists it in "dead" (no positive output for any sample over its dead-filter
/// window, --dead-window); it died at the first measured step of its last unbroken run of listings, and "revived"
/// when it was listed and is no longer at the last measured step.</item>
/// </list>
/// </summary>
public static class Findings
{
    public const double NearZeroFraction = 0.01;
    public const double AbsoluteZero = 1e-6;
    public const double StoppedRatio = 0.01;
    public const double ReducedRatio = 0.5;

    /// <summary>A filter is "partly zero" when between 1% and 99% of its outputs are zero (or at or below zero).</summary>
    public const double PartlyZeroLow = 0.01;
    public const double PartlyZeroHigh = 0.99;

    /// <summary>Facts of every Conv2D layer with statistics, in model order.</summary>
    public static IReadOnlyList<LayerFacts> Measure(RunMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var steps = metrics.StatSteps;
        var result = new List<LayerFacts>();
        foreach (var layer in metrics.Layers)
        {
            var records = steps.Where(s => s.Filters!.ContainsKey(layer)).Select(s => (s.Step, Stats: s.Filters![layer])).ToArray();
            if (records.Length == 0 || records[0].Stats.Type != "Conv2D")
            {
                continue;
            }

            result.Add(MeasureLayer(layer, records));
        }

        return result;
    }

    private static LayerFacts MeasureLayer(string layer, (long Step, LayerStep Stats)[] records)
    {
        var first = records[0];
        var last = records[^1];
        var k = last.Stats.Filters;
        var weights = last.Stats.WeightNorm;
        var median = Median(weights);
        var minFilter = Enumerable.Range(0, k).MinBy(i => double.IsNaN(weights[i]) ? double.MaxValue : weights[i]);
        var nearZero = weights.Count(w => w < Math.Max(NearZeroFraction * median, AbsoluteZero));

        // Second half of the measured steps: what the filters settled into, not the first steps after initialization.
        // Filters dead at the end are reported on their own; the least active are the quarter of the living ones
        // with the highest sparsity, compared with the other living filters.
        var dead = DeadFilters(layer, records);
        var deadAtEnd = dead.Where(d => d.DeadAtEnd).ToArray();
        var deadSet = deadAtEnd.Select(d => d.Filter).ToHashSet();
        var living = Enumerable.Range(0, k).Where(i => !deadSet.Contains(i)).ToArray();
        var late = records[(records.Length / 2)..];
        var meanSparsity = Enumerable.Range(0, k).Select(i => Mean(late.Select(r => r.Stats.Sparsity[i]))).ToArray();
        var leastCount = living.Length == 0 ? 0 : Math.Max(1, (living.Length + 3) / 4);
        var leastActive = living.OrderByDescending(i => meanSparsity[i]).ThenBy(i => i).Take(leastCount).Order().ToArray();
        var leastSet = leastActive.ToHashSet();
        var others = living.Where(i => !leastSet.Contains(i)).ToArray();
        double LateMedian(Func<LayerStep, double[]> values, IEnumerable<int> filters) =>
            Median(late.SelectMany(r => filters.Select(i => values(r.Stats)[i])));
        var deadGrad = deadAtEnd.Length == 0
            ? double.NaN
            : records.SelectMany(r => deadAtEnd.Where(d => r.Step >= d.FromStep).Select(d => r.Stats.GradNorm[d.Filter])).DefaultIfEmpty(double.NaN).Max();

        return new LayerFacts(
            layer,
            last.Stats.Activation,
            last.Stats.ExactZeros,
            k,
            first.Step,
            last.Step,
            weights[minFilter],
            minFilter,
            first.Stats.WeightNorm[minFilter],
            median,
            nearZero,
            Mean(first.Stats.Sparsity),
            Mean(last.Stats.Sparsity),
            last.Stats.Sparsity.Min(),
            last.Stats.Sparsity.Max(),
            last.Stats.Sparsity.Count(v => v > PartlyZeroLow && v < PartlyZeroHigh),
            leastActive,
            Mean(leastActive.Select(i => meanSparsity[i])),
            leastActive.Length > 0 ? LateMedian(s => s.GradNorm, leastActive) : double.NaN,
            others.Length > 0 ? LateMedian(s => s.GradNorm, others) : double.NaN,
            leastActive.Length > 0 ? LateMedian(s => s.UpdateRatio, leastActive) : double.NaN,
            others.Length > 0 ? LateMedian(s => s.UpdateRatio, others) : double.NaN,
            dead,
            deadGrad,
            deadAtEnd.Length == 0 ? double.NaN : deadAtEnd.Max(d => last.Stats.UpdateRatio[d.Filter]),
            dead.Count(d => !d.DeadAtEnd));
    }

    /// <summary>Every filter ever listed dead, with the step its last unbroken run of listings began.</summary>
    public static IReadOnlyList<DeadFilter> DeadFilters(string layer, IReadOnlyList<(long Step, LayerStep Stats)> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var since = new Dictionary<int, long>();
        var ever = new SortedSet<int>();
        var lastSince = new Dictionary<int, long>();
        foreach (var (step, stats) in records)
        {
            var now = stats.Dead.ToHashSet();
            foreach (var f in now)
            {
                ever.Add(f);
                if (!since.ContainsKey(f))
                {
                    since[f] = step;
                }

                lastSince[f] = since[f];
            }

            foreach (var f in since.Keys.Where(f => !now.Contains(f)).ToArray())
            {
                since.Remove(f);
            }
        }

        return ever.Select(f => new DeadFilter(layer, f, lastSince[f], since.ContainsKey(f))).ToArray();
    }

    /// <summary>The four statements, point by point, from the facts of every conv layer.</summary>
    public static IReadOnlyList<Statement> Describe(IReadOnlyList<LayerFacts> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0)
        {
            const string none = "Not measured: metrics.jsonl has no per-filter statistics of a Conv2D layer (train with --stats-every N > 0).";
            return
            [
                new Statement("weights", WeightsQuestion, none, []),
                new Statement("zeros", ZerosQuestion, none, []),
                new Statement("gradient", GradientQuestion, none, []),
                new Statement("dead", DeadQuestion, none, []),
            ];
        }

        return [Weights(layers), Zeros(layers), Gradient(layers), Dead(layers)];
    }

    /// <summary>The question behind the report answered in a few sentences, from the same facts as the statements.</summary>
    public static string Conclude(IReadOnlyList<LayerFacts> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0)
        {
            return "This run has no per-filter statistics of a Conv2D layer, so it cannot answer the question.";
        }

        var relu = layers.Where(l => l.ExactZeros).ToArray();
        var zeroed = layers.Sum(l => l.NearZeroFilters);
        var dead = layers.Sum(l => l.Dead.Count(d => d.DeadAtEnd));
        var total = layers.Sum(l => l.Filters);
        var text = relu.Length > 0
            ? (zeroed == 0
                ? Inv($"In this run, relu did not set the weights of filters that contribute little to zero: every conv filter keeps at least {SmallestShare(layers)} of its layer's median weight norm. ")
                : Inv($"In this run, {zeroed} conv filter(s) did end with weights near zero (below {Percent(NearZeroFraction)} of the median norm). "))
              + Inv($"What relu zeroes is outputs: {Percent(Mean(relu.Select(l => l.MeanSparsityEnd)))} of the conv outputs, patch by patch. ")
            : Inv($"In this run the activation ({List(layers.Select(l => l.Activation).Distinct().ToArray())}) zeroes no output exactly, and no filter's weights are driven to zero by it{(zeroed > 0 ? Inv($" ({zeroed} filter(s) ended near zero anyway)") : string.Empty)}. ");
        text += dead == 0
            ? "No filter is black for every input: each one passes some patches on to the next layer."
            : Inv($"{dead} of {total} filters are black for every input (dead): their outputs, not their weights, are zero")
              + (layers.Where(l => l.Dead.Any(d => d.DeadAtEnd)).All(l => l.DeadGradNormAfterDeath == 0) ? ", and they get exactly zero gradient, so only a change in the layers before them can bring them back" : string.Empty)
              + Inv($"; the other {total - dead} pass some patches on.");
        return text;
    }

    private const string WeightsQuestion = "Did any filter's weights go to zero?";
    private const string ZerosQuestion = "What does the activation actually zero?";
    private const string GradientQuestion = "Do filters that contribute little stop being updated, or keep receiving gradient?";
    private const string DeadQuestion = "How many filters died, and when?";

    private static Statement Weights(IReadOnlyList<LayerFacts> layers)
    {
        var zeroed = layers.Where(l => l.NearZeroFilters > 0).ToArray();
        var details = layers.Select(l => Inv(
            $"{l.Layer}: smallest filter weight norm {G(l.MinWeightNorm)} (filter {l.MinWeightFilter}; {G(l.MinWeightNormAtStart)} at step {l.FirstStep}) against a median of {G(l.MedianWeightNorm)}, i.e. {Percent(l.MinWeightNorm / l.MedianWeightNorm)} of it; {l.NearZeroFilters} of {l.Filters} filters below {Percent(NearZeroFraction)} of the median.")).ToArray();
        var answer = zeroed.Length == 0
            ? Inv($"No. No filter's weights went to zero: at the last measured step the smallest filter weight norm is {SmallestShare(layers)} of its layer's median (threshold for \"zero\": {Percent(NearZeroFraction)}).")
            : Inv($"Yes, in {List(zeroed.Select(l => l.Layer).ToArray())}: {zeroed.Sum(l => l.NearZeroFilters)} filter(s) have a weight norm below {Percent(NearZeroFraction)} of their layer's median.");
        return new Statement("weights", WeightsQuestion, answer, details);
    }

    private static string SmallestShare(IReadOnlyList<LayerFacts> layers)
    {
        var worst = layers.MinBy(l => l.MinWeightNorm / l.MedianWeightNorm)!;
        return Inv($"{Percent(worst.MinWeightNorm / worst.MedianWeightNorm)} ({worst.Layer}, filter {worst.MinWeightFilter})");
    }

    private static Statement Zeros(IReadOnlyList<LayerFacts> layers)
    {
        var details = layers.Select(l => l.ExactZeros
            ? Inv($"{l.Layer} ({l.Activation}): {Percent(l.MeanSparsityEnd)} of outputs exactly zero at step {l.LastStep} (per filter {Percent(l.MinSparsityEnd)} to {Percent(l.MaxSparsityEnd)}), {Percent(l.MeanSparsityStart)} at step {l.FirstStep}.")
            : Inv($"{l.Layer} ({l.Activation}): {Percent(l.MeanSparsityEnd)} of outputs at or below zero at step {l.LastStep} (per filter {Percent(l.MinSparsityEnd)} to {Percent(l.MaxSparsityEnd)}), {Percent(l.MeanSparsityStart)} at step {l.FirstStep}; {l.Activation} gives no exact zeros.")).ToArray();
        var relu = layers.Where(l => l.ExactZeros).ToArray();
        var weightsKept = layers.All(l => l.NearZeroFilters == 0);
        string answer;
        if (relu.Length > 0)
        {
            var mean = Mean(relu.Select(l => l.MeanSparsityEnd));
            answer = Inv($"relu zeroes activations, not weights: on average {Percent(mean)} of the conv outputs are exactly zero at the last measured step (per layer {List(relu.Select(l => Percent(l.MeanSparsityEnd)).ToArray())}), where a filter's response to a patch is negative")
                + (weightsKept ? ", while every filter keeps non-zero weights." : ".")
                + Inv($" {relu.Sum(l => l.PartlyZeroFilters)} of {relu.Sum(l => l.Filters)} relu filters are zero on some positions and images and positive on others (between {Percent(PartlyZeroLow)} and {Percent(PartlyZeroHigh)} zeros): a filter is switched off patch by patch, not as a whole.");
        }
        else
        {
            var mean = Mean(layers.Select(l => l.MeanSparsityEnd));
            answer = Inv($"{List(layers.Select(l => l.Activation).Distinct().ToArray())} zeroes nothing exactly: {Percent(mean)} of the conv outputs are at or below zero at the last measured step, and they still pass a (scaled) signal and gradient on.");
        }

        return new Statement("zeros", ZerosQuestion, answer, details);
    }

    private static Statement Gradient(IReadOnlyList<LayerFacts> layers)
    {
        var details = layers.Select(l => Inv(
            $"{l.Layer}: the {l.LeastActive.Length} least active living filters ({List(l.LeastActive)}; mean sparsity {Percent(l.LeastActiveSparsity)}) have a median gradient norm of {G(l.LeastActiveGradNorm)} against {G(l.OtherGradNorm)} for the others ({Verdict(l.GradientRatio)}, ratio {G(l.GradientRatio)}); median update ratio {G(l.LeastActiveUpdateRatio)} against {G(l.OtherUpdateRatio)}.")).ToArray();
        var measured = layers.Where(l => !double.IsNaN(l.GradientRatio)).ToArray();
        var stopped = measured.Where(l => l.GradientRatio < StoppedRatio).ToArray();
        var reduced = measured.Where(l => l.GradientRatio >= StoppedRatio && l.GradientRatio < ReducedRatio).ToArray();
        var answer = measured.Length == 0
            ? "Not measured: no layer has living filters to compare."
            : stopped.Length == measured.Length
            ? "They stop being updated: in every conv layer the least active living filters receive (almost) no gradient."
            : stopped.Length > 0
                ? Inv($"In {List(stopped.Select(l => l.Layer).ToArray())} the least active filters receive (almost) no gradient and stop being updated; in the other layers they keep receiving gradient.")
                : reduced.Length > 0
                    ? Inv($"They keep receiving gradient, less than the others in {List(reduced.Select(l => l.Layer).ToArray())} (median ratio {List(reduced.Select(l => G(l.GradientRatio)).ToArray())}): {Why(measured)}")
                    : Inv($"They keep receiving gradient, about as much as the other filters: {Why(measured)}");
        var deadGrad = layers.Where(l => l.Dead.Any(d => d.DeadAtEnd)).ToArray();
        if (deadGrad.Length > 0)
        {
            var largest = deadGrad.Max(l => l.DeadGradNormAfterDeath);
            var moved = deadGrad.Max(l => l.DeadUpdateRatioAtEnd);
            answer += largest == 0
                ? Inv($" Dead filters are the exception: from the step they died on, their gradient norm is exactly 0 (relu passes no gradient where its output is zero), so the loss no longer pulls on them; their largest update ratio at the last measured step is {G(moved)}{(moved > 0 ? " (the optimizer's momentum and weight decay, not the loss)" : string.Empty)}.")
                : Inv($" Dead filters: the largest gradient norm a dead filter received after it died is {G(largest)}.");
        }

        return new Statement("gradient", GradientQuestion, answer, details);
    }

    private static string Why(IReadOnlyList<LayerFacts> layers) =>
        Inv($"a filter whose output is zero on {(layers.Min(l => l.LeastActiveSparsity) > 0.5 ? "most" : "many")} patches (the least active have {List(layers.Select(l => Percent(l.LeastActiveSparsity)).ToArray())} zeros) still learns from the patches where it is positive.");

    private static string Verdict(double ratio) =>
        double.IsNaN(ratio) ? "no comparison" : ratio < StoppedRatio ? "stopped" : ratio < ReducedRatio ? "less gradient" : "as much gradient";

    private static Statement Dead(IReadOnlyList<LayerFacts> layers)
    {
        var total = layers.Sum(l => l.Filters);
        var deadNow = layers.SelectMany(l => l.Dead.Where(d => d.DeadAtEnd)).ToArray();
        var details = layers.Select(l =>
        {
            var d = l.Dead.Where(x => x.DeadAtEnd).ToArray();
            var text = d.Length == 0
                ? Inv($"{l.Layer}: none of {l.Filters} dead at step {l.LastStep}")
                : Inv($"{l.Layer}: {d.Length} of {l.Filters} dead at step {l.LastStep}: {List(d.Select(x => Inv($"filter {x.Filter} from step {x.FromStep}")).ToArray())}");
            return text + (l.Revived > 0 ? Inv($"; {l.Revived} listed dead earlier came back.") : ".");
        }).ToArray();
        var answer = deadNow.Length == 0
            ? Inv($"None: no filter of the {total} in {layers.Count} conv layer(s) is dead at the last measured step")
                + (layers.Sum(l => l.Revived) > 0 ? Inv($" ({layers.Sum(l => l.Revived)} were listed dead for a while and came back).") : ".")
            : Inv($"{deadNow.Length} of {total} conv filters ({Percent((double)deadNow.Length / total)}) are dead at the last measured step; the first died at step {deadNow.Min(d => d.FromStep)}, the last at step {deadNow.Max(d => d.FromStep)}.");
        return new Statement("dead", DeadQuestion, answer, details);
    }
}
