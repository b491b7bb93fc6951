using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace ClusterConv.Cluster.Tests;

public sealed class WireFormatTests
{
    [Fact]
    public void A_gradient_chunk_over_a_worker_buffer_travels_as_its_bytes_and_stays_one_object_inside_a_silo()
    {
        using var services = new ServiceCollection().AddSerializer(b => b.AddAssembly(typeof(GradientChunk).Assembly)).BuildServiceProvider();
        var node = Enumerable.Range(0, 1_000).Select(i => (i * 0.37f) - 50f).ToArray();
        var chunk = new GradientChunk(Step: 3, NodeStart: 0, NodeEnd: 2, Offset: 100, Count: 600, GradientCompression.None, new FloatBytes(node).Slice(100, 600), Samples: 32);

        // Between silos: exactly floats [100, 700) of the buffer, little-endian.
        var serializer = services.GetRequiredService<Serializer>();
        var received = serializer.Deserialize<GradientChunk>(serializer.SerializeToArray(chunk))!;
        var values = new float[600];
        WireFormat.FromBytes(received.Bytes.Span, values);
        Assert.Equal(node[100..700], values);
        Assert.Equal(chunk with { Bytes = default }, received with { Bytes = default });

        // Inside a silo: the message is immutable, so the shard reads the worker's buffer itself (no copy).
        var copy = services.GetRequiredService<DeepCopier>().Copy(chunk);
        Assert.Same(chunk, copy);
        node[100] = 1234f;
        WireFormat.FromBytes(copy.Bytes.Span[..4], values.AsSpan(0, 1));
        Assert.Equal(1234f, values[0]);
    }

    [Fact]
    public void Weights_travel_in_small_segments_that_chunks_cut_on_their_boundaries()
    {
        // A slice of two 4 MiB chunks and a bit: 1,048,576 floats per chunk, 64 segments each.
        var weights = Enumerable.Range(0, 1_048_576 + 20_000).Select(i => i * 0.5f).ToArray();
        var segments = WireFormat.ToSegments(weights);
        Assert.All(segments, s => Assert.True(s.Length < 85_000, $"a {s.Length}-byte segment would be a large object"));
        Assert.Equal(weights.Length * 4, segments.Sum(s => s.Length));

        var received = new float[weights.Length];
        var chunks = WireFormat.Chunks(weights.Length, 4).ToArray();
        Assert.Equal(2, chunks.Length);
        foreach (var (offset, count) in chunks)
        {
            var chunk = new WeightsChunk(7, offset, weights.Length, chunks.Length, WireFormat.SegmentsOf(segments, offset, count));
            Assert.Equal(count, chunk.Count);
            chunk.CopyTo(received.AsSpan(offset, count));
        }

        Assert.Equal(weights, received);
        Assert.Throws<ArgumentException>(() => WireFormat.SegmentsOf(segments, 100, 10));
        Assert.Throws<ArgumentException>(() => new WeightsChunk(7, 0, 10, 1, WireFormat.ToSegments(new float[10])).CopyTo(new float[9]));
    }

    [Fact]
    public void Segments_of_the_same_length_are_written_over_and_others_are_made_anew()
    {
        var first = Enumerable.Range(0, 40_000).Select(i => i * 0.25f).ToArray();
        var next = first.Select(v => -v).ToArray();
        var kept = WireFormat.ToSegments(first);
        var rewritten = WireFormat.ToSegments(next, kept);
        Assert.Same(kept, rewritten);
        Assert.Equal(next, ToFloats(rewritten));

        // Another length (a different slice or model): the old set is left alone.
        var shorter = next.AsSpan(0, 39_000).ToArray();
        var fresh = WireFormat.ToSegments(shorter, rewritten);
        Assert.NotSame(rewritten, fresh);
        Assert.Equal(shorter, ToFloats(fresh));
        Assert.Equal(next, ToFloats(rewritten));
    }

    private static float[] ToFloats(byte[][] segments)
    {
        var bytes = segments.SelectMany(s => s).ToArray();
        var values = new float[bytes.Length / 4];
        WireFormat.FromBytes(bytes, values);
        return values;
    }
}
