using ClusterConv.Engine.Specs;

namespace ClusterConv.Engine.Kernels;

/// <summary>
/// Sizes of one 2-D convolution: input (N,C,H,W), weight (K,C,R,S), output (N,K,P,Q), with
/// strides and the zero padding before the first row and column (Keras/TensorFlow "same" puts the
/// odd extra pixel after).
/// </summary>
public readonly record struct ConvProblem(int N, int C, int H, int W, int K, int R, int S, int StrideH, int StrideW, int PadTop, int PadLeft, int P, int Q)
{
    /// <summary>One sample's im2col row: C·R·S.</summary>
    public int Crs => C * R * S;

    public static ConvProblem Create(Conv2DSpec spec, SampleShape input, int batch)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var output = spec.OutputShape(input);
        return new ConvProblem(
            batch,
            input.C,
            input.H,
            input.W,
            spec.Filters,
            spec.KernelH,
            spec.KernelW,
            spec.StrideH,
            spec.StrideW,
            ConvGeometry.PadBefore(input.H, spec.KernelH, spec.StrideH, spec.Padding),
            ConvGeometry.PadBefore(input.W, spec.KernelW, spec.StrideW, spec.Padding),
            output.H,
            output.W);
    }

    /// <summary>Multiply-adds of the forward pass times two; the weight and the input gradient cost the same each.</summary>
    public long ForwardFlops => 2L * N * K * P * Q * C * R * S;
}

/// <summary>
/// Direct nested-loop convolution, double accumulators: the oracle for <see cref="Layers.Conv2D"/>.
/// No activation; spans are NCHW, weight (K,C,R,S).
/// </summary>
public static class ConvReference
{
    // input (N,C,H,W), weight (K,C,R,S), bias (K) or empty -> output (N,K,P,Q)
    public static void Forward(ConvProblem g, ReadOnlySpan<float> input, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> output)
    {
        for (var n = 0; n < g.N; n++)
        {
            for (var k = 0; k < g.K; k++)
            {
                for (var p = 0; p < g.P; p++)
                {
                    for (var q = 0; q < g.Q; q++)
                    {
                        double sum = bias.IsEmpty ? 0.0 : bias[k];
                        for (var c = 0; c < g.C; c++)
                        {
                            for (var r = 0; r < g.R; r++)
                            {
                                for (var s = 0; s < g.S; s++)
                                {
                                    var h = (p * g.StrideH) + r - g.PadTop;
                                    var w = (q * g.StrideW) + s - g.PadLeft;
                                    if (h >= 0 && h < g.H && w >= 0 && w < g.W)
                                    {
                                        sum += (double)input[InputIndex(g, n, c, h, w)] * weight[WeightIndex(g, k, c, r, s)];
                                    }
                                }
                            }
                        }

                        output[OutputIndex(g, n, k, p, q)] = (float)sum;
                    }
                }
            }
        }
    }

    // dOutput (N,K,P,Q), weight (K,C,R,S) -> dInput (N,C,H,W)
    public static void BackwardInput(ConvProblem g, ReadOnlySpan<float> dOutput, ReadOnlySpan<float> weight, Span<float> dInput)
    {
        var sums = new double[dInput.Length];
        for (var n = 0; n < g.N; n++)
        {
            for (var k = 0; k < g.K; k++)
            {
                for (var p = 0; p < g.P; p++)
                {
                    for (var q = 0; q < g.Q; q++)
                    {
                        var d = dOutput[OutputIndex(g, n, k, p, q)];
                        for (var c = 0; c < g.C; c++)
                        {
                            for (var r = 0; r < g.R; r++)
                            {
                                for (var s = 0; s < g.S; s++)
                                {
                                    var h = (p * g.StrideH) + r - g.PadTop;
                                    var w = (q * g.StrideW) + s - g.PadLeft;
                                    if (h >= 0 && h < g.H && w >= 0 && w < g.W)
                                    {
                                        sums[InputIndex(g, n, c, h, w)] += (double)d * weight[WeightIndex(g, k, c, r, s)];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        for (var i = 0; i < sums.Length; i++)
        {
            dInput[i] = (float)sums[i];
        }
    }

    // dOutput (N,K,P,Q), input (N,C,H,W) -> dWeight (K,C,R,S)
    public static void BackwardWeight(ConvProblem g, ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, Span<float> dWeight)
    {
        for (var k = 0; k < g.K; k++)
        {
            for (var c = 0; c < g.C; c++)
            {
                for (var r = 0; r < g.R; r++)
                {
                    for (var s = 0; s < g.S; s++)
                    {
                        double sum = 0;
                        for (var n = 0; n < g.N; n++)
                        {
                            for (var p = 0; p < g.P; p++)
                            {
                                for (var q = 0; q < g.Q; q++)
                                {
                                    var h = (p * g.StrideH) + r - g.PadTop;
                                    var w = (q * g.StrideW) + s - g.PadLeft;
                                    if (h >= 0 && h < g.H && w >= 0 && w < g.W)
                                    {
                                        sum += (double)dOutput[OutputIndex(g, n, k, p, q)] * input[InputIndex(g, n, c, h, w)];
                                    }
                                }
                            }
                        }

                        dWeight[WeightIndex(g, k, c, r, s)] = (float)sum;
                    }
                }
            }
        }
    }

    // dOutput (N,K,P,Q) -> dBias (K)
    public static void BackwardBias(ConvProblem g, ReadOnlySpan<float> dOutput, Span<float> dBias)
    {
        for (var k = 0; k < g.K; k++)
        {
            double sum = 0;
            for (var n = 0; n < g.N; n++)
            {
                for (var pq = 0; pq < g.P * g.Q; pq++)
                {
                    sum += dOutput[(((n * g.K) + k) * g.P * g.Q) + pq];
                }
            }

            dBias[k] = (float)sum;
        }
    }

    private static int InputIndex(ConvProblem g, int n, int c, int h, int w) => (((((n * g.C) + c) * g.H) + h) * g.W) + w;

    private static int WeightIndex(ConvProblem g, int k, int c, int r, int s) => (((((k * g.C) + c) * g.R) + r) * g.S) + s;

    private static int OutputIndex(ConvProblem g, int n, int k, int p, int q) => (((((n * g.K) + k) * g.P) + p) * g.Q) + q;
}
