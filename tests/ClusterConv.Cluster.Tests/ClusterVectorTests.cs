using System.IO.Hashing;
using ClusterConv.Engine;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Cluster.Tests;

/// <summary>The worker's way from the shards' weight segments into its model: written run by run, hashed segment by segment.</summary>
public sealed class ClusterVectorTests
{
    // Trainable parameters, then BatchNormalization's moving statistics: both parts of the vector.
    private static readonly ModelSpec Model = BatchNormTests.Model;

    [Fact]
    public void A_vector_written_in_uneven_runs_fills_the_model_as_loading_it_whole_does()
    {
        var layout = new ClusterVector(new Model(Model));
        Assert.True(layout.Moving > 0);
        var random = new Random(7);
        var vector = Enumerable.Range(0, layout.Length).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        var whole = new Model(Model);
        layout.Load(whole, vector);

        var pieces = new Model(Model);
        var writer = layout.Writer(pieces);
        var at = 0;
        foreach (var run in new[] { 1, 3, 35, 36, 100, 7 })
        {
            writer.Write(vector.AsSpan(at, run));
            at += run;
            Assert.Equal(at, writer.Position);
        }

        writer.Write(vector.AsSpan(at));
        Assert.Equal(layout.Length, writer.Position);
        foreach (var (expected, actual) in whole.Parameters.Zip(pieces.Parameters))
        {
            Assert.Equal(expected.Value, actual.Value);
        }

        var error = Assert.Throws<ArgumentException>(() => writer.Write([1f]));
        Assert.Contains($"at {layout.Length}", error.Message);
    }

    [Fact]
    public void Segments_hashed_in_order_give_the_checksum_of_their_floats_and_another_order_does_not()
    {
        var random = new Random(11);
        var values = Enumerable.Range(0, (2 * WireFormat.SegmentFloats) + 1_000).Select(_ => (float)random.NextDouble()).ToArray();
        var segments = WireFormat.ToSegments(values);
        Assert.Equal(3, segments.Length);

        var hash = new XxHash3();
        foreach (var segment in segments)
        {
            hash.Append(segment);
        }

        Assert.Equal(WeightsChecksum.Of(values), WeightsChecksum.Of(hash));

        hash.Reset();
        foreach (var segment in segments.Reverse())
        {
            hash.Append(segment);
        }

        Assert.NotEqual(WeightsChecksum.Of(values), WeightsChecksum.Of(hash));
        Assert.Equal(values[WireFormat.SegmentFloats..(2 * WireFormat.SegmentFloats)], WireFormat.AsFloats(segments[1]).ToArray());
    }
}
