using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace ClusterConv.Cli.Tests;

/// <summary>
/// Bad input through the real executable: each is refused with one line on standard error naming what and where,
/// the documented exit code, no stack trace (unless --verbose), and no run folder left behind.
/// </summary>
public sealed partial class BadInputTests : IDisposable
{
    private readonly DirectoryInfo temp = CliRunner.TempDirectory();

    public void Dispose() => temp.Delete(recursive: true);

    private string Out => Path.Combine(temp.FullName, "run");

    // ---- data files ----

    public static TheoryData<string, string> DataCases => new()
    {
        { "truncated", "train-images-idx3-ubyte: truncated: header says 12 images of 28x28 (9424 bytes) but the file holds 9000" },
        { "magic", "train-images-idx3-ubyte: not an IDX file: magic number 0x12340803, expected 0x00000803" },
        { "dimensions", "train-images-idx3-ubyte: has 1 dimension(s) (magic 0x00000801) but an image file needs 3 (count, rows, columns); this looks like a label file" },
        { "counts", "train-labels-idx1-ubyte: holds 11 labels but " },
        { "label", "train-labels-idx1-ubyte: label 10 at index 3 is out of range 0..9" },
        { "empty", "t10k-labels-idx1-ubyte: is empty (0 bytes)" },
        { "nofiles", "data folder given with --data has no train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" },
        { "gzip", "train-images-idx3-ubyte.gz: corrupt gzip data" },
    };

    [Theory]
    [MemberData(nameof(DataCases))]
    public void A_bad_data_folder_is_refused_with_one_line_exit_2_and_no_run_folder(string kind, string expected)
    {
        var data = DataFolder(kind);
        var result = CliRunner.Run("train", "--data", data, "--workers", "0", "--epochs", "1", "--out", Out);
        AssertRefused(result, ExitCodes.BadInput, expected);
        Assert.Contains(data, result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void With_verbose_the_stack_trace_follows_the_message()
    {
        var result = CliRunner.Run("train", "--data", DataFolder("magic"), "--workers", "0", "--out", Out, "--verbose");
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.StartsWith("error: ", result.Stderr, StringComparison.Ordinal);
        Assert.Matches(StackFrame(), result.Stderr);
        Assert.Contains("ClusterConv.Data.DataException", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void An_experiment_on_a_bad_data_folder_leaves_no_experiment_folder()
    {
        var result = CliRunner.Run("experiment", "activations", "--activations", "relu,tanh", "--data", DataFolder("label"), "--max-steps", "2", "--out", Out);
        AssertRefused(result, ExitCodes.BadInput, "train-labels-idx1-ubyte: label 10 at index 3 is out of range 0..9");
    }

    // ---- model files ----

    public static TheoryData<string, string> ModelCases => new()
    {
        { """{"class_name": "Sequential", "config": {"layers": [""", "model.json: malformed JSON at line 1, byte 52: Expected depth to be zero at the end of the JSON payload" },
        { Model("""{"class_name": "Conv3D", "config": {"filters": 4}}"""), "model.json: layer 'conv3d' (Conv3D), class_name: 'Conv3D' is not supported; supported classes: InputLayer, Conv2D," },
        { Model(Conv("\"filters\": 4, \"kernel_size\": 3, \"activation\": \"swishy\"")), "model.json: layer 'conv2d' (Conv2D), activation: 'swishy' is not supported" },
        { Model(Conv("\"filters\": 0, \"kernel_size\": 3")), "model.json: layer 'conv2d' (Conv2D), filters: must be positive, got 0" },
        { Model(Conv("\"filters\": 4, \"kernel_size\": 3"), """{"class_name": "Flatten", "config": {}}""", """{"class_name": "Dense", "config": {"units": -3}}"""), "model.json: layer 'dense' (Dense), units: must be positive, got -3" },
        { Model("""{"class_name": "MaxPooling2D", "config": {"pool_size": 6}}""", Conv("\"filters\": 4, \"kernel_size\": 7")), "model.json: layer 'conv2d' (Conv2D), kernel_size: kernel 7x7 is larger than its input 4x4" },
        { Model(Conv("\"filters\": 4, \"kernel_size\": 3, \"dilation_rate\": 2")), "model.json: layer 'conv2d' (Conv2D), dilation_rate: 2: dilated convolution is not supported; only 1 is" },
    };

    [Theory]
    [MemberData(nameof(ModelCases))]
    public void A_bad_model_file_is_refused_with_one_line_exit_2_and_no_run_folder(string json, string expected)
    {
        var model = Path.Combine(temp.FullName, "model.json");
        File.WriteAllText(model, json);
        var result = CliRunner.Run("train", "--model", model, "--data", "synthetic", "--workers", "0", "--out", Out);
        AssertRefused(result, ExitCodes.BadInput, expected);
    }

    [Fact]
    public void A_model_over_the_parameter_limit_is_refused_naming_both_numbers()
    {
        var result = CliRunner.Run("train", "--model", "keras-cnn", "--data", "synthetic", "--workers", "0", "--max-parameters", "100000", "--out", Out);
        AssertRefused(result, ExitCodes.BadInput, "model keras-cnn: the model has 225,034 parameters, more than the limit of 100,000 (--max-parameters)");

        var model = Path.Combine(temp.FullName, "big.json");
        File.WriteAllText(model, Model("""{"class_name": "Flatten", "config": {}}""", """{"class_name": "Dense", "config": {"units": 100000}}"""));
        var big = CliRunner.Run("train", "--model", model, "--data", "synthetic", "--workers", "0", "--out", Out);
        AssertRefused(big, ExitCodes.BadInput, "big.json: parameters: the model has 78,500,000 parameters, more than the limit of 50,000,000 (--max-parameters)");
    }

    // ---- command line ----

    [Theory]
    [InlineData("--epochs", "0", "--epochs must be a positive integer, got 0")]
    [InlineData("--batch-size", "-5", "--batch-size must be a positive integer, got -5")]
    [InlineData("--workers", "-1", "--workers must be 0 or more")]
    [InlineData("--mode", "eventual", "--mode must be bsp, ssp:K (K >= 0) or async, got 'eventual'")]
    [InlineData("--max-parameters", "0", "--max-parameters must be a positive integer, got 0")]
    public void An_out_of_range_option_is_refused_with_exit_1_before_anything_runs(string option, string value, string expected)
    {
        var result = CliRunner.Run("train", "--data", "synthetic", option, value, "--out", Out);
        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Equal(expected, result.Stderr.Trim());
        Assert.False(Directory.Exists(Out));
    }

    [Theory]
    [InlineData("3", "4", "2", "--batch-size (3) must be at least --micro-batches (4)")]
    [InlineData("8", "2", "3", "--workers (3) cannot exceed --micro-batches (2): each worker owns at least one micro-batch slot")]
    public void Settings_the_job_refuses_leave_no_run_folder(string batch, string micro, string workers, string expected)
    {
        var result = CliRunner.Run("train", "--data", "synthetic", "--batch-size", batch, "--micro-batches", micro, "--workers", workers, "--out", Out);
        AssertRefused(result, ExitCodes.Usage, expected);
    }

    [Fact]
    public void An_unreachable_cluster_is_an_error_within_seconds_and_leaves_no_run_folder()
    {
        var closed = FreePort();
        var clock = Stopwatch.StartNew();
        var train = CliRunner.Run("train", "--cluster", $"redis://127.0.0.1:{closed}", "--data", "synthetic", "--workers", "2", "--max-steps", "2", "--out", Out);
        var trainSeconds = clock.Elapsed.TotalSeconds;
        AssertRefused(train, ExitCodes.IoError, $"--cluster redis://127.0.0.1:{closed}: cannot reach Redis after ");
        Assert.Contains($"127.0.0.1:{closed}: Connection refused", train.Stderr, StringComparison.Ordinal);

        clock.Restart();
        var status = CliRunner.Run("status", "--cluster", $"redis://127.0.0.1:{closed}");
        var statusSeconds = clock.Elapsed.TotalSeconds;
        AssertRefused(status, ExitCodes.IoError, $"--cluster redis://127.0.0.1:{closed}: cannot reach Redis after ");

        // Measured here: 0.3 s each (a TCP probe before the Orleans client, whose retries took up to 16 s under load).
        Assert.InRange(trainSeconds, 0, 10);
        Assert.InRange(statusSeconds, 0, 10);
    }

    [Fact]
    public void A_silo_whose_Redis_is_unreachable_exits_with_one_line_within_seconds()
    {
        var closed = FreePort();
        var clock = Stopwatch.StartNew();
        var result = CliRunner.Run("silo", "--redis", $"127.0.0.1:{closed}", "--silo-port", $"{FreePort()}", "--gateway-port", $"{FreePort()}");
        AssertRefused(result, ExitCodes.IoError, $"--redis 127.0.0.1:{closed}: could not connect: It was not possible to connect to the redis server(s).");

        // Measured here: 11 s (Orleans retries the membership table before it gives up).
        Assert.InRange(clock.Elapsed.TotalSeconds, 0, 30);
    }

    [Fact]
    public void A_failed_start_in_an_existing_run_folder_leaves_its_files_as_they_were()
    {
        Directory.CreateDirectory(Out);
        File.WriteAllText(Path.Combine(Out, "summary.json"), "{\"earlier\": true}\n");
        var result = CliRunner.Run("train", "--cluster", $"redis://127.0.0.1:{FreePort()}", "--data", "synthetic", "--workers", "2", "--out", Out);
        Assert.Equal(ExitCodes.IoError, result.ExitCode);
        Assert.Equal(["summary.json"], Directory.EnumerateFileSystemEntries(Out).Select(Path.GetFileName));
        Assert.Equal("{\"earlier\": true}\n", File.ReadAllText(Path.Combine(Out, "summary.json")));
    }

    [Fact]
    public void A_silo_port_in_use_is_named()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var result = CliRunner.Run("silo", "--redis", $"redis://127.0.0.1:{FreePort()}", "--silo-port", $"{port}", "--gateway-port", $"{FreePort()}");
        AssertRefused(result, ExitCodes.IoError, $"--silo-port {port}: 127.0.0.1:{port} is already in use");
    }

    [Fact]
    public void A_metrics_port_in_use_is_named_and_leaves_no_run_folder()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var result = CliRunner.Run("train", "--data", "synthetic", "--workers", "1", "--max-steps", "1", "--metrics-port", $"{port}", "--out", Out);
        AssertRefused(result, ExitCodes.IoError, $"--metrics-port {port}: cannot listen on 127.0.0.1:{port}");
    }

    // ---- helpers ----

    private void AssertRefused(CliRunner.Result result, int exitCode, string expected)
    {
        Assert.True(result.ExitCode == exitCode, $"exit {result.ExitCode}, expected {exitCode}: {result.Stderr}");
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var error = Assert.Single(lines, l => l.StartsWith("error: ", StringComparison.Ordinal));
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.DoesNotMatch(StackFrame(), result.Stderr);
        Assert.False(Directory.Exists(Out) && Directory.EnumerateFileSystemEntries(Out).Any(), $"{Out} was left behind: {string.Join(", ", Directory.Exists(Out) ? Directory.EnumerateFileSystemEntries(Out, "*", SearchOption.AllDirectories) : [])}");
    }

    [GeneratedRegex(@"^\s+at \S+", RegexOptions.Multiline)]
    private static partial Regex StackFrame();

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string Conv(string fields) => """{"class_name": "Conv2D", "config": {"name": "conv2d", """ + fields + "}}";

    private static string Model(params string[] layers) =>
        """{"class_name": "Sequential", "config": {"name": "m", "layers": [{"class_name": "InputLayer", "config": {"batch_input_shape": [null, 28, 28, 1]}}, """ + string.Join(", ", layers) + "]}}";

    /// <summary>A folder of the four files, 28×28 images (12 train, 5 test), with one broken as <paramref name="kind"/> says.</summary>
    private string DataFolder(string kind)
    {
        var dir = Directory.CreateDirectory(Path.Combine(temp.FullName, "data-" + kind)).FullName;
        if (kind == "nofiles")
        {
            return dir;
        }

        var files = new Dictionary<string, byte[]>
        {
            ["train-images-idx3-ubyte"] = Images(12),
            ["train-labels-idx1-ubyte"] = Labels(12),
            ["t10k-images-idx3-ubyte"] = Images(5),
            ["t10k-labels-idx1-ubyte"] = Labels(5),
        };
        switch (kind)
        {
            case "truncated":
                files["train-images-idx3-ubyte"] = files["train-images-idx3-ubyte"][..9000];
                break;
            case "magic":
                files["train-images-idx3-ubyte"][0] = 0x12;
                files["train-images-idx3-ubyte"][1] = 0x34;
                break;
            case "dimensions":
                files["train-images-idx3-ubyte"] = Labels(12);
                break;
            case "counts":
                files["train-labels-idx1-ubyte"] = Labels(11);
                break;
            case "label":
                files["train-labels-idx1-ubyte"][8 + 3] = 10;
                break;
            case "empty":
                files["t10k-labels-idx1-ubyte"] = [];
                break;
            case "gzip":
                var gzip = Gzip(files["train-images-idx3-ubyte"]);
                gzip[gzip.Length / 2] ^= 0xff;
                gzip[(gzip.Length / 2) + 1] ^= 0xff;
                files.Remove("train-images-idx3-ubyte");
                files["train-images-idx3-ubyte.gz"] = gzip;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }

        foreach (var (name, content) in files)
        {
            File.WriteAllBytes(Path.Combine(dir, name), content);
        }

        return dir;
    }

    private static byte[] Header(int magic, params int[] sizes)
    {
        var header = new byte[4 + (4 * sizes.Length)];
        BinaryPrimitives.WriteInt32BigEndian(header, magic);
        for (var i = 0; i < sizes.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + (4 * i)), sizes[i]);
        }

        return header;
    }

    private static byte[] Images(int count) => [.. Header(0x803, count, 28, 28), .. Enumerable.Range(0, count * 28 * 28).Select(i => (byte)(i * 7))];

    private static byte[] Labels(int count) => [.. Header(0x801, count), .. Enumerable.Range(0, count).Select(i => (byte)(i % 10))];

    private static byte[] Gzip(byte[] raw)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(raw);
        }

        return output.ToArray();
    }
}
