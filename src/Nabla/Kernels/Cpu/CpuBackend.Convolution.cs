namespace Nabla.Kernels.Cpu;

// Convolution kernels over NCHW data that are not a GEMM: col2im (the backward of the im2col matrix the GEMM path
// multiplies) and depthwise convolution, forward and backward, on padded phase-split planes (CpuBackend.PaddedPlane.cs).
// Output rows are taken four at a time where one broadcast weight can serve four multiply-adds.
public sealed unsafe partial class CpuBackend
{
    public void Col2Im(in Conv2dGeometry g, float* col, float* dx) => ParallelKernel.Items(g.Planes, new Col2ImPlanes(g, col, dx));

    public void DepthwiseConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y) =>
        ParallelKernel.Items(g.Planes, new DepthwisePlanes(g, x, w, bias, y));

    public void DepthwiseConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx) =>
        ParallelKernel.Items(g.Planes, new DepthwiseBackwardInputPlanes(g, dy, w, dx));

    public void DepthwiseConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw) =>
        ParallelKernel.Items(g.OutChannels, new DepthwiseBackwardWeightChannels(g, dy, x, dw));

    private readonly struct Col2ImPlanes(Conv2dGeometry g, float* col, float* dx) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => Col2ImPlane<V>(g, plane, col, dx);
    }

    private readonly struct DepthwisePlanes(Conv2dGeometry g, float* x, float* w, float* bias, float* y) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => DepthwisePlane<V>(g, plane, x, w, bias, y);
    }

    private readonly struct DepthwiseBackwardInputPlanes(Conv2dGeometry g, float* dy, float* w, float* dx) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => DepthwiseBackwardInputPlane<V>(g, plane, dy, w, dx);
    }

    private readonly struct DepthwiseBackwardWeightChannels(Conv2dGeometry g, float* dy, float* x, float* dw) : IKernelItems
    {
        public void Execute<V>(int channel) where V : struct, IVec<V> => DepthwiseBackwardWeightChannel<V>(g, channel, dy, x, dw);
    }

    private static void Col2ImPlane<V>(in Conv2dGeometry g, int plane, float* col, float* dx) where V : struct, IVec<V>
    {
        var p = new PaddedPlane(g);
        int OH = g.OutHeight, OW = g.OutWidth, taps = g.KernelH * g.KernelW;
        int* tap = stackalloc int[taps];
        TapOffsets(g, p, tap);
        float* acc = ThreadScratch.Floats(p.Floats);
        new Span<float>(acc, (int)p.Floats).Clear();
        float* colPlane = col + (long)plane * taps * OH * OW;
        // Tap by tap, so that consecutive vector stores never overlap the next loads (that would stall on
        // store-to-load forwarding).
        for (int t = 0; t < taps; t++)
            for (int oh = 0; oh < OH; oh++)
            {
                float* dst = acc + (long)oh * g.StrideH * p.RowStride + tap[t], src = colPlane + ((long)t * OH + oh) * OW;
                int ow = AddRow<V>(dst, src, 0, OW);
                if (V.Count > V256.Count) ow = AddRow<V256>(dst, src, ow, OW);
                AddRow<V1>(dst, src, ow, OW);
            }
        Crop(g, p, acc, dx + (long)plane * g.Height * g.Width);
    }

    /// <summary>dst[k] += src[k] over [k, end), in vectors of V; returns where it stopped.</summary>
    private static int AddRow<V>(float* dst, float* src, int k, int end) where V : struct, IVec<V>
    {
        for (; k + V.Count <= end; k += V.Count) V.Store(dst + k, V.Load(dst + k) + V.Load(src + k));
        return k;
    }

    // One task per input plane (n, c), computing the Channels/OutChannels output planes that read it.
    private static void DepthwisePlane<V>(in Conv2dGeometry g, int plane, float* x, float* w, float* bias, float* y) where V : struct, IVec<V>
    {
        var p = new PaddedPlane(g);
        int OH = g.OutHeight, OW = g.OutWidth, taps = g.KernelH * g.KernelW, multiplier = g.OutChannels / g.Channels;
        int* tap = stackalloc int[taps];
        TapOffsets(g, p, tap);
        float* padded = ThreadScratch.Floats(p.Floats);
        Pad(g, p, x + (long)plane * g.Height * g.Width, padded, 0f);
        int n = plane / g.Channels, c = plane % g.Channels;
        for (int m = 0; m < multiplier; m++)
        {
            int o = c * multiplier + m;
            float* wo = w + (long)o * taps;
            float b = bias == null ? 0f : bias[o];
            float* yPlane = y + ((long)n * g.OutChannels + o) * OH * OW;
            long rowStep = (long)g.StrideH * p.RowStride;
            int oh = 0;
            for (; oh + 4 <= OH; oh += 4)
            {
                float* rowBase = padded + oh * rowStep, yRow = yPlane + (long)oh * OW;
                int ow = DepthwiseRows<V>(4, rowBase, rowStep, tap, wo, taps, b, yRow, OW, 0, OW);
                if (V.Count > V256.Count) ow = DepthwiseRows<V256>(4, rowBase, rowStep, tap, wo, taps, b, yRow, OW, ow, OW);
                DepthwiseRows<V1>(4, rowBase, rowStep, tap, wo, taps, b, yRow, OW, ow, OW);
            }
            for (; oh < OH; oh++)
            {
                float* rowBase = padded + oh * rowStep, yRow = yPlane + (long)oh * OW;
                int ow = DepthwiseRows<V>(1, rowBase, rowStep, tap, wo, taps, b, yRow, OW, 0, OW);
                if (V.Count > V256.Count) ow = DepthwiseRows<V256>(1, rowBase, rowStep, tap, wo, taps, b, yRow, OW, ow, OW);
                DepthwiseRows<V1>(1, rowBase, rowStep, tap, wo, taps, b, yRow, OW, ow, OW);
            }
        }
    }

    /// <summary>Outputs [ow, end) of <paramref name="rows"/> (4 or 1) consecutive output rows. Four rows at a time, each
    /// broadcast weight serves four multiply-adds, and the four sums are independent chains.</summary>
    private static int DepthwiseRows<V>(int rows, float* rowBase, long rowStep, int* tap, float* w, int taps, float bias,
        float* y, int yStride, int ow, int end) where V : struct, IVec<V>
    {
        for (; ow + V.Count <= end; ow += V.Count)
        {
            float* r0 = rowBase + ow;
            if (rows == 4)
            {
                float* r1 = r0 + rowStep, r2 = r1 + rowStep, r3 = r2 + rowStep;
                V a0 = V.Splat(bias), a1 = a0, a2 = a0, a3 = a0;
                for (int t = 0; t < taps; t++)
                {
                    var wt = V.Splat(w[t]);
                    int at = tap[t];
                    V.AddProduct(ref a0, wt, V.Load(r0 + at));
                    V.AddProduct(ref a1, wt, V.Load(r1 + at));
                    V.AddProduct(ref a2, wt, V.Load(r2 + at));
                    V.AddProduct(ref a3, wt, V.Load(r3 + at));
                }
                V.Store(y + ow, a0);
                V.Store(y + yStride + ow, a1);
                V.Store(y + 2 * yStride + ow, a2);
                V.Store(y + 3 * yStride + ow, a3);
            }
            else
            {
                // Two partial sums: a single chain would wait on each multiply-add's latency.
                V a0 = V.Splat(bias), a1 = V.Splat(0f);
                int t = 0;
                for (; t + 2 <= taps; t += 2)
                {
                    V.AddProduct(ref a0, V.Splat(w[t]), V.Load(r0 + tap[t]));
                    V.AddProduct(ref a1, V.Splat(w[t + 1]), V.Load(r0 + tap[t + 1]));
                }
                if (t < taps) V.AddProduct(ref a0, V.Splat(w[t]), V.Load(r0 + tap[t]));
                V.Store(y + ow, a0 + a1);
            }
        }
        return ow;
    }

    // dx of input plane (n, c) from the output planes that read it. Written as a gather: each padded input row, phase by
    // phase, sums w·dy over the taps that land in it, reading a zero-padded copy of the dy row at the tap's shift, so
    // each input vector is loaded and stored once per (output row, kernel row) whatever the number of taps.
    private static void DepthwiseBackwardInputPlane<V>(in Conv2dGeometry g, int plane, float* dy, float* w, float* dx) where V : struct, IVec<V>
    {
        var p = new PaddedPlane(g);
        int OH = g.OutHeight, OW = g.OutWidth, KW = g.KernelW, multiplier = g.OutChannels / g.Channels;
        int* byPhase = stackalloc int[KW];
        int* phaseStart = stackalloc int[p.Stride + 1];
        int* shift = stackalloc int[KW];
        int left = TapPhases(g, p, byPhase, phaseStart, shift);

        // Four zero-padded dy rows: output rows are taken four at a time, like the forward.
        long rowFloats = ThreadScratch.Aligned(left + p.PhaseLength + 16);
        float* acc = ThreadScratch.Floats(p.Floats + 4 * rowFloats);
        float* dyRows = acc + ThreadScratch.Aligned(p.Floats) + left;
        new Span<float>(acc, (int)(ThreadScratch.Aligned(p.Floats) + 4 * rowFloats)).Clear();
        long rowStep = (long)g.StrideH * p.RowStride;
        int n = plane / g.Channels, c = plane % g.Channels;
        for (int m = 0; m < multiplier; m++)
        {
            int o = c * multiplier + m;
            float* dyPlane = dy + ((long)n * g.OutChannels + o) * OH * OW;
            for (int oh = 0; oh < OH; oh += OH - oh >= 4 ? 4 : 1)
            {
                int rows = OH - oh >= 4 ? 4 : 1;
                for (int k = 0; k < rows; k++)
                    Buffer.MemoryCopy(dyPlane + (long)(oh + k) * OW, dyRows + k * rowFloats, OW * 4L, OW * 4L);
                for (int i = 0; i < g.KernelH; i++)
                {
                    float* row = acc + (oh * rowStep + (long)i * g.DilationH * p.RowStride);
                    float* wRow = w + ((long)o * g.KernelH + i) * KW;
                    for (int phase = 0; phase < p.Stride; phase++)
                        GatherRows<V>(rows, row + phase * p.PhaseLength, rowStep, p.PhaseLength, dyRows, rowFloats, wRow,
                            byPhase + phaseStart[phase], phaseStart[phase + 1] - phaseStart[phase], shift);
                }
            }
        }
        Crop(g, p, acc, dx + (long)plane * g.Height * g.Width);
    }

    // dw of output channel o: for each tap, the dot product of dy with the inputs that tap read, over all images.
    // Each tap keeps vector accumulators (one set per vector width, for the row tails) that are summed into double
    // once per image: a channel's sum can run over millions of products.
    private static void DepthwiseBackwardWeightChannel<V>(in Conv2dGeometry g, int o, float* dy, float* x, float* dw) where V : struct, IVec<V>
    {
        var p = new PaddedPlane(g);
        int OH = g.OutHeight, OW = g.OutWidth, taps = g.KernelH * g.KernelW, c = o / (g.OutChannels / g.Channels);
        int* tap = stackalloc int[taps];
        TapOffsets(g, p, tap);
        double* sums = stackalloc double[taps];
        for (int t = 0; t < taps; t++) sums[t] = 0;
        long accFloats = ThreadScratch.Aligned((long)taps * (V.Count + V256.Count + 1));
        float* padded = ThreadScratch.Floats(p.Floats + accFloats);
        float* accWide = padded + ThreadScratch.Aligned(p.Floats), accHalf = accWide + taps * V.Count, accScalar = accHalf + taps * V256.Count;
        for (int n = 0; n < g.Batch; n++)
        {
            new Span<float>(accWide, (int)accFloats).Clear();
            Pad(g, p, x + ((long)n * g.Channels + c) * g.Height * g.Width, padded, 0f);
            float* dyPlane = dy + ((long)n * g.OutChannels + o) * OH * OW;
            long rowStep = (long)g.StrideH * p.RowStride;
            for (int oh = 0; oh < OH; oh += OH - oh >= 4 ? 4 : 1)
            {
                int rows = OH - oh >= 4 ? 4 : 1;
                float* rowBase = padded + oh * rowStep, dyRow = dyPlane + (long)oh * OW;
                int ow = TapDotsRows<V>(rows, accWide, rowBase, rowStep, tap, taps, dyRow, OW, 0, OW);
                if (V.Count > V256.Count) ow = TapDotsRows<V256>(rows, accHalf, rowBase, rowStep, tap, taps, dyRow, OW, ow, OW);
                TapDotsRows<V1>(rows, accScalar, rowBase, rowStep, tap, taps, dyRow, OW, ow, OW);
            }
            for (int t = 0; t < taps; t++)
            {
                sums[t] += V.SumAcross(V.Load(accWide + t * V.Count)) + accScalar[t];
                if (V.Count > V256.Count) sums[t] += V256.SumAcross(V256.Load(accHalf + t * V256.Count));
            }
        }
        for (int t = 0; t < taps; t++) dw[(long)o * taps + t] = (float)sums[t];
    }

    /// <summary>For <paramref name="rows"/> (4 or 1) consecutive output rows: acc[t] += Σ_rows dy·(the inputs tap t read),
    /// lane by lane (acc holds taps vectors of V). The dy vectors stay in registers across the taps.</summary>
    private static int TapDotsRows<V>(int rows, float* acc, float* rowBase, long rowStep, int* tap, int taps, float* dy, int dyStride,
        int ow, int end) where V : struct, IVec<V>
    {
        for (; ow + V.Count <= end; ow += V.Count)
        {
            float* r0 = rowBase + ow;
            var d0 = V.Load(dy + ow);
            if (rows == 1)
            {
                for (int t = 0; t < taps; t++)
                {
                    float* a = acc + t * V.Count;
                    V.Store(a, V.Fma(d0, V.Load(r0 + tap[t]), V.Load(a)));
                }
                continue;
            }
            V d1 = V.Load(dy + dyStride + ow), d2 = V.Load(dy + 2 * dyStride + ow), d3 = V.Load(dy + 3 * dyStride + ow);
            float* r1 = r0 + rowStep, r2 = r1 + rowStep, r3 = r2 + rowStep;
            for (int t = 0; t < taps; t++)
            {
                float* a = acc + t * V.Count;
                int at = tap[t];
                var pair = V.Fma(d2, V.Load(r2 + at), d3 * V.Load(r3 + at));
                V.Store(a, V.Fma(d0, V.Load(r0 + at), V.Fma(d1, V.Load(r1 + at), V.Load(a))) + pair);
            }
        }
        return ow;
    }
}
