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
}
