using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Tests;

/// <summary>Every layer of this set gives bitwise identical outputs, gradients and statistics for 1, 2 and 3 threads.</summary>
public class LayerThreadDeterminismTests
{
    // 16 samples x 16 channels x 24x24 = 147k elements: about nine parts per layer, so the threads really split the work.
    private static readonly SampleShape Shape = new(16, 24, 24);

    public static TheoryData<string, bool> Layers => new()
    {
        { "max_pool", true },
        { "average_pool_same", true },
        { "dropout", true },
        { "batch_norm", true },
        { "batch_norm", false },
        { "relu", true },
        { "elu", true },
        { "tanh", true },
        { "gelu", true },
        { "flatten", true },
    };

    private static Layer Create(string name) => name switch
    {
        "max_pool" => new Pool2D(new Pool2DSpec(name, PoolKind.Max, 3, 3, 2, 2, Padding.Valid)),
        "average_pool_same" => new Pool2D(new Pool2DSpec(name, PoolKind.Average, 3, 3, 2, 2, Padding.Same)),
        "dropout" => new Dropout(new DropoutSpec(name, 0.3f)),
        "batch_norm" => new BatchNorm(new BatchNormSpec(name)),
        "flatten" => new Flatten(new FlattenSpec(name)),
        _ => new ActivationLayer(new ActivationSpec(name, Activation.TryParse(name)!.Value)),
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void Results_are_bitwise_identical_for_one_two_and_three_threads(string name, bool training)
    {
        int[]? reference = null;
        foreach (var threads in new[] { 1, 2, 3 })
        {
            // ComputePool(1).Dispose throws (releases a semaphore by 0), so one thread is the shared serial pool.
            using var pool = threads == 1 ? null : new ComputePool(threads);
            var layer = LayerHarness.Built(Create(name), Shape);
            var input = LayerHarness.Random(16, Shape, 77, 3f);
            var context = new StepContext(training, pool ?? ComputePool.Serial, Seed: 5, Epoch: 1);
            var (output, dInput) = LayerHarness.Run(layer, input, context);
            var all = output.Span.ToArray()
                .Concat(dInput.Span.ToArray())
                .Concat(layer.Parameters.SelectMany(p => p.Value.Concat(p.Gradient.ToArray())))
                .Select(BitConverter.SingleToInt32Bits)
                .ToArray();
            if (reference is null)
            {
                reference = all;
            }
            else
            {
                Assert.True(reference.SequenceEqual(all), $"{threads} threads differ from 1");
            }
        }
    }
}
