namespace Nabla.Kernels.Cpu;

// Pooling kernels over NCHW data, one plane per task: max and average pooling on padded phase-split planes
// (CpuBackend.PaddedPlane.cs), adaptive average pooling with plain loops.
public sealed unsafe partial class CpuBackend
{
    public void MaxPool2d(in Conv2dGeometry g, float* x, float* y, int* argmax) =>
        ParallelKernel.Items(g.Planes, new MaxPoolPlanes(g, x, y, argmax));

    public void MaxPool2dBackward(in Conv2dGeometry g, float* dy, int* argmax, float* dx) =>
        ParallelKernel.Items(g.Planes, new MaxPoolBackwardPlanes(g, dy, argmax, dx));

    public void AvgPool2d(in Conv2dGeometry g, bool countIncludePad, float* x, float* y) =>
        ParallelKernel.Items(g.Planes, new AvgPoolPlanes(g, countIncludePad, x, y));

    public void AvgPool2dBackward(in Conv2dGeometry g, bool countIncludePad, float* dy, float* dx) =>
        ParallelKernel.Items(g.Planes, new AvgPoolBackwardPlanes(g, countIncludePad, dy, dx));

    public void AdaptiveAvgPool2d(int planes, int height, int width, int outHeight, int outWidth, float* x, float* y) =>
        ParallelKernel.Items(planes, new AdaptiveAvgPoolPlanes(height, width, outHeight, outWidth, x, y));

    public void AdaptiveAvgPool2dBackward(int planes, int height, int width, int outHeight, int outWidth, float* dy, float* dx) =>
        ParallelKernel.Items(planes, new AdaptiveAvgPoolBackwardPlanes(height, width, outHeight, outWidth, dy, dx));

    private readonly struct MaxPoolPlanes(Conv2dGeometry g, float* x, float* y, int* argmax) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => MaxPoolPlane<V>(g, plane, x, y, argmax);
    }

    private readonly struct MaxPoolBackwardPlanes(Conv2dGeometry g, float* dy, int* argmax, float* dx) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => MaxPoolBackwardPlane(g, plane, dy, argmax, dx);
    }

    private readonly struct AvgPoolPlanes(Conv2dGeometry g, bool countIncludePad, float* x, float* y) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => AvgPoolPlane<V>(g, plane, countIncludePad, x, y);
    }

    private readonly struct AvgPoolBackwardPlanes(Conv2dGeometry g, bool countIncludePad, float* dy, float* dx) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => AvgPoolBackwardPlane<V>(g, plane, countIncludePad, dy, dx);
    }

    private readonly struct AdaptiveAvgPoolPlanes(int height, int width, int outHeight, int outWidth, float* x, float* y) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => AdaptiveAvgPoolPlane(plane, height, width, outHeight, outWidth, x, y);
    }

    private readonly struct AdaptiveAvgPoolBackwardPlanes(int height, int width, int outHeight, int outWidth, float* dy, float* dx) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => AdaptiveAvgPoolBackwardPlane(plane, height, width, outHeight, outWidth, dy, dx);
    }


    // The running maximum and the number of the tap that reached it are kept per output lane; the tap numbers become
    // plane indices afterwards. A NaN always takes over (the last one wins, as in PyTorch's loop).
    private static void MaxPoolPlane<V>(in Conv2dGeometry g, int plane, float* x, float* y, int* argmax) where V : struct, IVec<V>
    {
        if (g is { KernelH: 2, KernelW: 2, StrideH: 2, StrideW: 2, PadH: 0, PadW: 0, DilationH: 1, DilationW: 1 })
        {
            MaxPool2x2Plane(g, plane, x, y, argmax);
            return;
        }
        var p = new PaddedPlane(g);
        int OH = g.OutHeight, OW = g.OutWidth, taps = g.KernelH * g.KernelW;
        int* tap = stackalloc int[taps];
        TapOffsets(g, p, tap);
        float* padded = ThreadScratch.Floats(p.Floats + ThreadScratch.Aligned(OW));
        float* winner = padded + ThreadScratch.Aligned(p.Floats);
        Pad(g, p, x + (long)plane * g.Height * g.Width, padded, float.NegativeInfinity);
        float* yPlane = y + (long)plane * OH * OW;
        int* indexPlane = argmax + (long)plane * OH * OW;
        for (int oh = 0; oh < OH; oh++)
        {
            float* rowBase = padded + (long)oh * g.StrideH * p.RowStride, yRow = yPlane + (long)oh * OW;
            int ow = MaxPoolRow<V>(rowBase, tap, taps, yRow, winner, 0, OW);
            if (V.Count > V256.Count) ow = MaxPoolRow<V256>(rowBase, tap, taps, yRow, winner, ow, OW);
            MaxPoolRow<V1>(rowBase, tap, taps, yRow, winner, ow, OW);
            for (ow = 0; ow < OW; ow++)
            {
                int t = (int)winner[ow];
                int ih, iw;
                if (t >= 0)
                {
                    ih = oh * g.StrideH - g.PadH + t / g.KernelW * g.DilationH;
                    iw = ow * g.StrideW - g.PadW + t % g.KernelW * g.DilationW;
                }
                else
                {
                    // Nothing above -∞: the first window position inside the input.
                    ih = FirstInside(oh * g.StrideH - g.PadH, g.DilationH);
                    iw = FirstInside(ow * g.StrideW - g.PadW, g.DilationW);
                }
                indexPlane[(long)oh * OW + ow] = ih * g.Width + iw;
            }
        }
    }

    // The common 2×2 stride-2 window (LeNet, VGG) straight from the input, without the padded phase-split copy and the
    // tap bookkeeping of the general loop: on small planes those cost several times the comparisons. Same rules: the
    // first maximum in window order, a NaN taking over from anything before it.
    private static void MaxPool2x2Plane(in Conv2dGeometry g, int plane, float* x, float* y, int* argmax)
    {
        int OH = g.OutHeight, OW = g.OutWidth, W = g.Width;
        float* xPlane = x + (long)plane * g.Height * W, yRow = y + (long)plane * OH * OW;
        int* indexRow = argmax + (long)plane * OH * OW;
        for (int oh = 0; oh < OH; oh++, yRow += OW, indexRow += OW)
        {
            int top = 2 * oh * W;
            float* r0 = xPlane + top, r1 = r0 + W;
            for (int ow = 0; ow < OW; ow++)
            {
                int at = 2 * ow;
                float best = r0[at];
                int index = top + at;
                float v = r0[at + 1];
                if (v > best || float.IsNaN(v)) { best = v; index = top + at + 1; }
                v = r1[at];
                if (v > best || float.IsNaN(v)) { best = v; index = top + W + at; }
                v = r1[at + 1];
                if (v > best || float.IsNaN(v)) { best = v; index = top + W + at + 1; }
                yRow[ow] = best;
                indexRow[ow] = index;
            }
        }
    }

    private static int FirstInside(int start, int dilation) => start >= 0 ? start : start + (-start + dilation - 1) / dilation * dilation;

    private static int MaxPoolRow<V>(float* rowBase, int* tap, int taps, float* y, float* winner, int ow, int end) where V : struct, IVec<V>
    {
        var always = V.Equal(V.Splat(0f), V.Splat(0f));
        for (; ow + V.Count <= end; ow += V.Count)
        {
            var best = V.Splat(float.NegativeInfinity);
            var bestTap = V.Splat(-1f);
            for (int t = 0; t < taps; t++)
            {
                var v = V.Load(rowBase + tap[t] + ow);
                var take = V.Select(V.Equal(v, v), V.Greater(v, best), always);
                best = V.Select(take, v, best);
                bestTap = V.Select(take, V.Splat(t), bestTap);
            }
            V.Store(y + ow, best);
            V.Store(winner + ow, bestTap);
        }
        return ow;
    }

    private static void MaxPoolBackwardPlane(in Conv2dGeometry g, int plane, float* dy, int* argmax, float* dx)
    {
        long outPlane = (long)g.OutHeight * g.OutWidth, inPlane = (long)g.Height * g.Width;
        float* dxPlane = dx + plane * inPlane, dyPlane = dy + plane * outPlane;
        int* indexPlane = argmax + plane * outPlane;
        new Span<float>(dxPlane, (int)inPlane).Clear();
        for (long o = 0; o < outPlane; o++) dxPlane[indexPlane[o]] += dyPlane[o];
    }

    /// <summary>Divisor of each output of row <paramref name="oh"/>: the window size, or how much of the window lies inside the input.</summary>
    private static void AvgPoolDivisors(in Conv2dGeometry g, int oh, bool countIncludePad, float* divisor)
    {
        int h0 = oh * g.StrideH - g.PadH, rows = Math.Min(h0 + g.KernelH, g.Height) - Math.Max(h0, 0);
        for (int ow = 0; ow < g.OutWidth; ow++)
        {
            int w0 = ow * g.StrideW - g.PadW, cols = Math.Min(w0 + g.KernelW, g.Width) - Math.Max(w0, 0);
            divisor[ow] = countIncludePad ? g.KernelH * g.KernelW : rows * cols;
        }
    }

    private static void AvgPoolPlane<V>(in Conv2dGeometry g, int plane, bool countIncludePad, float* x, float* y) where V : struct, IVec<V>
    {
        var p = new PaddedPlane(g);
        int OH = g.OutHeight, OW = g.OutWidth, taps = g.KernelH * g.KernelW;
        int* tap = stackalloc int[taps];
        TapOffsets(g, p, tap);
        float* padded = ThreadScratch.Floats(p.Floats + ThreadScratch.Aligned(OW));
        float* divisor = padded + ThreadScratch.Aligned(p.Floats);
        Pad(g, p, x + (long)plane * g.Height * g.Width, padded, 0f);
        float* yPlane = y + (long)plane * OH * OW;
        for (int oh = 0; oh < OH; oh++)
        {
            AvgPoolDivisors(g, oh, countIncludePad, divisor);
            float* rowBase = padded + (long)oh * g.StrideH * p.RowStride, yRow = yPlane + (long)oh * OW;
            int ow = AvgPoolRow<V>(rowBase, tap, taps, divisor, yRow, 0, OW);
            if (V.Count > V256.Count) ow = AvgPoolRow<V256>(rowBase, tap, taps, divisor, yRow, ow, OW);
            AvgPoolRow<V1>(rowBase, tap, taps, divisor, yRow, ow, OW);
        }
    }

    private static int AvgPoolRow<V>(float* rowBase, int* tap, int taps, float* divisor, float* y, int ow, int end) where V : struct, IVec<V>
    {
        for (; ow + V.Count <= end; ow += V.Count)
        {
            var sum = V.Splat(0f);
            for (int t = 0; t < taps; t++) sum += V.Load(rowBase + tap[t] + ow);
            V.Store(y + ow, sum / V.Load(divisor + ow));
        }
        return ow;
    }

    // Each output's gradient, divided by its window's divisor, goes to every input of its window: the depthwise
    // backward's gather with all weights 1.
    private static void AvgPoolBackwardPlane<V>(in Conv2dGeometry g, int plane, bool countIncludePad, float* dy, float* dx) where V : struct, IVec<V>
    {
        var p = new PaddedPlane(g);
        int OH = g.OutHeight, OW = g.OutWidth, KW = g.KernelW;
        int* byPhase = stackalloc int[KW];
        int* phaseStart = stackalloc int[p.Stride + 1];
        int* shift = stackalloc int[KW];
        int left = TapPhases(g, p, byPhase, phaseStart, shift);
        float* ones = stackalloc float[KW];
        for (int j = 0; j < KW; j++) ones[j] = 1f;
        long rowFloats = ThreadScratch.Aligned(left + p.PhaseLength + 16);
        float* acc = ThreadScratch.Floats(p.Floats + rowFloats);
        float* share = acc + ThreadScratch.Aligned(p.Floats) + left;
        new Span<float>(acc, (int)(ThreadScratch.Aligned(p.Floats) + rowFloats)).Clear();
        float* dyPlane = dy + (long)plane * OH * OW;
        for (int oh = 0; oh < OH; oh++)
        {
            AvgPoolDivisors(g, oh, countIncludePad, share);
            for (int ow = 0; ow < OW; ow++) share[ow] = dyPlane[(long)oh * OW + ow] / share[ow];
            for (int i = 0; i < g.KernelH; i++)
            {
                float* row = acc + (long)(oh * g.StrideH + i) * p.RowStride;
                for (int phase = 0; phase < p.Stride; phase++)
                    GatherRows<V>(1, row + phase * p.PhaseLength, 0, p.PhaseLength, share, 0, ones, byPhase + phaseStart[phase],
                        phaseStart[phase + 1] - phaseStart[phase], shift);
            }
        }
        Crop(g, p, acc, dx + (long)plane * g.Height * g.Width);
    }

    // Adaptive pooling is a network's last spatial step (a few hundred planes of a few cells): plain loops suffice.
    private static void AdaptiveAvgPoolPlane(int plane, int H, int W, int OH, int OW, float* x, float* y)
    {
        float* xPlane = x + (long)plane * H * W, yPlane = y + (long)plane * OH * OW;
        for (int oh = 0; oh < OH; oh++)
        {
            var (h0, h1) = Reference.ReferenceBackend.AdaptiveWindow(oh, H, OH);
            for (int ow = 0; ow < OW; ow++)
            {
                var (w0, w1) = Reference.ReferenceBackend.AdaptiveWindow(ow, W, OW);
                float sum = 0;
                for (int ih = h0; ih < h1; ih++)
                    sum += System.Numerics.Tensors.TensorPrimitives.Sum(new ReadOnlySpan<float>(xPlane + (long)ih * W + w0, w1 - w0));
                yPlane[(long)oh * OW + ow] = sum / ((h1 - h0) * (w1 - w0));
            }
        }
    }

    private static void AdaptiveAvgPoolBackwardPlane(int plane, int H, int W, int OH, int OW, float* dy, float* dx)
    {
        float* dxPlane = dx + (long)plane * H * W, dyPlane = dy + (long)plane * OH * OW;
        new Span<float>(dxPlane, H * W).Clear();
        for (int oh = 0; oh < OH; oh++)
        {
            var (h0, h1) = Reference.ReferenceBackend.AdaptiveWindow(oh, H, OH);
            for (int ow = 0; ow < OW; ow++)
            {
                var (w0, w1) = Reference.ReferenceBackend.AdaptiveWindow(ow, W, OW);
                float share = dyPlane[(long)oh * OW + ow] / ((h1 - h0) * (w1 - w0));
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) dxPlane[(long)ih * W + iw] += share;
            }
        }
    }
}
