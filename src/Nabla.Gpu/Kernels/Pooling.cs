using ILGPU;
using Nabla.Kernels;

namespace Nabla.Gpu.Kernels;

/// <summary>Pooling and the depthwise / col2im convolution helpers over NCHW planes, naive: one thread per output
/// element; backward passes scatter with atomic adds into a zeroed dx (windows overlap).</summary>
internal static class Pooling
{
    private static int Row(Conv2dGeometry g, int oh, int i) => oh * g.StrideH - g.PadH + i * g.DilationH;
    private static int Col(Conv2dGeometry g, int ow, int j) => ow * g.StrideW - g.PadW + j * g.DilationW;

    public static void MaxPool(Index1D index, ArrayView<float> x, ArrayView<float> y, ArrayView<int> argmax, Conv2dGeometry g)
    {
        int OW = g.OutWidth, OH = g.OutHeight;
        int ow = index % OW, oh = index / OW % OH, plane = index / OW / OH;
        long start = (long)plane * g.Height * g.Width;
        float best = float.NegativeInfinity;
        int at = -1;
        for (int i = 0; i < g.KernelH; i++)
            for (int j = 0; j < g.KernelW; j++)
            {
                int ih = Row(g, oh, i), iw = Col(g, ow, j);
                if (ih < 0 || ih >= g.Height || iw < 0 || iw >= g.Width) continue;
                int position = ih * g.Width + iw;
                if (at < 0) at = position;
                float v = x[start + position];
                if (v > best || float.IsNaN(v)) { best = v; at = position; }
            }
        y[index] = best;
        argmax[index] = at;
    }

    public static void MaxPoolBackward(Index1D index, ArrayView<float> dy, ArrayView<int> argmax, ArrayView<float> dx, int planeOut, int planeIn)
    {
        long plane = index / planeOut;
        Atomic.Add(ref dx[plane * planeIn + argmax[index]], dy[index]);
    }

    private static int Inside(Conv2dGeometry g, int oh, int ow)
    {
        int inside = 0;
        for (int i = 0; i < g.KernelH; i++)
            for (int j = 0; j < g.KernelW; j++)
            {
                int ih = oh * g.StrideH - g.PadH + i, iw = ow * g.StrideW - g.PadW + j;
                if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width) inside++;
            }
        return inside;
    }

    public static void AvgPool(Index1D index, ArrayView<float> x, ArrayView<float> y, Conv2dGeometry g, int countIncludePad)
    {
        int OW = g.OutWidth, OH = g.OutHeight;
        int ow = index % OW, oh = index / OW % OH, plane = index / OW / OH;
        float sum = 0;
        for (int i = 0; i < g.KernelH; i++)
            for (int j = 0; j < g.KernelW; j++)
            {
                int ih = oh * g.StrideH - g.PadH + i, iw = ow * g.StrideW - g.PadW + j;
                if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width) sum += x[((long)plane * g.Height + ih) * g.Width + iw];
            }
        int inside = Inside(g, oh, ow);
        y[index] = inside == 0 ? 0f : sum / (countIncludePad != 0 ? g.KernelH * g.KernelW : inside);
    }

    public static void AvgPoolBackward(Index1D index, ArrayView<float> dy, ArrayView<float> dx, Conv2dGeometry g, int countIncludePad)
    {
        int OW = g.OutWidth, OH = g.OutHeight;
        int ow = index % OW, oh = index / OW % OH, plane = index / OW / OH;
        int inside = Inside(g, oh, ow);
        if (inside == 0) return;
        float share = dy[index] / (countIncludePad != 0 ? g.KernelH * g.KernelW : inside);
        for (int i = 0; i < g.KernelH; i++)
            for (int j = 0; j < g.KernelW; j++)
            {
                int ih = oh * g.StrideH - g.PadH + i, iw = ow * g.StrideW - g.PadW + j;
                if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width) Atomic.Add(ref dx[((long)plane * g.Height + ih) * g.Width + iw], share);
            }
    }

    private static int WindowStart(int o, int size, int outSize) => (int)((long)o * size / outSize);
    private static int WindowEnd(int o, int size, int outSize) => (int)(((long)(o + 1) * size + outSize - 1) / outSize);

    public static void AdaptiveAvgPool(Index1D index, ArrayView<float> x, ArrayView<float> y, int height, int width, int outHeight, int outWidth)
    {
        int ow = index % outWidth, oh = index / outWidth % outHeight, plane = index / outWidth / outHeight;
        int h0 = WindowStart(oh, height, outHeight), h1 = WindowEnd(oh, height, outHeight);
        int w0 = WindowStart(ow, width, outWidth), w1 = WindowEnd(ow, width, outWidth);
        float sum = 0;
        for (int ih = h0; ih < h1; ih++)
            for (int iw = w0; iw < w1; iw++) sum += x[((long)plane * height + ih) * width + iw];
        y[index] = sum / ((h1 - h0) * (w1 - w0));
    }

    public static void AdaptiveAvgPoolBackward(Index1D index, ArrayView<float> dy, ArrayView<float> dx, int height, int width, int outHeight, int outWidth)
    {
        int ow = index % outWidth, oh = index / outWidth % outHeight, plane = index / outWidth / outHeight;
        int h0 = WindowStart(oh, height, outHeight), h1 = WindowEnd(oh, height, outHeight);
        int w0 = WindowStart(ow, width, outWidth), w1 = WindowEnd(ow, width, outWidth);
        float share = dy[index] / ((h1 - h0) * (w1 - w0));
        for (int ih = h0; ih < h1; ih++)
            for (int iw = w0; iw < w1; iw++) Atomic.Add(ref dx[((long)plane * height + ih) * width + iw], share);
    }

    /// <summary>One thread per entry of col (plane, i, j, oh, ow): adds it to the input position its tap reads.</summary>
    public static void Col2Im(Index1D index, ArrayView<float> col, ArrayView<float> dx, Conv2dGeometry g)
    {
        int OW = g.OutWidth, OH = g.OutHeight;
        int ow = index % OW, oh = index / OW % OH, tap = index / OW / OH;
        int j = tap % g.KernelW, i = tap / g.KernelW % g.KernelH, plane = tap / g.KernelW / g.KernelH;
        int ih = Row(g, oh, i), iw = Col(g, ow, j);
        if (ih < 0 || ih >= g.Height || iw < 0 || iw >= g.Width) return;
        Atomic.Add(ref dx[((long)plane * g.Height + ih) * g.Width + iw], col[index]);
    }

    public static void Depthwise(Index1D index, ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y, Conv2dGeometry g, int hasBias)
    {
        int OW = g.OutWidth, OH = g.OutHeight, multiplier = g.OutChannels / g.Channels;
        int ow = index % OW, oh = index / OW % OH, o = index / OW / OH % g.OutChannels, n = index / OW / OH / g.OutChannels;
        long xp = ((long)n * g.Channels + o / multiplier) * g.Height * g.Width, wo = (long)o * g.KernelH * g.KernelW;
        float acc = hasBias != 0 ? bias[o] : 0f;
        for (int i = 0; i < g.KernelH; i++)
            for (int j = 0; j < g.KernelW; j++)
            {
                int ih = Row(g, oh, i), iw = Col(g, ow, j);
                if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width) acc += w[wo + i * g.KernelW + j] * x[xp + (long)ih * g.Width + iw];
            }
        y[index] = acc;
    }

    public static void DepthwiseBackwardInput(Index1D index, ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx, Conv2dGeometry g)
    {
        int OW = g.OutWidth, OH = g.OutHeight, multiplier = g.OutChannels / g.Channels;
        int ow = index % OW, oh = index / OW % OH, o = index / OW / OH % g.OutChannels, n = index / OW / OH / g.OutChannels;
        long xp = ((long)n * g.Channels + o / multiplier) * g.Height * g.Width, wo = (long)o * g.KernelH * g.KernelW;
        float d = dy[index];
        for (int i = 0; i < g.KernelH; i++)
            for (int j = 0; j < g.KernelW; j++)
            {
                int ih = Row(g, oh, i), iw = Col(g, ow, j);
                if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width) Atomic.Add(ref dx[xp + (long)ih * g.Width + iw], w[wo + i * g.KernelW + j] * d);
            }
    }

    /// <summary>One thread per weight (o, i, j), summing over the batch and the output plane.</summary>
    public static void DepthwiseBackwardWeight(Index1D index, ArrayView<float> dy, ArrayView<float> x, ArrayView<float> dw, Conv2dGeometry g)
    {
        int OW = g.OutWidth, OH = g.OutHeight, multiplier = g.OutChannels / g.Channels;
        int j = index % g.KernelW, i = index / g.KernelW % g.KernelH, o = index / g.KernelW / g.KernelH;
        double acc = 0;
        for (int n = 0; n < g.Batch; n++)
        {
            long xp = ((long)n * g.Channels + o / multiplier) * g.Height * g.Width;
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++)
                {
                    int ih = Row(g, oh, i), iw = Col(g, ow, j);
                    if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width)
                        acc += (double)dy[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow] * x[xp + (long)ih * g.Width + iw];
                }
        }
        dw[index] = (float)acc;
    }
}
