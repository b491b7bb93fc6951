using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Layers;

/// <summary>
/// MaxPooling2D and AveragePooling2D with any pool size and stride and TensorFlow's padding:
/// "same" pads ConvGeometry.PadBefore before and the rest after; padded positions never win a max
/// and are not counted by an average (it divides by the number of real inputs in the window).
/// Max backward routes each output's gradient to the first maximum of its window (row-major scan),
/// recomputed from the input as TensorFlow's MaxPoolGrad does, so the layer keeps no per-batch state.
/// Parallel over (sample, channel) planes; a plane's result does not depend on the partition.
/// Max pooling compares without branches (maxss, and an integer select for the argmax) but with the
/// reference's exact semantics: batch 64 of 32x28x28, 2x2 stride 2, one thread, forward 7.7 → 1.4-1.8
/// ms and backward 9.0 → 4.0 ms against the branching loop (bench: PoolingBenchmarks).
/// </summary>
public sealed class Pool2D : Layer
{
    private Window[] rows = [];
    private Window[] cols = [];

    public Pool2D(Pool2DSpec spec)
        : base((spec ?? throw new ArgumentNullException(nameof(spec))).Name) => Spec = spec;

    public Pool2DSpec Spec { get; }

    public override string TypeName => Spec.TypeName;

    /// <summary>
    /// Whether the backward can also apply the relu derivative of the layer before it (see
    /// <see cref="MasksByPositiveMax"/>): 2x2 max pooling at stride 2 without padding.
    /// </summary>
    internal bool CanMaskByPositiveMax => IsMax2x2;

    /// <summary>
    /// Set by <see cref="Model"/> when the previous layer is a relu Conv2D that then skips its own
    /// relu backward: each window's gradient is multiplied by (max &gt; 0 ? 1 : 0) before it is
    /// routed. The input is that relu's output, so max &gt; 0 exactly when the routed position's
    /// pre-activation is positive, and the product is the one the relu backward would compute.
    /// </summary>
    internal bool MasksByPositiveMax { get; set; }

    // input (N,C,H,W) -> output (N,C,P,Q)
    public override void Forward(Tensor output, Tensor input, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        LayerGuard.Forward(this, output, input);
        codedSamples = 0; // the window codes no longer describe the last forward
        var inPlane = InputShape.H * InputShape.W;
        var outPlane = OutputShape.H * OutputShape.W;
        var planes = input.N * InputShape.C;
        var parts = WorkSplit.Parts(planes, inPlane);
        var x = input.Data;
        var y = output.Data;
        context.Compute.For(parts, part =>
        {
            var (start, end) = ComputePool.Range(planes, parts, part);
            for (var plane = start; plane < end; plane++)
            {
                if (IsMax2x2)
                {
                    ForwardPlaneMax2x2(y.AsSpan(plane * outPlane, outPlane), x.AsSpan(plane * inPlane, inPlane));
                }
                else
                {
                    ForwardPlane(y.AsSpan(plane * outPlane, outPlane), x.AsSpan(plane * inPlane, inPlane));
                }
            }
        });
    }

    // dInput (N,C,H,W) <- dOutput (N,C,P,Q), input (N,C,H,W)
    public override void Backward(Tensor dInput, Tensor dOutput, Tensor input, Tensor output, StepContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        LayerGuard.Backward(this, dInput, dOutput, input, output);
        var inPlane = InputShape.H * InputShape.W;
        var outPlane = OutputShape.H * OutputShape.W;
        var planes = input.N * InputShape.C;
        var parts = WorkSplit.Parts(planes, inPlane);
        var x = input.Data;
        var dx = dInput.Data;
        var dy = dOutput.Data;
        context.Compute.For(parts, part =>
        {
            var (start, end) = ComputePool.Range(planes, parts, part);
            for (var plane = start; plane < end; plane++)
            {
                if (IsMax2x2)
                {
                    BackwardPlaneMax2x2(dx.AsSpan(plane * inPlane, inPlane), dy.AsSpan(plane * outPlane, outPlane), x.AsSpan(plane * inPlane, inPlane));
                }
                else
                {
                    BackwardPlane(dx.AsSpan(plane * inPlane, inPlane), dy.AsSpan(plane * outPlane, outPlane), x.AsSpan(plane * inPlane, inPlane));
                }
            }
        });
    }

    /// <summary>
    /// Window codes of the last <see cref="Conv2D.ForwardThroughMaxPool"/>, one int per pooled
    /// output: bit 0, 1 or 2 set when the window's first strict maximum (the reference's scan) is
    /// x01, x10 or x11 (none: x00), bit 3 when that maximum is &gt; 0. The fused backward routes by
    /// them instead of rereading the (N, C, H, W) input: 4 bytes per window instead of 16.
    /// </summary>
    private readonly Kernels.AlignedBuffer windowCodes = new();
    private int codedSamples; // samples the codes cover; 0 after a plain Forward

    /// <summary>Makes room for the window codes of <paramref name="n"/> samples; returns them.</summary>
    internal unsafe int* PrepareCodes(int n)
    {
        codedSamples = n;
        return (int*)windowCodes.Ensure((long)n * OutputShape.Size);
    }

    /// <summary>The window codes of the last fused forward when they cover <paramref name="n"/> samples, else null.</summary>
    internal unsafe int* CodesFor(int n) => n <= codedSamples ? (int*)windowCodes.Pointer : null;

    /// <summary>One sample's forward (its C planes) with its window codes, for <see cref="Conv2D.ForwardThroughMaxPool"/>: 2x2 max pooling only.</summary>
    // output (C,P,Q), codes (C,P,Q) <- input (C,H,W)
    internal unsafe void ForwardSample(float* output, float* input, int* codes)
    {
        if (!IsMax2x2)
        {
            throw new InvalidOperationException($"layer '{Name}': ForwardSample is for 2x2 max pooling at stride 2");
        }

        var inPlane = InputShape.H * InputShape.W;
        var outPlane = OutputShape.H * OutputShape.W;
        for (var c = 0; c < InputShape.C; c++)
        {
            ForwardPlaneMax2x2Codes(output + (c * outPlane), input + (c * inPlane), codes + (c * outPlane));
        }
    }

    /// <summary>One sample's backward from its window codes (<see cref="ForwardSample"/>), the gradient masked by (max &gt; 0).</summary>
    // dInput (C,H,W) <- dOutput (C,P,Q), codes (C,P,Q)
    internal unsafe void BackwardSampleFromCodes(float* dInput, float* dOutput, int* codes)
    {
        var inPlane = InputShape.H * InputShape.W;
        var outPlane = OutputShape.H * OutputShape.W;
        for (var c = 0; c < InputShape.C; c++)
        {
            BackwardPlaneMax2x2Codes(dInput + (c * inPlane), dOutput + (c * outPlane), codes + (c * outPlane));
        }
    }

    // ForwardPlaneMax2x2 that also writes each window's code (see windowCodes): the comparisons of
    // BackwardPlaneMax2x2, so the backward from codes routes exactly as the one from the input.
    private unsafe void ForwardPlaneMax2x2Codes(float* y, float* x, int* codes)
    {
        var width = InputShape.W;
        var q = OutputShape.W;
        for (var i = 0; i < OutputShape.H; i++)
        {
            var top = x + (2 * i * width);
            var bottom = top + width;
            var row = y + (i * q);
            var codeRow = codes + (i * q);
            if (q >= 8)
            {
                for (var j = 0; j < q; j += 8)
                {
                    j = Math.Min(j, q - 8);
                    var (t0, t1) = Deinterleave(ref top[2 * j]);
                    var (b0, b1) = Deinterleave(ref bottom[2 * j]);
                    var takeT1 = Avx.CompareGreaterThan(t1, t0);
                    var best = Avx.Max(t1, t0);
                    var takeB0 = Avx.CompareGreaterThan(b0, best);
                    best = Avx.Max(b0, best);
                    var takeB1 = Avx.CompareGreaterThan(b1, best);
                    best = Avx.Max(b1, best);
                    best.Store(row + j);
                    var code = (Avx.AndNot(Avx.Or(takeB0, takeB1), takeT1).AsInt32() & Vector256.Create(1))
                        | (Avx.AndNot(takeB1, takeB0).AsInt32() & Vector256.Create(2))
                        | (takeB1.AsInt32() & Vector256.Create(4))
                        | (Avx.CompareGreaterThan(best, Vector256<float>.Zero).AsInt32() & Vector256.Create(8));
                    code.Store(codeRow + j);
                }
            }
            else if (q >= 4)
            {
                for (var j = 0; j < q; j += 4)
                {
                    j = Math.Min(j, q - 4);
                    var (t0, t1) = Deinterleave128(ref top[2 * j]);
                    var (b0, b1) = Deinterleave128(ref bottom[2 * j]);
                    var takeT1 = Sse.CompareGreaterThan(t1, t0);
                    var best = Sse.Max(t1, t0);
                    var takeB0 = Sse.CompareGreaterThan(b0, best);
                    best = Sse.Max(b0, best);
                    var takeB1 = Sse.CompareGreaterThan(b1, best);
                    best = Sse.Max(b1, best);
                    best.Store(row + j);
                    var code = (Sse.AndNot(Sse.Or(takeB0, takeB1), takeT1).AsInt32() & Vector128.Create(1))
                        | (Sse.AndNot(takeB1, takeB0).AsInt32() & Vector128.Create(2))
                        | (takeB1.AsInt32() & Vector128.Create(4))
                        | (Sse.CompareGreaterThan(best, Vector128<float>.Zero).AsInt32() & Vector128.Create(8));
                    code.Store(codeRow + j);
                }
            }
            else
            {
                for (var j = 0; j < q; j++)
                {
                    var best = top[2 * j];
                    var code = 0;
                    if (top[(2 * j) + 1] > best)
                    {
                        best = top[(2 * j) + 1];
                        code = 1;
                    }

                    if (bottom[2 * j] > best)
                    {
                        best = bottom[2 * j];
                        code = 2;
                    }

                    if (bottom[(2 * j) + 1] > best)
                    {
                        best = bottom[(2 * j) + 1];
                        code = 4;
                    }

                    row[j] = Larger(bottom[(2 * j) + 1], Larger(bottom[2 * j], Larger(top[(2 * j) + 1], top[2 * j])));
                    codeRow[j] = code | (best > 0f ? 8 : 0);
                }
            }
        }
    }

    // dx (H,W) <- dy (P,Q) routed by the window codes, each gradient times (max > 0 ? 1 : 0): the
    // values of BackwardPlaneMax2x2 with MasksByPositiveMax.
    private unsafe void BackwardPlaneMax2x2Codes(float* dx, float* dy, int* codes)
    {
        var width = InputShape.W;
        var p = OutputShape.H;
        var q = OutputShape.W;
        var plane = new Span<float>(dx, InputShape.H * width);
        if (q < 4)
        {
            plane.Clear();
        }
        else
        {
            plane[(2 * p * width)..].Clear();
            if (width > 2 * q)
            {
                for (var h = 0; h < 2 * p; h++)
                {
                    plane.Slice((h * width) + (2 * q), width - (2 * q)).Clear();
                }
            }
        }

        for (var i = 0; i < p; i++)
        {
            var dTop = dx + (2 * i * width);
            var dBottom = dTop + width;
            var gRow = dy + (i * q);
            var codeRow = codes + (i * q);
            if (q >= 8)
            {
                for (var j = 0; j < q; j += 8)
                {
                    j = Math.Min(j, q - 8);
                    var code = Vector256.Load(codeRow + j);
                    var g = Vector256.Load(gRow + j) * (Vector256<float>.One & Vector256.Equals(code & Vector256.Create(8), Vector256.Create(8)).AsSingle());
                    var gT0 = g & Vector256.Equals(code & Vector256.Create(7), Vector256<int>.Zero).AsSingle();
                    var gT1 = g & Vector256.Equals(code & Vector256.Create(1), Vector256.Create(1)).AsSingle();
                    var gB0 = g & Vector256.Equals(code & Vector256.Create(2), Vector256.Create(2)).AsSingle();
                    var gB1 = g & Vector256.Equals(code & Vector256.Create(4), Vector256.Create(4)).AsSingle();
                    Interleave(gT0, gT1, ref dTop[2 * j]);
                    Interleave(gB0, gB1, ref dBottom[2 * j]);
                }
            }
            else if (q >= 4)
            {
                for (var j = 0; j < q; j += 4)
                {
                    j = Math.Min(j, q - 4);
                    var code = Vector128.Load(codeRow + j);
                    var g = Vector128.Load(gRow + j) * (Vector128<float>.One & Vector128.Equals(code & Vector128.Create(8), Vector128.Create(8)).AsSingle());
                    var gT0 = g & Vector128.Equals(code & Vector128.Create(7), Vector128<int>.Zero).AsSingle();
                    var gT1 = g & Vector128.Equals(code & Vector128.Create(1), Vector128.Create(1)).AsSingle();
                    var gB0 = g & Vector128.Equals(code & Vector128.Create(2), Vector128.Create(2)).AsSingle();
                    var gB1 = g & Vector128.Equals(code & Vector128.Create(4), Vector128.Create(4)).AsSingle();
                    Interleave128(gT0, gT1, ref dTop[2 * j]);
                    Interleave128(gB0, gB1, ref dBottom[2 * j]);
                }
            }
            else
            {
                for (var j = 0; j < q; j++)
                {
                    var code = codeRow[j];
                    var g = gRow[j] * ((code & 8) != 0 ? 1f : 0f);
                    var target = (code & 1) != 0 ? dTop + (2 * j) + 1
                        : (code & 2) != 0 ? dBottom + (2 * j)
                        : (code & 4) != 0 ? dBottom + (2 * j) + 1
                        : dTop + (2 * j);
                    *target = g;
                }
            }
        }
    }

    /// <summary>One sample's backward (its C planes), for <see cref="Conv2D.BackwardThroughMaxPool"/>: 2x2 max pooling only.</summary>
    // dInput (C,H,W) <- dOutput (C,P,Q), input (C,H,W)
    internal unsafe void BackwardSample(float* dInput, float* dOutput, float* input)
    {
        if (!IsMax2x2)
        {
            throw new InvalidOperationException($"layer '{Name}': BackwardSample is for 2x2 max pooling at stride 2");
        }

        var inPlane = InputShape.H * InputShape.W;
        var outPlane = OutputShape.H * OutputShape.W;
        for (var c = 0; c < InputShape.C; c++)
        {
            BackwardPlaneMax2x2(new Span<float>(dInput + (c * inPlane), inPlane), new ReadOnlySpan<float>(dOutput + (c * outPlane), outPlane), new ReadOnlySpan<float>(input + (c * inPlane), inPlane));
        }
    }

    /// <summary>Plain reference over a whole batch, with explicit padding checks: the test oracle.</summary>
    // input (N,C,H,W) -> output (N,C,P,Q)
    internal static void ForwardReference(Pool2DSpec spec, Span<float> output, ReadOnlySpan<float> input, int n, SampleShape shape)
    {
        var (p, q, padTop, padLeft) = Geometry(spec, shape);
        var o = 0;
        for (var plane = 0; plane < n * shape.C; plane++)
        {
            var x = input.Slice(plane * shape.H * shape.W, shape.H * shape.W);
            for (var i = 0; i < p; i++)
            {
                for (var j = 0; j < q; j++)
                {
                    var best = float.NegativeInfinity;
                    var sum = 0f;
                    var count = 0;
                    for (var r = 0; r < spec.PoolH; r++)
                    {
                        for (var s = 0; s < spec.PoolW; s++)
                        {
                            var h = (i * spec.StrideH) - padTop + r;
                            var w = (j * spec.StrideW) - padLeft + s;
                            if (h < 0 || h >= shape.H || w < 0 || w >= shape.W)
                            {
                                continue;
                            }

                            var v = x[(h * shape.W) + w];
                            best = count == 0 || v > best ? v : best;
                            sum += v;
                            count++;
                        }
                    }

                    output[o++] = spec.Kind == PoolKind.Max ? best : sum / count;
                }
            }
        }
    }

    /// <summary>Plain reference backward over a whole batch: the test oracle.</summary>
    // dInput (N,C,H,W) <- dOutput (N,C,P,Q), input (N,C,H,W)
    internal static void BackwardReference(Pool2DSpec spec, Span<float> dInput, ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, int n, SampleShape shape)
    {
        var (p, q, padTop, padLeft) = Geometry(spec, shape);
        dInput[..(n * shape.Size)].Clear();
        var o = 0;
        for (var plane = 0; plane < n * shape.C; plane++)
        {
            var offset = plane * shape.H * shape.W;
            for (var i = 0; i < p; i++)
            {
                for (var j = 0; j < q; j++)
                {
                    var g = dOutput[o++];
                    var argmax = -1;
                    var count = 0;
                    for (var r = 0; r < spec.PoolH; r++)
                    {
                        for (var s = 0; s < spec.PoolW; s++)
                        {
                            var h = (i * spec.StrideH) - padTop + r;
                            var w = (j * spec.StrideW) - padLeft + s;
                            if (h >= 0 && h < shape.H && w >= 0 && w < shape.W)
                            {
                                var index = offset + (h * shape.W) + w;
                                argmax = argmax < 0 || input[index] > input[argmax] ? index : argmax;
                                count++;
                            }
                        }
                    }

                    for (var r = 0; r < spec.PoolH; r++)
                    {
                        for (var s = 0; s < spec.PoolW; s++)
                        {
                            var h = (i * spec.StrideH) - padTop + r;
                            var w = (j * spec.StrideW) - padLeft + s;
                            var index = offset + (h * shape.W) + w;
                            if (h >= 0 && h < shape.H && w >= 0 && w < shape.W && (spec.Kind == PoolKind.Average || index == argmax))
                            {
                                dInput[index] += spec.Kind == PoolKind.Max ? g : g / count;
                            }
                        }
                    }
                }
            }
        }
    }

    protected override SampleShape ComputeOutputShape(SampleShape input) => Spec.OutputShape(input);

    protected override void AllocateParameters()
    {
        var (p, q, padTop, padLeft) = Geometry(Spec, InputShape);
        rows = Windows(p, Spec.PoolH, Spec.StrideH, padTop, InputShape.H);
        cols = Windows(q, Spec.PoolW, Spec.StrideW, padLeft, InputShape.W);
    }

    private static (int P, int Q, int PadTop, int PadLeft) Geometry(Pool2DSpec spec, SampleShape shape) => (
        ConvGeometry.OutputSize(shape.H, spec.PoolH, spec.StrideH, spec.Padding),
        ConvGeometry.OutputSize(shape.W, spec.PoolW, spec.StrideW, spec.Padding),
        ConvGeometry.PadBefore(shape.H, spec.PoolH, spec.StrideH, spec.Padding),
        ConvGeometry.PadBefore(shape.W, spec.PoolW, spec.StrideW, spec.Padding));

    // The real (unpadded) input range of each output position along one axis.
    private static Window[] Windows(int outputs, int pool, int stride, int padBefore, int input)
    {
        var windows = new Window[outputs];
        for (var i = 0; i < outputs; i++)
        {
            var start = (i * stride) - padBefore;
            windows[i] = new Window(Math.Max(start, 0), Math.Min(start + pool, input));
        }

        return windows;
    }

    // x (H,W) -> y (P,Q). Windows are clamped to the plane when built, so indexing is unchecked.
    private void ForwardPlane(Span<float> y, ReadOnlySpan<float> x)
    {
        var width = InputShape.W;
        var max = Spec.Kind == PoolKind.Max;
        ref var x0 = ref MemoryMarshal.GetReference(x);
        ref var y0 = ref MemoryMarshal.GetReference(y);
        var o = 0;
        foreach (var row in rows)
        {
            foreach (var col in cols)
            {
                float result;
                if (max)
                {
                    result = Unsafe.Add(ref x0, (row.Start * width) + col.Start);
                    for (var h = row.Start; h < row.End; h++)
                    {
                        ref var line = ref Unsafe.Add(ref x0, h * width);
                        for (var w = col.Start; w < col.End; w++)
                        {
                            result = Larger(Unsafe.Add(ref line, w), result);
                        }
                    }
                }
                else
                {
                    var sum = 0f;
                    for (var h = row.Start; h < row.End; h++)
                    {
                        ref var line = ref Unsafe.Add(ref x0, h * width);
                        for (var w = col.Start; w < col.End; w++)
                        {
                            sum += Unsafe.Add(ref line, w);
                        }
                    }

                    result = sum / (row.Length * col.Length);
                }

                Unsafe.Add(ref y0, o++) = result;
            }
        }
    }

    // dx (H,W) <- dy (P,Q), x (H,W); overlapping windows add in output order.
    private void BackwardPlane(Span<float> dx, ReadOnlySpan<float> dy, ReadOnlySpan<float> x)
    {
        var width = InputShape.W;
        var max = Spec.Kind == PoolKind.Max;
        dx.Clear();
        ref var x0 = ref MemoryMarshal.GetReference(x);
        ref var dx0 = ref MemoryMarshal.GetReference(dx);
        ref var dy0 = ref MemoryMarshal.GetReference(dy);
        var o = 0;
        foreach (var row in rows)
        {
            foreach (var col in cols)
            {
                var g = Unsafe.Add(ref dy0, o++);
                if (max)
                {
                    // The row-major scan of the reference (argmax moves on a strictly larger value:
                    // first max on ties), with the comparison used as a value (setcc) and an integer
                    // select instead of a branch, which mispredicts on real data.
                    var argmax = (row.Start * width) + col.Start;
                    var best = Unsafe.Add(ref x0, argmax);
                    for (var h = row.Start; h < row.End; h++)
                    {
                        for (var w = col.Start; w < col.End; w++)
                        {
                            var index = (h * width) + w;
                            var v = Unsafe.Add(ref x0, index);
                            var take = -(int)Unsafe.BitCast<bool, byte>(v > best); // -1 if v > best, else 0
                            argmax = (index & take) | (argmax & ~take);
                            best = Larger(v, best);
                        }
                    }

                    Unsafe.Add(ref dx0, argmax) += g;
                }
                else
                {
                    var share = g / (row.Length * col.Length);
                    for (var h = row.Start; h < row.End; h++)
                    {
                        ref var line = ref Unsafe.Add(ref dx0, h * width);
                        for (var w = col.Start; w < col.End; w++)
                        {
                            Unsafe.Add(ref line, w) += share;
                        }
                    }
                }
            }
        }
    }

    /// <summary>2x2 max pooling with stride 2 and no padding, the case nearly every CNN uses, has an AVX path.</summary>
    private bool IsMax2x2 => Avx.IsSupported && Spec is { Kind: PoolKind.Max, PoolH: 2, PoolW: 2, StrideH: 2, StrideW: 2, Padding: Padding.Valid };

    // x (H,W) -> y (P,Q) for 2x2 windows at stride 2: eight (or four) outputs per step. The window is
    // scanned in the reference's order (x00, x01, x10, x11) with max(v, best) = v > best ? v : best,
    // which is what MAXPS computes lane by lane, so results equal the reference bitwise (NaN and ±0
    // included). A row's last partial group is one more step ending at the row's end, overlapping
    // the previous one: it recomputes the same values, so no scalar tail (a 5- or 13-wide row).
    private void ForwardPlaneMax2x2(Span<float> y, ReadOnlySpan<float> x)
    {
        var width = InputShape.W;
        var q = OutputShape.W;
        ref var x0 = ref MemoryMarshal.GetReference(x);
        ref var y0 = ref MemoryMarshal.GetReference(y);
        for (var i = 0; i < OutputShape.H; i++)
        {
            ref var top = ref Unsafe.Add(ref x0, 2 * i * width);
            ref var bottom = ref Unsafe.Add(ref top, width);
            ref var row = ref Unsafe.Add(ref y0, i * q);
            if (q >= 8)
            {
                for (var j = 0; j < q; j += 8)
                {
                    j = Math.Min(j, q - 8);
                    var (t0, t1) = Deinterleave(ref Unsafe.Add(ref top, 2 * j));
                    var (b0, b1) = Deinterleave(ref Unsafe.Add(ref bottom, 2 * j));
                    Avx.Max(b1, Avx.Max(b0, Avx.Max(t1, t0))).StoreUnsafe(ref Unsafe.Add(ref row, j));
                }
            }
            else if (q >= 4)
            {
                for (var j = 0; j < q; j += 4)
                {
                    j = Math.Min(j, q - 4);
                    var (t0, t1) = Deinterleave128(ref Unsafe.Add(ref top, 2 * j));
                    var (b0, b1) = Deinterleave128(ref Unsafe.Add(ref bottom, 2 * j));
                    Sse.Max(b1, Sse.Max(b0, Sse.Max(t1, t0))).StoreUnsafe(ref Unsafe.Add(ref row, j));
                }
            }
            else
            {
                for (var j = 0; j < q; j++)
                {
                    var best = Unsafe.Add(ref top, 2 * j);
                    best = Larger(Unsafe.Add(ref top, (2 * j) + 1), best);
                    best = Larger(Unsafe.Add(ref bottom, 2 * j), best);
                    Unsafe.Add(ref row, j) = Larger(Unsafe.Add(ref bottom, (2 * j) + 1), best);
                }
            }
        }
    }

    // dx (H,W) <- dy (P,Q), x (H,W) for 2x2 windows at stride 2: the gradient goes to the first
    // strict maximum of the scan, decided with the reference's comparisons as lane masks. The
    // vector steps write all four positions of each window (zeros included), so only a row or
    // column past the last window is cleared; the last partial group overlaps as in the forward.
    private void BackwardPlaneMax2x2(Span<float> dx, ReadOnlySpan<float> dy, ReadOnlySpan<float> x)
    {
        var width = InputShape.W;
        var p = OutputShape.H;
        var q = OutputShape.W;
        var mask = MasksByPositiveMax;
        ref var x0 = ref MemoryMarshal.GetReference(x);
        ref var dx0 = ref MemoryMarshal.GetReference(dx);
        ref var dy0 = ref MemoryMarshal.GetReference(dy);
        if (q < 4)
        {
            dx.Clear();
        }
        else
        {
            dx[(2 * p * width)..].Clear(); // a last odd row
            if (width > 2 * q)
            {
                for (var h = 0; h < 2 * p; h++)
                {
                    dx.Slice((h * width) + (2 * q), width - (2 * q)).Clear(); // a last odd column
                }
            }
        }

        for (var i = 0; i < p; i++)
        {
            var offset = 2 * i * width;
            ref var top = ref Unsafe.Add(ref x0, offset);
            ref var bottom = ref Unsafe.Add(ref top, width);
            ref var dTop = ref Unsafe.Add(ref dx0, offset);
            ref var dBottom = ref Unsafe.Add(ref dTop, width);
            ref var gRow = ref Unsafe.Add(ref dy0, i * q);
            if (q >= 8)
            {
                for (var j = 0; j < q; j += 8)
                {
                    j = Math.Min(j, q - 8);
                    var (t0, t1) = Deinterleave(ref Unsafe.Add(ref top, 2 * j));
                    var (b0, b1) = Deinterleave(ref Unsafe.Add(ref bottom, 2 * j));
                    var g = Vector256.LoadUnsafe(ref Unsafe.Add(ref gRow, j));
                    var takeT1 = Avx.CompareGreaterThan(t1, t0);
                    var best = Avx.Max(t1, t0);
                    var takeB0 = Avx.CompareGreaterThan(b0, best);
                    best = Avx.Max(b0, best);
                    var takeB1 = Avx.CompareGreaterThan(b1, best);
                    if (mask)
                    {
                        g *= Vector256<float>.One & Avx.CompareGreaterThan(Avx.Max(b1, best), Vector256<float>.Zero);
                    }
                    var laterB0 = Avx.Or(takeB0, takeB1);
                    var laterT1 = Avx.Or(takeT1, laterB0);
                    var gB1 = Avx.And(takeB1, g);
                    var gB0 = Avx.AndNot(takeB1, Avx.And(takeB0, g));
                    var gT1 = Avx.AndNot(laterB0, Avx.And(takeT1, g));
                    var gT0 = Avx.AndNot(laterT1, g);
                    Interleave(gT0, gT1, ref Unsafe.Add(ref dTop, 2 * j));
                    Interleave(gB0, gB1, ref Unsafe.Add(ref dBottom, 2 * j));
                }
            }
            else if (q >= 4)
            {
                for (var j = 0; j < q; j += 4)
                {
                    j = Math.Min(j, q - 4);
                    var (t0, t1) = Deinterleave128(ref Unsafe.Add(ref top, 2 * j));
                    var (b0, b1) = Deinterleave128(ref Unsafe.Add(ref bottom, 2 * j));
                    var g = Vector128.LoadUnsafe(ref Unsafe.Add(ref gRow, j));
                    var takeT1 = Sse.CompareGreaterThan(t1, t0);
                    var best = Sse.Max(t1, t0);
                    var takeB0 = Sse.CompareGreaterThan(b0, best);
                    best = Sse.Max(b0, best);
                    var takeB1 = Sse.CompareGreaterThan(b1, best);
                    if (mask)
                    {
                        g *= Vector128<float>.One & Sse.CompareGreaterThan(Sse.Max(b1, best), Vector128<float>.Zero);
                    }
                    var laterB0 = Sse.Or(takeB0, takeB1);
                    var laterT1 = Sse.Or(takeT1, laterB0);
                    var gB1 = Sse.And(takeB1, g);
                    var gB0 = Sse.AndNot(takeB1, Sse.And(takeB0, g));
                    var gT1 = Sse.AndNot(laterB0, Sse.And(takeT1, g));
                    var gT0 = Sse.AndNot(laterT1, g);
                    Interleave128(gT0, gT1, ref Unsafe.Add(ref dTop, 2 * j));
                    Interleave128(gB0, gB1, ref Unsafe.Add(ref dBottom, 2 * j));
                }
            }
            else
            {
                for (var j = 0; j < q; j++)
                {
                    var g = Unsafe.Add(ref gRow, j);
                    var argmax = 2 * j;
                    var best = Unsafe.Add(ref top, argmax);
                    ref var target = ref Unsafe.Add(ref dTop, argmax);
                    var v = Unsafe.Add(ref top, (2 * j) + 1);
                    if (v > best)
                    {
                        best = v;
                        target = ref Unsafe.Add(ref dTop, (2 * j) + 1);
                    }

                    v = Unsafe.Add(ref bottom, 2 * j);
                    if (v > best)
                    {
                        best = v;
                        target = ref Unsafe.Add(ref dBottom, 2 * j);
                    }

                    v = Unsafe.Add(ref bottom, (2 * j) + 1);
                    if (v > best)
                    {
                        best = v;
                        target = ref Unsafe.Add(ref dBottom, (2 * j) + 1);
                    }

                    target = mask ? g * (best > 0f ? 1f : 0f) : g;
                }
            }
        }
    }

    /// <summary>8 consecutive floats -> (even-indexed 4, odd-indexed 4), each in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector128<float> Even, Vector128<float> Odd) Deinterleave128(ref float source)
    {
        var a = Vector128.LoadUnsafe(ref source);
        var b = Vector128.LoadUnsafe(ref source, 4);
        return (Sse.Shuffle(a, b, 0b10_00_10_00), Sse.Shuffle(a, b, 0b11_01_11_01));
    }

    /// <summary>(even 4, odd 4) -> 8 consecutive floats e0 o0 e1 o1 ...</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Interleave128(Vector128<float> even, Vector128<float> odd, ref float destination)
    {
        Sse.UnpackLow(even, odd).StoreUnsafe(ref destination);
        Sse.UnpackHigh(even, odd).StoreUnsafe(ref destination, 4);
    }

    /// <summary>16 consecutive floats -> (even-indexed 8, odd-indexed 8), each in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Even, Vector256<float> Odd) Deinterleave(ref float source)
    {
        var a = Vector256.LoadUnsafe(ref source);
        var b = Vector256.LoadUnsafe(ref source, 8);
        // Within each 128-bit lane: (a0 a2 b0 b2 | a4 a6 b4 b6); a 64-bit permute restores order.
        var even = Avx.Shuffle(a, b, 0b10_00_10_00);
        var odd = Avx.Shuffle(a, b, 0b11_01_11_01);
        return (
            Avx2.Permute4x64(even.AsDouble(), 0b11_01_10_00).AsSingle(),
            Avx2.Permute4x64(odd.AsDouble(), 0b11_01_10_00).AsSingle());
    }

    /// <summary>(even 8, odd 8) -> 16 consecutive floats e0 o0 e1 o1 ...</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Interleave(Vector256<float> even, Vector256<float> odd, ref float destination)
    {
        var low = Avx.UnpackLow(even, odd);   // e0 o0 e1 o1 | e4 o4 e5 o5
        var high = Avx.UnpackHigh(even, odd); // e2 o2 e3 o3 | e6 o6 e7 o7
        Avx.Permute2x128(low, high, 0x20).StoreUnsafe(ref destination);
        Avx.Permute2x128(low, high, 0x31).StoreUnsafe(ref destination, 8);
    }

    /// <summary>v &gt; best ? v : best. SSE's maxss computes exactly that (NaN and ±0 included) without the branch that mispredicts on real data.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Larger(float v, float best) => Sse.IsSupported
        ? Sse.MaxScalar(Vector128.CreateScalarUnsafe(v), Vector128.CreateScalarUnsafe(best)).ToScalar()
        : v > best ? v : best;

    private readonly record struct Window(int Start, int End)
    {
        public int Length => End - Start;
    }
}
