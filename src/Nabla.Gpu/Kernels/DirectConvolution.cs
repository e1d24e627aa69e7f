using ILGPU;
using Nabla.Kernels;

namespace Nabla.Gpu.Kernels;

/// <summary>Naive dense convolution (groups = 1) straight from NCHW, no im2col: one thread per output, per input
/// position (gathering, so no atomics) or per weight. The spec is <c>ReferenceBackend.DirectConv2d*</c>.</summary>
internal static class DirectConvolution
{
    /// <summary>One thread per output (n, o, oh, ow): bias plus the sum over channels and taps.</summary>
    public static void Forward(Index1D index, ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, Conv2dGeometry g, int hasBias)
    {
        int OW = g.OutWidth, OH = g.OutHeight;
        int ow = index % OW, oh = index / OW % OH, o = index / OW / OH % g.OutChannels, n = index / OW / OH / g.OutChannels;
        float acc = hasBias != 0 ? bias[o] : 0f;
        for (int c = 0; c < g.Channels; c++)
            for (int i = 0; i < g.KernelH; i++)
                for (int j = 0; j < g.KernelW; j++)
                {
                    int ih = oh * g.StrideH - g.PadH + i * g.DilationH, iw = ow * g.StrideW - g.PadW + j * g.DilationW;
                    if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width)
                        acc += w[(((long)o * g.Channels + c) * g.KernelH + i) * g.KernelW + j] * x[(((long)n * g.Channels + c) * g.Height + ih) * g.Width + iw];
                }
        y[index] = acc;
    }

    /// <summary>One thread per input position (n, c, ih, iw): the sum over every (output, tap) that read it.</summary>
    public static void BackwardInput(Index1D index, ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx, Conv2dGeometry g)
    {
        int OW = g.OutWidth, OH = g.OutHeight;
        int iw = index % g.Width, ih = index / g.Width % g.Height, c = index / g.Width / g.Height % g.Channels, n = index / g.Width / g.Height / g.Channels;
        float acc = 0f;
        for (int o = 0; o < g.OutChannels; o++)
            for (int i = 0; i < g.KernelH; i++)
                for (int j = 0; j < g.KernelW; j++)
                {
                    int rh = ih + g.PadH - i * g.DilationH, rw = iw + g.PadW - j * g.DilationW;
                    if (rh < 0 || rw < 0 || rh % g.StrideH != 0 || rw % g.StrideW != 0) continue;
                    int oh = rh / g.StrideH, ow = rw / g.StrideW;
                    if (oh < OH && ow < OW)
                        acc += w[(((long)o * g.Channels + c) * g.KernelH + i) * g.KernelW + j] * dy[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow];
                }
        dx[index] = acc;
    }

    /// <summary>One thread per weight (o, c, i, j), summing over the batch and the output plane.</summary>
    public static void BackwardWeight(Index1D index, ArrayView<float> dy, ArrayView<float> x, ArrayView<float> dw, Conv2dGeometry g)
    {
        int OW = g.OutWidth, OH = g.OutHeight;
        int j = index % g.KernelW, i = index / g.KernelW % g.KernelH, c = index / g.KernelW / g.KernelH % g.Channels, o = index / g.KernelW / g.KernelH / g.Channels;
        float acc = 0f;
        for (int n = 0; n < g.Batch; n++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++)
                {
                    int ih = oh * g.StrideH - g.PadH + i * g.DilationH, iw = ow * g.StrideW - g.PadW + j * g.DilationW;
                    if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width)
                        acc += dy[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow] * x[(((long)n * g.Channels + c) * g.Height + ih) * g.Width + iw];
                }
        dw[index] = acc;
    }
}
