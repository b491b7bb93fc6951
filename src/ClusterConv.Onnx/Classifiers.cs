using ClusterConv.Engine;
using ClusterConv.Engine.Checkpoints;
using ClusterConv.Engine.Layers;
using Microsoft.ML.OnnxRuntime;

namespace ClusterConv.Onnx;

/// <summary>
/// A trained image classifier, whatever runs it: pixel values in [0, 1] (byte / 255) in, logits out. The training
/// normalization is the classifier's business (the engine classifier applies the checkpoint's; an exported ONNX
/// graph holds it).
/// </summary>
public interface IImageClassifier : IDisposable
{
    /// <summary>One sample's (C, H, W).</summary>
    SampleShape InputShape { get; }

    int Classes { get; }

    /// <summary>What runs the model, e.g. "ClusterConv checkpoint (step 120)" or "ONNX Runtime (opset 17)".</summary>
    string Description { get; }

    // pixels (n, C, H, W) in [0, 1] -> logits (n, Classes)
    void Logits(ReadOnlySpan<float> pixels, int n, Span<float> logits);
}

/// <summary>Opens a classifier file: a ClusterConv checkpoint (by its magic number) or an ONNX model.</summary>
public static class Classifiers
{
    public static IImageClassifier Open(string path, int threads)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new ModelException($"model file not found: '{path}'");
        }

        Span<byte> head = stackalloc byte[8];
        int read;
        using (var stream = File.OpenRead(path))
        {
            read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }

        // ModelCheckpoint files start with this magic number (see its layout); anything else is handed to ONNX Runtime.
        return read == 8 && head.SequenceEqual("CCKPT01\n"u8)
            ? new EngineClassifier(ModelCheckpoint.LoadFile(path), threads)
            : new OnnxClassifier(path, threads);
    }
}

/// <summary>A checkpoint run by the engine in inference mode, with the checkpoint's input normalization.</summary>
public sealed class EngineClassifier : IImageClassifier
{
    private readonly ComputePool pool;
    private readonly Model model;
    private readonly InputNormalization normalization;
    private readonly StepContext context;
    private readonly Tensor input;

    public EngineClassifier(ModelCheckpoint checkpoint, int threads)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        model = checkpoint.CreateModel();
        normalization = checkpoint.Normalization;
        pool = new ComputePool(threads);
        context = new StepContext(false, pool);
        input = new Tensor(0, model.InputShape);
        Description = $"ClusterConv checkpoint of '{checkpoint.Model.Name}' (step {checkpoint.Step})";
    }

    public SampleShape InputShape => model.InputShape;

    public int Classes => model.Classes;

    public string Description { get; }

    public Model Model => model;

    public void Logits(ReadOnlySpan<float> pixels, int n, Span<float> logits)
    {
        Check(this, pixels, n, logits);
        input.Resize(n);
        var x = input.Span;
        var mean = normalization.Mean;
        var std = normalization.Std;
        for (var i = 0; i < x.Length; i++)
        {
            x[i] = (pixels[i] - mean) / std; // as the data layer's table: ((p / 255) − mean) / std
        }

        model.Forward(input, context).Span.CopyTo(logits);
    }

    public void Dispose() => pool.Dispose();

    internal static void Check(IImageClassifier classifier, ReadOnlySpan<float> pixels, int n, Span<float> logits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (pixels.Length != n * classifier.InputShape.Size)
        {
            throw new ArgumentException($"{n} samples of {classifier.InputShape} need {n * classifier.InputShape.Size} pixel values, got {pixels.Length}", nameof(pixels));
        }

        if (logits.Length != n * classifier.Classes)
        {
            throw new ArgumentException($"{n} samples of {classifier.Classes} classes need {n * classifier.Classes} logits, got {logits.Length}", nameof(logits));
        }
    }
}

/// <summary>An ONNX model run by ONNX Runtime (CPU). Its first input must be float (batch, C, H, W) with fixed C, H, W; its first output (batch, classes).</summary>
public sealed class OnnxClassifier : IImageClassifier
{
    private readonly InferenceSession session;
    private readonly string inputName;
    private readonly string outputName;

    public OnnxClassifier(string path, int threads)
    {
        using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
        try
        {
            session = new InferenceSession(path, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelException($"'{path}' is neither a ClusterConv checkpoint nor an ONNX model ONNX Runtime can load: {e.Message}", e);
        }

        try
        {
            var (name, meta) = session.InputMetadata.First();
            var dims = meta.Dimensions;
            if (meta.ElementType != typeof(float) || dims.Length != 4 || dims[1] <= 0 || dims[2] <= 0 || dims[3] <= 0)
            {
                throw new ModelException($"'{path}': input '{name}' must be float32 (batch, C, H, W) with fixed C, H, W, got {meta.ElementType.Name} [{string.Join(", ", dims)}]");
            }

            var (outName, outMeta) = session.OutputMetadata.First();
            var outDims = outMeta.Dimensions;
            if (outMeta.ElementType != typeof(float) || outDims.Length != 2 || outDims[1] <= 0)
            {
                throw new ModelException($"'{path}': output '{outName}' must be float32 (batch, classes) with a fixed class count, got {outMeta.ElementType.Name} [{string.Join(", ", outDims)}]");
            }

            inputName = name;
            outputName = outName;
            InputShape = new SampleShape(dims[1], dims[2], dims[3]);
            Classes = outDims[1];
            var producer = session.ModelMetadata.ProducerName;
            Description = $"ONNX Runtime {OrtEnv.Instance().GetVersionString()} ({(string.IsNullOrEmpty(producer) ? "ONNX" : producer)} model, input '{name}' {InputShape})";
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    public SampleShape InputShape { get; }

    public int Classes { get; }

    public string Description { get; }

    public void Logits(ReadOnlySpan<float> pixels, int n, Span<float> logits)
    {
        EngineClassifier.Check(this, pixels, n, logits);
        if (n == 0)
        {
            return;
        }

        var data = pixels.ToArray();
        using var value = OrtValue.CreateTensorValueFromMemory(data, [n, InputShape.C, InputShape.H, InputShape.W]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, [inputName], [value], [outputName]);
        var output = results[0].GetTensorDataAsSpan<float>();
        if (output.Length != logits.Length)
        {
            throw new ModelException($"ONNX model returned {output.Length} values for {n} samples of {Classes} classes");
        }

        output.CopyTo(logits);
    }

    public void Dispose() => session.Dispose();
}
