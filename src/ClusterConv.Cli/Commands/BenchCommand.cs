using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClusterConv.Engine;
using ClusterConv.Engine.Kernels;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;
using ClusterConv.Engine.Optimizers;
using ClusterConv.Engine.Statistics;
using Spectre.Console;

namespace ClusterConv.Cli.Commands;

/// <summary>`clusterconv bench`: times one training step of a model (keras-cnn by default) and each layer's forward and backward.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model to time (built-in name or Keras JSON file).", DefaultValueFactory = _ => "keras-cnn" };
        var batchSize = CommonOptions.Positive("--batch-size", "Samples per step.", 64);
        var threads = CommonOptions.Threads();
        var steps = CommonOptions.Positive("--steps", "Timed steps (after warm-up).", 30);
        var maxParameters = CommonOptions.MaxParameters();
        var json = CommonOptions.Json("the measurements");
        var verbose = CommonOptions.Verbose();
        var command = new Command("bench", "Time a training step and each layer; compare with this machine's FMA peak.")
        {
            model, batchSize, threads, steps, maxParameters, json, verbose,
        };
        command.SetAction(parse => CommandRunner.Run(parse.GetValue(verbose), _ =>
        {
            var result = Measure(CommonOptions.ResolveModel(parse.GetValue(model)!, parse.GetValue(maxParameters)), parse.GetValue(batchSize), parse.GetValue(threads), parse.GetValue(steps));
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                Print(result);
            }

            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>Measures and returns the JSON result (samples_per_second, gflops, peak_gflops, threads, batch_size, layers).</summary>
    public static JsonObject Measure(ModelSpec spec, int batchSize, int threads, int steps)
    {
        using var pool = new ComputePool(threads);
        var model = new Model(spec);
        model.Initialize(1);
        var random = new DeterministicRandom(3);
        var input = new Tensor(batchSize, model.InputShape);
        foreach (ref var v in input.Span)
        {
            v = random.NextFloat();
        }

        var labels = new int[batchSize];
        foreach (ref var label in labels.AsSpan())
        {
            label = random.NextInt(model.Classes);
        }

        var dLogits = new float[batchSize * model.Classes];

        var context = new StepContext(true, pool, 1, 0, Enumerable.Range(0, batchSize).ToArray());
        var optimizer = Optimizers.Create(new OptimizerSettings { Name = "adam" });
        var state = model.TrainableParameters.Select(p => new float[p.Length * optimizer.StateSlotsPerParameter]).ToArray();
        var collector = new FilterStatisticsCollector(model);
        long stepNumber = 0;
        // A training step as LocalTrainer runs it: forward, softmax cross-entropy, backward, Adam.
        void Step()
        {
            stepNumber++;
            var logits = model.Forward(input, context);
            SoftmaxCrossEntropy.Compute(logits.Span, labels, model.Classes, dLogits, 1f / batchSize);
            model.Backward(dLogits, context);
            Update();
        }

        void Update()
        {
            for (var i = 0; i < state.Length; i++)
            {
                var p = model.TrainableParameters[i];
                optimizer.Step(p.Value, p.Gradient, state[i], stepNumber, 1e-4f, decay: false);
            }
        }

        // The statistics a step with --stats-every adds: activation counts, the kernel copy before
        // the update, and the norms after it. Other steps only check which filters fired at all.
        void Statistics()
        {
            collector.ObserveActivations(stepNumber);
            collector.BeforeUpdate();
            collector.Complete();
        }

        for (var i = 0; i < 5; i++)
        {
            Step();
        }

        // Interleaved so that machine noise hits both measurements alike.
        var stepTimes = new double[steps];
        var statsTimes = new double[steps];
        var observeTimes = new double[steps];
        var cpuSeconds = 0.0;
        for (var i = 0; i < steps; i++)
        {
            var cpu = Environment.CpuUsage.TotalTime;
            var clock = Stopwatch.StartNew();
            Step();
            stepTimes[i] = clock.Elapsed.TotalSeconds;
            cpuSeconds += (Environment.CpuUsage.TotalTime - cpu).TotalSeconds;
            clock.Restart();
            collector.ObserveActivations(stepNumber, countAll: false);
            observeTimes[i] = clock.Elapsed.TotalSeconds;
            clock.Restart();
            Statistics();
            statsTimes[i] = clock.Elapsed.TotalSeconds;
        }

        var bestStepSeconds = stepTimes.Min();
        var stepSeconds = Median(stepTimes);
        var statsSeconds = Median(statsTimes);
        var observeSeconds = Median(observeTimes);
        var phases = Breakdown(model, input, labels, context, steps, () =>
        {
            stepNumber++;
            Update();
        });

        // Per layer: forward and backward timed in isolation on the buffers of the last step.
        var layers = new JsonArray();
        double totalFlops = 0;
        var shape = model.InputShape;
        for (var li = 0; li < model.Layers.Count; li++)
        {
            var layer = model.Layers[li];
            var x = li == 0 ? input : model.LayerOutput(li - 1);
            var y = model.LayerOutput(li);
            var dY = new Tensor(batchSize, layer.OutputShape);
            dY.Span.Fill(1e-3f);
            var dX = new Tensor(batchSize, layer.InputShape);
            var forward = TimeMedian(() => layer.Forward(y, x, context), steps);
            var backward = TimeMedian(() => layer.Backward(dX, dY, x, y, context), steps);
            var flops = ForwardFlops(spec.Layers[li], shape, batchSize);
            var backwardFlops = flops * (li == 0 ? 1 : 2);
            totalFlops += flops + backwardFlops;
            layers.Add(new JsonObject
            {
                ["name"] = layer.Name,
                ["type"] = layer.TypeName,
                ["forward_ms"] = Math.Round(forward * 1e3, 3),
                ["backward_ms"] = Math.Round(backward * 1e3, 3),
                ["forward_gflops"] = flops > 0 ? Math.Round(flops / forward / 1e9, 2) : null,
                ["backward_gflops"] = backwardFlops > 0 ? Math.Round(backwardFlops / backward / 1e9, 2) : null,
            });
            shape = layer.OutputShape;
        }

        var peak = FmaPeak.MeasureGflops(pool, TimeSpan.FromSeconds(1));
        return new JsonObject
        {
            ["model"] = spec.Name,
            ["batch_size"] = batchSize,
            ["threads"] = threads,
            ["step_ms"] = Math.Round(stepSeconds * 1e3, 3),
            ["samples_per_second"] = Math.Round(batchSize / stepSeconds, 1),
            ["best_step_ms"] = Math.Round(bestStepSeconds * 1e3, 3),
            ["best_samples_per_second"] = Math.Round(batchSize / bestStepSeconds, 1),
            // Process CPU time per step (all threads, idle waits excluded): steadier than wall time on a loaded machine.
            ["cpu_ms_per_step"] = Math.Round(cpuSeconds / steps * 1e3, 3),
            ["gflops"] = Math.Round(totalFlops / stepSeconds / 1e9, 2),
            ["peak_gflops"] = Math.Round(peak, 2),
            ["percent_of_peak"] = Math.Round(100 * totalFlops / stepSeconds / 1e9 / peak, 1),
            ["stats_ms"] = Math.Round(statsSeconds * 1e3, 3),
            ["stats_overhead_percent"] = Math.Round(100 * statsSeconds / stepSeconds, 2),
            ["dead_tracking_overhead_percent"] = Math.Round(100 * observeSeconds / stepSeconds, 2),
            ["layers"] = layers,
            ["phases"] = phases,
        };
    }

    /// <summary>
    /// Where a step goes: the same step with a clock mark after each layer (<see cref="Model.LayerDone"/>; a
    /// pooling whose backward is fused into the convolution's shows about 0 there), the loss and the optimizer (wall
    /// milliseconds, median over the steps; and the process's CPU milliseconds, mean, which on a
    /// loaded machine is steadier), and the engine's <see cref="StepProfile"/> phases inside the
    /// layers (CPU milliseconds per step, summed over threads).
    /// </summary>
    private static JsonObject Breakdown(Model model, Tensor input, int[] labels, StepContext context, int steps, Action update)
    {
        var n = input.N;
        var layers = model.Layers;
        var dLogits = new float[n * model.Classes];
        var names = new List<string>();
        names.AddRange(layers.Select(l => $"{l.Name} forward"));
        names.Add("loss");
        names.AddRange(layers.Reverse().Select(l => $"{l.Name} backward"));
        names.Add("optimizer");
        var times = names.Select(_ => new double[steps]).ToArray();
        var cpuTimes = names.Select(_ => new double[steps]).ToArray();
        var whole = new double[steps];
        StepProfile.Take();
        try
        {
            for (var step = -1; step < steps; step++)
            {
                StepProfile.Enabled = step >= 0;
                var slot = 0;
                var begin = Stopwatch.GetTimestamp();
                var mark = begin;
                var cpuMark = Environment.CpuUsage.TotalTime;
                void Mark()
                {
                    var now = Stopwatch.GetTimestamp();
                    var cpuNow = Environment.CpuUsage.TotalTime;
                    if (step >= 0)
                    {
                        times[slot][step] = Stopwatch.GetElapsedTime(mark, now).TotalMilliseconds;
                        cpuTimes[slot][step] = (cpuNow - cpuMark).TotalMilliseconds;
                    }

                    slot++;
                    mark = now;
                    cpuMark = cpuNow;
                }

                model.LayerDone = (_, _) => Mark();
                var logits = model.Forward(input, context);
                SoftmaxCrossEntropy.Compute(logits.Span, labels, model.Classes, dLogits, 1f / n);
                Mark();
                model.Backward(dLogits, context);
                update();
                Mark();
                if (step >= 0)
                {
                    whole[step] = Stopwatch.GetElapsedTime(begin).TotalMilliseconds;
                }
            }
        }
        finally
        {
            model.LayerDone = null;
        }

        StepProfile.Enabled = false;
        var profile = StepProfile.Take();
        var wall = new JsonObject();
        var process = new JsonObject();
        for (var i = 0; i < names.Count; i++)
        {
            wall[names[i]] = Math.Round(Median(times[i]), 3);
            process[names[i]] = Math.Round(cpuTimes[i].Average(), 3);
        }

        var cpu = new JsonObject();
        foreach (var (phase, ms) in profile)
        {
            cpu[phase] = Math.Round(ms / steps, 3);
        }

        return new JsonObject
        {
            ["step_ms"] = Math.Round(Median(whole), 3),
            ["wall_ms"] = wall,
            ["process_cpu_ms"] = process,
            ["cpu_ms"] = cpu,
        };
    }

    /// <summary>Multiply-adds of a layer's forward pass counted as 2 FLOPs (convolution and dense only).</summary>
    public static double ForwardFlops(LayerSpec spec, SampleShape input, int batch)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var output = spec.OutputShape(input);
        return spec switch
        {
            Conv2DSpec c => 2.0 * batch * output.C * output.H * output.W * input.C * c.KernelH * c.KernelW,
            DenseSpec d => 2.0 * batch * d.Units * input.Size,
            _ => 0,
        };
    }

    private static void Print(JsonObject r)
    {
        var table = new Table().AddColumns("layer", "type", "forward ms", "backward ms", "fwd GFLOP/s", "bwd GFLOP/s");
        foreach (var l in r["layers"]!.AsArray())
        {
            table.AddRow(l!["name"]!.ToString(), l["type"]!.ToString(), l["forward_ms"]!.ToString(), l["backward_ms"]!.ToString(), l["forward_gflops"]?.ToString() ?? "", l["backward_gflops"]?.ToString() ?? "");
        }

        AnsiConsole.Write(table);
        var phases = r["phases"]!.AsObject();
        var breakdown = new Table().AddColumns("part of a step", "wall ms (median)", "process CPU ms (mean)");
        var processCpu = phases["process_cpu_ms"]!.AsObject();
        foreach (var (name, ms) in phases["wall_ms"]!.AsObject())
        {
            breakdown.AddRow(name, ms!.ToString(), processCpu[name]!.ToString());
        }

        AnsiConsole.Write(breakdown);
        var cpu = new Table().AddColumns("phase inside a layer (CPU ms per step, all threads)", "ms");
        foreach (var (name, ms) in phases["cpu_ms"]!.AsObject())
        {
            cpu.AddRow(name, ms!.ToString());
        }

        AnsiConsole.Write(cpu);
        AnsiConsole.MarkupLineInterpolated(
            $"per-filter statistics: {r["stats_ms"]} ms when taken ({r["stats_overhead_percent"]}% of a step); dead-filter tracking on other steps {r["dead_tracking_overhead_percent"]}%");
        AnsiConsole.MarkupLineInterpolated(
            $"[bold]{r["model"]}[/] batch {r["batch_size"]}, {r["threads"]} threads: step {r["step_ms"]} ms (best {r["best_step_ms"]}), [green]{r["samples_per_second"]} samples/s[/], {r["gflops"]} GFLOP/s of {r["peak_gflops"]} FMA peak ({r["percent_of_peak"]}%)");
    }

    private static double TimeMedian(Action action, int repeats)
    {
        action();
        var times = new double[repeats];
        for (var i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            action();
            times[i] = clock.Elapsed.TotalSeconds;
        }

        return Median(times);
    }

    private static double Median(double[] values)
    {
        Array.Sort(values);
        return values[values.Length / 2];
    }
}
