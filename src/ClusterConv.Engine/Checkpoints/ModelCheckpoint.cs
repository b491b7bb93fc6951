using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClusterConv.Engine.IO;
using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Checkpoints;

/// <summary>Input scaling a model was trained with: pixel/255, then (x − Mean) / Std.</summary>
public sealed record InputNormalization(string Name, float Mean, float Std)
{
    public static InputNormalization Scale { get; } = new("scale", 0f, 1f);
}

/// <summary>
/// A trained model on disk: its description, every parameter, and optionally the optimizer state.
/// Layout (little-endian): 8-byte magic "CCKPT01\n"; int32 header length; UTF-8 JSON header (model as
/// Keras JSON, step, epoch, normalization, parameter names and shapes, optimizer); the parameters as
/// float32 in model order; the optimizer state as float32; SHA-256 of everything before it. A file
/// that is cut short or altered fails the hash and is refused.
/// </summary>
public sealed record ModelCheckpoint(
    ModelSpec Model,
    float[] Parameters,
    long Step,
    int Epoch,
    InputNormalization Normalization,
    string? Optimizer = null,
    float[]? OptimizerState = null)
{
    public const string FileExtension = ".ckpt";
    private static readonly byte[] Magic = "CCKPT01\n"u8.ToArray();

    /// <summary>Captures a model's current parameters.</summary>
    public static ModelCheckpoint Capture(Model model, long step, int epoch, InputNormalization normalization, string? optimizer = null, float[]? optimizerState = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var parameters = new float[model.ParameterCount];
        model.CopyParametersTo(parameters);
        return new ModelCheckpoint(model.Spec, parameters, step, epoch, normalization, optimizer, optimizerState);
    }

    /// <summary>Builds the model and loads the parameters into it.</summary>
    public Model CreateModel()
    {
        var model = new Model(Model);
        model.LoadParameters(Parameters);
        return model;
    }

    public void Save(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var model = new Model(Model);
        if (model.ParameterCount != Parameters.Length)
        {
            throw new InvalidOperationException($"checkpoint holds {Parameters.Length} parameters but model '{Model.Name}' has {model.ParameterCount}");
        }

        var header = new JsonObject
        {
            ["format"] = 1,
            ["model"] = KerasModelWriter.Write(Model),
            ["step"] = Step,
            ["epoch"] = Epoch,
            ["normalization"] = new JsonObject { ["name"] = Normalization.Name, ["mean"] = Normalization.Mean, ["std"] = Normalization.Std },
            ["parameters"] = new JsonArray(model.Layers.SelectMany(l => l.Parameters.Select(p => (JsonNode)new JsonObject
            {
                ["layer"] = l.Name,
                ["name"] = p.Name,
                ["shape"] = new JsonArray(p.Shape.Select(d => (JsonNode)d).ToArray()),
            })).ToArray()),
            ["optimizer"] = Optimizer,
            ["optimizer_state_length"] = OptimizerState?.Length ?? 0,
        };
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Write(ReadOnlySpan<byte> bytes)
        {
            stream.Write(bytes);
            hash.AppendData(bytes);
        }

        Write(Magic);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, headerBytes.Length);
        Write(length);
        Write(headerBytes);
        Write(AsLittleEndianBytes(Parameters));
        Write(AsLittleEndianBytes(OptimizerState ?? []));
        stream.Write(hash.GetHashAndReset());
    }

    /// <summary>Writes to a temporary file and renames it into place, so the previous file stays valid until the new one is complete.</summary>
    public void SaveFile(string path) => AtomicFile.Write(path, Save);

    public static ModelCheckpoint LoadFile(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelException($"checkpoint not found: '{path}'", e);
        }

        return Load(bytes, path);
    }

    /// <summary>Reads a checkpoint; any problem is a <see cref="ModelException"/> naming the source.</summary>
    public static ModelCheckpoint Load(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.Length < Magic.Length + 4 + 32 || !bytes[..Magic.Length].SequenceEqual(Magic))
        {
            throw new ModelException($"{source}: not a ClusterConv checkpoint (bad magic number or too short)");
        }

        var body = bytes[..^32];
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(bytes[^32..]))
        {
            throw new ModelException($"{source}: checkpoint is damaged or cut short (SHA-256 mismatch)");
        }

        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(body[Magic.Length..]);
        var offset = Magic.Length + 4;
        if (headerLength <= 0 || headerLength > body.Length - offset)
        {
            throw new ModelException($"{source}: checkpoint header length {headerLength} is out of range");
        }

        JsonNode header;
        try
        {
            header = JsonNode.Parse(body.Slice(offset, headerLength)) ?? throw new JsonException("empty header");
        }
        catch (JsonException e)
        {
            throw new ModelException($"{source}: checkpoint header is not valid JSON: {e.Message}", e);
        }

        offset += headerLength;
        var spec = KerasModelReader.Read(header["model"]!.GetValue<string>(), $"{source} (model)");
        var count = new Model(spec).ParameterCount;
        var stateLength = header["optimizer_state_length"]?.GetValue<int>() ?? 0;
        if (body.Length - offset != 4L * (count + stateLength))
        {
            throw new ModelException($"{source}: checkpoint holds {body.Length - offset} bytes of values, model '{spec.Name}' needs {4L * (count + stateLength)}");
        }

        var parameters = FromLittleEndianBytes(body.Slice(offset, 4 * count));
        var state = stateLength > 0 ? FromLittleEndianBytes(body.Slice(offset + (4 * count), 4 * stateLength)) : null;
        var n = header["normalization"]!;
        return new ModelCheckpoint(
            spec,
            parameters,
            header["step"]!.GetValue<long>(),
            header["epoch"]!.GetValue<int>(),
            new InputNormalization(n["name"]!.GetValue<string>(), n["mean"]!.GetValue<float>(), n["std"]!.GetValue<float>()),
            header["optimizer"]?.GetValue<string>(),
            state);
    }

    private static ReadOnlySpan<byte> AsLittleEndianBytes(float[] values) => BitConverter.IsLittleEndian
        ? MemoryMarshal.AsBytes(values.AsSpan())
        : throw new PlatformNotSupportedException("checkpoints are written on little-endian machines");

    private static float[] FromLittleEndianBytes(ReadOnlySpan<byte> bytes) => BitConverter.IsLittleEndian
        ? MemoryMarshal.Cast<byte, float>(bytes).ToArray()
        : throw new PlatformNotSupportedException("checkpoints are read on little-endian machines");
}
