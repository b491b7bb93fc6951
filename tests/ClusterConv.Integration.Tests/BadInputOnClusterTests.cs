using System.Buffers.Binary;

namespace ClusterConv.Integration.Tests;

public sealed class BadInputOnClusterTests
{
    [Fact]
    public async Task A_bad_data_file_read_by_the_silos_fails_the_client_with_exit_2_and_the_file_named()
    {
        using var cluster = await SingleSiloCluster.StartAsync("bad-input-silo");
        var silo = cluster.Silo!;
        var data = Path.Combine(cluster.Directory, "data");
        Directory.CreateDirectory(data);
        var images = Idx(0x803, [12, 28, 28], 12 * 28 * 28);
        images[0] = 0x12; // wrong magic number
        File.WriteAllBytes(Path.Combine(data, "train-images-idx3-ubyte"), images);
        File.WriteAllBytes(Path.Combine(data, "train-labels-idx1-ubyte"), Idx(0x801, [12], 12));
        File.WriteAllBytes(Path.Combine(data, "t10k-images-idx3-ubyte"), Idx(0x803, [5, 28, 28], 5 * 28 * 28));
        File.WriteAllBytes(Path.Combine(data, "t10k-labels-idx1-ubyte"), Idx(0x801, [5], 5));

        var outDir = Path.Combine(cluster.Directory, "run");
        using var train = ChildProcess.StartClusterConv(["train", "--cluster", cluster.Address, "--data", data, "--workers", "1", "--out", outDir], new Dictionary<string, string> { ["NO_COLOR"] = "1" });
        Assert.True(await train.WaitForExitAsync(TimeSpan.FromSeconds(90)), $"train did not finish:\n{train.Output}\nsilo:\n{silo.Output}");
        Assert.True(train.ExitCode == 2, $"exit {train.ExitCode}:\n{train.Output}");
        Assert.Contains("train-images-idx3-ubyte: not an IDX file", train.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", train.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(outDir, "summary.json")));
    }

    private static byte[] Idx(int magic, int[] sizes, int payload)
    {
        var bytes = new byte[4 + (4 * sizes.Length) + payload];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (var i = 0; i < sizes.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + (4 * i)), sizes[i]);
        }

        for (var i = 0; i < payload; i++)
        {
            bytes[4 + (4 * sizes.Length) + i] = (byte)(i % 10);
        }

        return bytes;
    }
}
