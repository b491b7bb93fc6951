using ClusterConv.Engine.Layers;

namespace ClusterConv.Engine.Statistics;

/// <summary>
/// Per-filter statistics of one Conv2D layer (per unit for Dense) at one step, as plain values.
/// Index i of every array is filter (output channel) i.
/// </summary>
/// <param name="Layer">Layer name.</param>
/// <param name="LayerType">"Conv2D" or "Dense".</param>
/// <param name="GradientNorm">L2 norm of each filter's kernel gradient (bias excluded).</param>
/// <param name="WeightNorm">L2 norm of each filter's kernel after the update.</param>
/// <param name="UpdateRatio">‖w_after − w_before‖ / ‖w_before‖ per filter (0 where the weights were all zero).</param>
/// <param name="Sparsity">Per filter, the fraction of activation outputs exactly zero (relu) or at or below zero (other activations).</param>
/// <param name="SparsityMetric">"sparsity" for relu (exact zeros), "nonpositive_fraction" for any other activation.</param>
/// <param name="Activation">The activation the sparsity was measured after.</param>
/// <param name="DeadFilters">Filters with no positive output for any sample over the dead-filter window.</param>
public sealed record FilterStatistics(
    string Layer,
    string LayerType,
    float[] GradientNorm,
    float[] WeightNorm,
    float[] UpdateRatio,
    float[] Sparsity,
    string SparsityMetric,
    string Activation,
    int[] DeadFilters);

/// <summary>
/// Collects <see cref="FilterStatistics"/> for every Conv2D and Dense layer of a model. Per step:
/// <see cref="ObserveActivations"/> after the forward pass, <see cref="BeforeUpdate"/> before the
/// optimizer changes the weights, <see cref="Complete"/> after it. Dead-filter tracking needs
/// <see cref="ObserveActivations"/> on every step of the window; the rest only on steps that report.
/// </summary>
public sealed class FilterStatisticsCollector
{
    private readonly Model model;
    private readonly TrackedLayer[] tracked;
    private bool countedAll;

    /// <param name="model">The model whose layers are measured.</param>
    /// <param name="deadWindow">Observed steps without a single positive output before a filter counts as dead.</param>
    public FilterStatisticsCollector(Model model, int deadWindow = 100)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(deadWindow);
        this.model = model;
        DeadWindow = deadWindow;
        tracked = MeasuredLayers(model).Select(m => new TrackedLayer(m.Layer, m.Kernel, m.OutputIndex, m.Activation, deadWindow)).ToArray();
    }

    /// <summary>
    /// The layers measured, in model order: every Conv2D and Dense with its kernel, and the layer whose
    /// output shows its sparsity: the fused activation, or the first stand-alone activation before the
    /// next layer with weights (e.g. Conv2D, BatchNorm, ReLU).
    /// </summary>
    public static IReadOnlyList<MeasuredLayer> MeasuredLayers(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var list = new List<MeasuredLayer>();
        for (var i = 0; i < model.Layers.Count; i++)
        {
            var layer = model.Layers[i];
            var (kernel, activation) = layer switch
            {
                Conv2D conv => (conv.Parameters[0], conv.Activation),
                Dense dense => (dense.Parameters[0], dense.Activation),
                _ => (null, default(Activation)),
            };
            if (kernel is null)
            {
                continue;
            }

            var outputIndex = i;
            if (activation.Kind == ActivationKind.Linear)
            {
                for (var j = i + 1; j < model.Layers.Count && model.Layers[j] is not (Conv2D or Dense); j++)
                {
                    if (model.Layers[j] is ActivationLayer standalone)
                    {
                        outputIndex = j;
                        activation = standalone.Activation;
                        break;
                    }
                }
            }

            list.Add(new MeasuredLayer(layer, kernel, outputIndex, activation));
        }

        return list;
    }

    public int DeadWindow { get; }

    /// <summary>Names of the measured layers in model order.</summary>
    public IEnumerable<string> LayerNames => tracked.Select(t => t.Layer.Name);

    /// <summary>
    /// Advances the dead-filter window with the last forward pass. With <paramref name="countAll"/>
    /// it also counts every positive output per filter, which sparsity needs (a full pass over the
    /// activations); without, it only checks whether each filter fired at all, which is cheap.
    /// </summary>
    public void ObserveActivations(long step, bool countAll = true)
    {
        foreach (var t in tracked)
        {
            var output = model.LayerOutput(t.OutputIndex);
            var counts = t.Layer is Conv2D conv && t.OutputIndex == conv.Index ? conv.PositiveCounts : [];
            if (counts.Length == output.N * output.C && output.N > 0)
            {
                // counted by the convolution's forward while each sample was in cache: sums in sample order
                Array.Clear(t.Positive);
                for (var n = 0; n < output.N; n++)
                {
                    for (var k = 0; k < output.C; k++)
                    {
                        t.Positive[k] += counts[(n * output.C) + k];
                    }
                }
            }
            else if (countAll)
            {
                Array.Clear(t.Positive);
                FilterKernels.CountPositivePerChannel(output, t.Positive);
            }
            else
            {
                FilterKernels.AnyPositivePerChannel(output, t.Positive);
            }

            t.Total = (long)output.N * output.H * output.W;
            t.Dead.Observe(step, t.Positive);
        }

        countedAll = countAll;
    }

    /// <summary>Keeps a copy of every measured kernel so the update ratio can be computed.</summary>
    public void BeforeUpdate()
    {
        foreach (var t in tracked)
        {
            t.Kernel.Value.CopyTo(t.Before, 0);
        }
    }

    /// <summary>Statistics of the step: gradients as the optimizer saw them, weights after the update.</summary>
    public IReadOnlyList<FilterStatistics> Complete()
    {
        if (!countedAll)
        {
            throw new InvalidOperationException("Complete needs the step's activations counted: call ObserveActivations(step, countAll: true) first");
        }

        var result = new FilterStatistics[tracked.Length];
        for (var i = 0; i < tracked.Length; i++)
        {
            var t = tracked[i];
            var rows = t.Kernel.Rows;
            var gradientNorm = new float[rows];
            var weightNorm = new float[rows];
            var beforeNorm = new float[rows];
            var updateRatio = new float[rows];
            FilterKernels.RowNorms(t.Kernel.Gradient, rows, gradientNorm);
            FilterKernels.RowNorms(t.Kernel.Value, rows, weightNorm);
            FilterKernels.RowNorms(t.Before, rows, beforeNorm);
            FilterKernels.RowDistances(t.Kernel.Value, t.Before, rows, updateRatio);
            for (var r = 0; r < rows; r++)
            {
                updateRatio[r] = beforeNorm[r] > 0f ? updateRatio[r] / beforeNorm[r] : 0f;
            }

            var relu = t.Activation.Kind == ActivationKind.Relu;
            var sparsity = new float[rows];
            for (var r = 0; r < rows; r++)
            {
                // relu outputs are never negative, so its exact zeros are everything not positive.
                var nonPositive = t.Total - t.Positive[r];
                sparsity[r] = t.Total > 0 ? (float)((double)nonPositive / t.Total) : 0f;
            }

            result[i] = new FilterStatistics(
                t.Layer.Name,
                t.Layer.TypeName,
                gradientNorm,
                weightNorm,
                updateRatio,
                sparsity,
                relu ? "sparsity" : "nonpositive_fraction",
                t.Activation.KerasName,
                t.Dead.DeadFilters());
        }

        return result;
    }

    /// <summary>Step at which each currently dead filter of a layer stopped producing positive output.</summary>
    public IReadOnlyDictionary<int, long> DeadSince(string layerName) =>
        tracked.First(t => t.Layer.Name == layerName).Dead.DeadSince();

    private sealed class TrackedLayer(Layer layer, Parameter kernel, int outputIndex, Activation activation, int deadWindow)
    {
        public Layer Layer { get; } = layer;

        public Parameter Kernel { get; } = kernel;

        public int OutputIndex { get; } = outputIndex;

        public Activation Activation { get; } = activation;

        public long[] Positive { get; } = new long[kernel.Rows];

        public long Total { get; set; }

        public float[] Before { get; } = new float[kernel.Length];

        public DeadFilterTracker Dead { get; } = new(kernel.Rows, deadWindow);
    }
}

/// <summary>A layer whose filters are measured: its kernel and the layer output its sparsity is read from.</summary>
public sealed record MeasuredLayer(Layer Layer, Parameter Kernel, int OutputIndex, Activation Activation)
{
    /// <summary>"sparsity" for relu (exact zeros), "nonpositive_fraction" for any other activation.</summary>
    public string SparsityMetric => Activation.Kind == ActivationKind.Relu ? "sparsity" : "nonpositive_fraction";
}

/// <summary>
/// A filter is dead once it has produced no positive output, for any sample, in each of the last
/// <c>window</c> observed steps. One positive output revives it.
/// </summary>
public sealed class DeadFilterTracker
{
    private readonly int[] silentSteps;
    private readonly long[] silentSince;
    private readonly int window;

    public DeadFilterTracker(int filters, int window)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(window);
        silentSteps = new int[filters];
        silentSince = new long[filters];
        this.window = window;
    }

    public void Observe(long step, ReadOnlySpan<long> positivePerFilter) => Observe(step, positivePerFilter, null);

    /// <summary>As <see cref="Observe(long, ReadOnlySpan{long})"/>, adding to <paramref name="newlyDead"/> the filters that became dead with this step.</summary>
    public void Observe(long step, ReadOnlySpan<long> positivePerFilter, List<int>? newlyDead)
    {
        for (var k = 0; k < silentSteps.Length; k++)
        {
            if (positivePerFilter[k] > 0)
            {
                silentSteps[k] = 0;
            }
            else
            {
                if (silentSteps[k] == 0)
                {
                    silentSince[k] = step;
                }

                silentSteps[k] = Math.Min(silentSteps[k] + 1, int.MaxValue - 1);
                if (silentSteps[k] == window)
                {
                    newlyDead?.Add(k);
                }
            }
        }
    }

    /// <summary>Step from which filter <paramref name="filter"/> has been silent (meaningful while it is silent).</summary>
    public long SilentSince(int filter) => silentSince[filter];

    public int[] DeadFilters()
    {
        var dead = new List<int>();
        for (var k = 0; k < silentSteps.Length; k++)
        {
            if (silentSteps[k] >= window)
            {
                dead.Add(k);
            }
        }

        return dead.ToArray();
    }

    public IReadOnlyDictionary<int, long> DeadSince()
    {
        var result = new Dictionary<int, long>();
        foreach (var k in DeadFilters())
        {
            result[k] = silentSince[k];
        }

        return result;
    }
}
