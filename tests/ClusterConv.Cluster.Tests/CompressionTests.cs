namespace ClusterConv.Cluster.Tests;

public sealed class CompressionTests
{
    private static float[] Gradient(int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-6, 1)))).ToArray();
    }

    [Theory]
    [InlineData(GradientCompression.Fp16)]
    [InlineData(GradientCompression.Bf16)]
    public void Error_feedback_keeps_what_rounding_lost_so_the_sum_over_steps_is_exact_up_to_the_last_residual(GradientCompression encoding)
    {
        const int Steps = 200;
        var values = Gradient(4_096, seed: 7);
        var residual = new float[values.Length];
        var decoded = new float[values.Length];
        var received = new double[values.Length];
        for (var t = 0; t < Steps; t++)
        {
            WireFormat.Decompress(WireFormat.Compress(values, residual, encoding), decoded, encoding);
            for (var i = 0; i < values.Length; i++)
            {
                received[i] += decoded[i];
            }
        }

        // Sum of decoded = Steps * values - final residual: nothing is lost over time, only the last step's rounding is late.
        for (var i = 0; i < values.Length; i++)
        {
            var sent = (double)Steps * values[i];
            Assert.True(Math.Abs(received[i] + residual[i] - sent) <= 1e-4 * Math.Max(Math.Abs(sent), 1e-3), $"value {i}: sent {sent}, received {received[i]}, residual {residual[i]}");
        }

        // Without the residual the rounding error of every step would add up instead.
        var worst = Enumerable.Range(0, values.Length).Max(i => Math.Abs(Steps * RoundTrip(values[i], encoding) - (double)Steps * values[i]));
        var withFeedback = Enumerable.Range(0, values.Length).Max(i => Math.Abs(received[i] - (double)Steps * values[i]));
        Assert.True(withFeedback * 10 < worst, $"error with feedback {withFeedback}, without {worst}");
    }

    [Theory]
    [InlineData(GradientCompression.Fp16)]
    [InlineData(GradientCompression.Bf16)]
    public void Compressed_values_take_two_bytes_and_round_to_the_nearest_half(GradientCompression encoding)
    {
        var values = Gradient(1_000, seed: 3);
        var residual = new float[values.Length];
        var bytes = WireFormat.Compress(values, residual, encoding);
        Assert.Equal(2 * values.Length, bytes.Length);
        var decoded = new float[values.Length];
        WireFormat.Decompress(bytes, decoded, encoding);
        for (var i = 0; i < values.Length; i++)
        {
            Assert.Equal(RoundTrip(values[i], encoding), decoded[i]);
            Assert.Equal(values[i] - decoded[i], residual[i]);
        }
    }

    [Theory]
    [InlineData(GradientCompression.Fp16)]
    [InlineData(GradientCompression.Bf16)]
    public async Task A_job_with_compressed_gradients_moves_fewer_bytes_and_still_learns(GradientCompression encoding)
    {
        var (cluster, directory) = await TestClusters.StartAsync(1);
        try
        {
            var plain = TestClusters.Spec($"plain-{encoding}", workers: 2, steps: 40) with { CheckpointEvery = 0, LogEvery = 5 };
            var compressed = plain with { JobId = $"compressed-{encoding}", Compression = encoding };
            var results = new List<(JobStatus Status, JobEvent[] Events)>();
            foreach (var spec in new[] { plain, compressed })
            {
                var job = cluster.Client.GetGrain<IJobGrain>(spec.JobId);
                await job.StartAsync(spec);
                var status = await TestClusters.WaitAsync(job, TimeSpan.FromSeconds(90));
                Assert.Equal(JobPhase.Completed, status.Phase);
                results.Add((status, (await job.GetEventsAsync(string.Empty, -1)).Events));
            }

            var (plainStatus, _) = results[0];
            var (compressedStatus, events) = results[1];
            Assert.True(compressedStatus.BytesMoved < plainStatus.BytesMoved, $"bytes {compressedStatus.BytesMoved} (compressed) against {plainStatus.BytesMoved}");
            Assert.NotEqual(plainStatus.WeightsSha256, compressedStatus.WeightsSha256);
            var steps = events.Where(e => !e.IsEpoch).ToArray();
            Assert.True(steps[^1].Loss < steps[0].Loss, $"loss {steps[0].Loss} -> {steps[^1].Loss}");
        }
        finally
        {
            await cluster.DisposeAsync();
            TestClusters.Delete(directory);
        }
    }

    private static float RoundTrip(float value, GradientCompression encoding)
    {
        var residual = new float[1];
        var decoded = new float[1];
        WireFormat.Decompress(WireFormat.Compress([value], residual, encoding), decoded, encoding);
        return decoded[0];
    }
}
