using ClusterConv.Engine.Layers;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine;

/// <summary>
/// A built sequential model: layers with their parameters and the activation buffers of one batch.
/// Parameter order everywhere (flat vectors, checkpoints, weights_sha256) is layer by layer in model
/// order, each layer's parameters in its own order (kernel then bias; BatchNormalization gamma, beta,
/// moving_mean, moving_variance).
/// </summary>
public sealed class Model
{
    private readonly Tensor[] activations;
    private readonly Tensor[] gradients;

    public Model(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Spec = spec;
        var layers = new List<Layer>(spec.Layers.Count);
        var shape = spec.Input;
        foreach (var layerSpec in spec.Layers)
        {
            var layer = LayerFactory.Create(layerSpec);
            layer.Index = layers.Count;
            layer.Build(shape);
            shape = layer.OutputShape;
            layers.Add(layer);
        }

        if (layers.Count == 0)
        {
            throw new ModelException($"model '{spec.Name}': has no layers");
        }

        if (shape.H != 1 || shape.W != 1)
        {
            throw new ModelException($"model '{spec.Name}': the last layer '{layers[^1].Name}' must output a vector of class scores, got {shape}");
        }

        // Nothing consumes the gradient with respect to the images: skip its GEMM.
        switch (layers[0])
        {
            case Conv2D conv:
                conv.ComputeInputGradient = false;
                break;
            case Dense dense:
                dense.ComputeInputGradient = false;
                break;
        }

        // A relu convolution feeding a 2x2 max pooling: the pooling's backward applies the relu
        // derivative (one pass over the gradient fewer; the same values, see Pool2D.MasksByPositiveMax).
        for (var i = 0; i + 1 < layers.Count; i++)
        {
            if (layers[i] is Conv2D { Activation.Kind: ActivationKind.Relu } conv && layers[i + 1] is Pool2D { CanMaskByPositiveMax: true } pool)
            {
                conv.GradientArrivesMasked = true;
                pool.MasksByPositiveMax = true;
            }
        }

        Layers = layers;
        Parameters = layers.SelectMany(l => l.Parameters).ToArray();
        TrainableParameters = Parameters.Where(p => p.Trainable).ToArray();
        ParameterCount = Parameters.Sum(p => p.Length);
        TrainableParameterCount = TrainableParameters.Sum(p => p.Length);
        activations = new Tensor[layers.Count + 1];
        gradients = new Tensor[layers.Count + 1];
        activations[0] = new Tensor(0, spec.Input);
        gradients[0] = new Tensor(0, spec.Input);
        for (var i = 0; i < layers.Count; i++)
        {
            activations[i + 1] = new Tensor(0, layers[i].OutputShape);
            gradients[i + 1] = new Tensor(0, layers[i].OutputShape);
        }
    }

    public ModelSpec Spec { get; }

    /// <summary>
    /// Called after each layer's forward (layer index, false) and backward (index, true), for
    /// timing (`clusterconv bench`). A convolution and pooling whose backward runs fused reports the
    /// pooling done as the pair starts, so the pair's time is counted with the convolution.
    /// </summary>
    public Action<int, bool>? LayerDone { get; set; }

    public IReadOnlyList<Layer> Layers { get; }

    /// <summary>Every parameter, moving statistics included, in model order.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>The parameters an optimizer updates, in model order.</summary>
    public IReadOnlyList<Parameter> TrainableParameters { get; }

    public int ParameterCount { get; }

    public int TrainableParameterCount { get; }

    public SampleShape InputShape => Spec.Input;

    public int Classes => Layers[^1].OutputShape.C;

    /// <summary>Output of layer i for the last batch (valid until the next Forward).</summary>
    public Tensor LayerOutput(int layerIndex) => activations[layerIndex + 1];

    /// <summary>Initial weights from one seed; each layer draws from its own stream so adding a layer does not shift the others.</summary>
    public void Initialize(ulong seed)
    {
        foreach (var layer in Layers)
        {
            var random = new DeterministicRandom(DeterministicRandom.Mix(seed, 0x1A11, (ulong)layer.Index));
            layer.Initialize(ref random);
        }
    }

    /// <summary>Runs the batch forward; returns the logits (N, classes, 1, 1). The input tensor is copied into the model's buffer.</summary>
    // input (N, C, H, W) -> logits (N, classes)
    public Tensor Forward(Tensor input, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Shape != Spec.Input)
        {
            throw new ArgumentException($"input shape {input.Shape} does not match the model's {Spec.Input}", nameof(input));
        }

        var x = input;
        for (var i = 0; i < Layers.Count; i++)
        {
            var y = activations[i + 1];
            y.Resize(input.N);
            if (i + 1 < Layers.Count && Layers[i] is Conv2D conv && Layers[i + 1] is Pool2D { MasksByPositiveMax: true } pool)
            {
                // each sample pooled while in cache (Conv2D.ForwardThroughMaxPool); the pooling's time counts with the convolution
                var pooled = activations[i + 2];
                pooled.Resize(input.N);
                conv.ForwardThroughMaxPool(y, pooled, x, pool, context);
                LayerDone?.Invoke(i, false);
                LayerDone?.Invoke(i + 1, false);
                x = pooled;
                i++;
                continue;
            }

            Layers[i].Forward(y, x, context);
            LayerDone?.Invoke(i, false);
            x = y;
        }

        activations[0] = input;
        return x;
    }

    /// <summary>Backward from dLogits through every layer; writes every trainable parameter's gradient.</summary>
    // dLogits (N, classes) -> parameter gradients
    public void Backward(ReadOnlySpan<float> dLogits, StepContext context)
    {
        var n = activations[^1].N;
        var top = gradients[^1];
        top.Resize(n);
        dLogits.CopyTo(top.Span);
        for (var i = Layers.Count - 1; i >= 0; i--)
        {
            if (i > 0 && Layers[i] is Pool2D { MasksByPositiveMax: true } pool && Layers[i - 1] is Conv2D conv)
            {
                // one pass for both (Conv2D.BackwardThroughMaxPool); the pooling's dInput is not needed
                LayerDone?.Invoke(i, true);
                gradients[i - 1].Resize(n);
                conv.BackwardThroughMaxPool(gradients[i - 1], gradients[i + 1], activations[i - 1], activations[i], pool, context);
                LayerDone?.Invoke(i - 1, true);
                i--;
                continue;
            }

            var dInput = gradients[i];
            dInput.Resize(n);
            Layers[i].Backward(dInput, gradients[i + 1], activations[i], activations[i + 1], context);
            LayerDone?.Invoke(i, true);
        }
    }

    /// <summary>Copies every parameter (model order) into one flat vector.</summary>
    public void CopyParametersTo(Span<float> destination, bool trainableOnly = false)
    {
        var offset = 0;
        foreach (var p in trainableOnly ? TrainableParameters : Parameters)
        {
            p.Value.CopyTo(destination.Slice(offset, p.Length));
            offset += p.Length;
        }
    }

    /// <summary>Loads every parameter (model order) from one flat vector.</summary>
    public void LoadParameters(ReadOnlySpan<float> source, bool trainableOnly = false)
    {
        var expected = trainableOnly ? TrainableParameterCount : ParameterCount;
        if (source.Length != expected)
        {
            throw new ArgumentException($"parameter vector has {source.Length} values, the model needs {expected}", nameof(source));
        }

        var offset = 0;
        foreach (var p in trainableOnly ? TrainableParameters : Parameters)
        {
            source.Slice(offset, p.Length).CopyTo(p.Value);
            offset += p.Length;
        }
    }

    /// <summary>
    /// From now on Backward writes every trainable parameter's gradient straight into <paramref name="flat"/> (model
    /// order, from 0: the layout <see cref="CopyGradientsTo"/> writes); null returns them to their own buffers.
    /// </summary>
    public void BindGradients(float[]? flat)
    {
        if (flat is not null && flat.Length < TrainableParameterCount)
        {
            throw new ArgumentException($"gradient vector has {flat.Length} values, the model needs {TrainableParameterCount}", nameof(flat));
        }

        var offset = 0;
        foreach (var p in TrainableParameters)
        {
            p.BindGradient(flat, offset);
            offset += p.Length;
        }
    }

    /// <summary>Copies every trainable parameter's gradient (model order) into one flat vector.</summary>
    public void CopyGradientsTo(Span<float> destination)
    {
        var offset = 0;
        foreach (var p in TrainableParameters)
        {
            p.Gradient.CopyTo(destination.Slice(offset, p.Length));
            offset += p.Length;
        }
    }

    /// <summary>SHA-256 of every parameter as little-endian float32 in model order (lower-case hex).</summary>
    public string WeightsSha256()
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var p in Parameters)
        {
            if (!BitConverter.IsLittleEndian)
            {
                throw new PlatformNotSupportedException("weights_sha256 is defined on little-endian float32");
            }

            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(p.Value.AsSpan()));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
