namespace Nabla.Kernels.Cpu;

// Convolution, pooling and batch-norm kernels over NCHW data.
//
// Most kernels work one input plane at a time. The plane is copied into per-thread scratch with its padding made
// explicit (zeros, or -∞ for max pooling) and its columns split by phase: padded column q goes to phase q mod
// stride, slot q / stride. Then, for every window tap, the inputs of consecutive outputs of a row are consecutive
// floats, whatever the stride and dilation, so every inner loop is a plain vector loop with no bounds checks.
// Backward kernels accumulate into such a padded plane — col2im adds each tap's rows in turn; the depthwise and
// average-pool backwards gather, for each padded row, the taps that land in it — and crop it at the end. Work is
// spread over planes (or channels), which never write to each other's memory; output rows are taken four at a
// time where one broadcast weight can serve four multiply-adds.
public sealed unsafe partial class CpuBackend
{
    public void Col2Im(in Conv2dGeometry g, float* col, float* dx) =>
        PlaneTask.Launch(PlaneOp.Col2Im, g, g.Planes, x: col, y: dx);

    public void DepthwiseConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y) =>
        PlaneTask.Launch(PlaneOp.Depthwise, g, g.Planes, x, w, bias, y);

    public void DepthwiseConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx) =>
        PlaneTask.Launch(PlaneOp.DepthwiseBackwardInput, g, g.Planes, x: dy, w: w, y: dx);

    public void DepthwiseConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw) =>
        PlaneTask.Launch(PlaneOp.DepthwiseBackwardWeight, g, g.OutChannels, x: x, w: dy, y: dw);

    public void MaxPool2d(in Conv2dGeometry g, float* x, float* y, int* argmax) =>
        PlaneTask.Launch(PlaneOp.MaxPool, g, g.Planes, x, y: y, index: argmax);

    public void MaxPool2dBackward(in Conv2dGeometry g, float* dy, int* argmax, float* dx) =>
        PlaneTask.Launch(PlaneOp.MaxPoolBackward, g, g.Planes, x: dy, y: dx, index: argmax);

    public void AvgPool2d(in Conv2dGeometry g, bool countIncludePad, float* x, float* y) =>
        PlaneTask.Launch(PlaneOp.AvgPool, g, g.Planes, x, y: y, flag: countIncludePad);

    public void AvgPool2dBackward(in Conv2dGeometry g, bool countIncludePad, float* dy, float* dx) =>
        PlaneTask.Launch(PlaneOp.AvgPoolBackward, g, g.Planes, x: dy, y: dx, flag: countIncludePad);

    public void AdaptiveAvgPool2d(int planes, int height, int width, int outHeight, int outWidth, float* x, float* y) =>
        PlaneTask.Launch(PlaneOp.AdaptiveAvgPool, AdaptiveGeometry(planes, height, width, outHeight, outWidth), planes, x, y: y);

    public void AdaptiveAvgPool2dBackward(int planes, int height, int width, int outHeight, int outWidth, float* dy, float* dx) =>
        PlaneTask.Launch(PlaneOp.AdaptiveAvgPoolBackward, AdaptiveGeometry(planes, height, width, outHeight, outWidth), planes, x: dy, y: dx);

    public void BatchNormStatistics(float* x, float* mean, float* variance, int batch, int channels, int spatial) =>
        PlaneTask.Launch(PlaneOp.BatchNormStatistics, ChannelGeometry(batch, channels, spatial), channels, x, w: mean, y: variance);

    public void BatchNorm(float* x, float* mean, float* rstd, float* w, float* b, float* y, int batch, int channels, int spatial) =>
        PlaneTask.Launch(PlaneOp.BatchNorm, ChannelGeometry(batch, channels, spatial), batch * channels, x, w, b, y, mean: mean, rstd: rstd);

    public void BatchNormBackward(float* dy, float* x, float* mean, float* rstd, float* w, float* dx, float* dw, float* db,
        int batch, int channels, int spatial, bool batchStatistics) =>
        PlaneTask.Launch(PlaneOp.BatchNormBackward, ChannelGeometry(batch, channels, spatial), channels, x, w, db, dx,
            mean: mean, rstd: rstd, dy: dy, dw: dw, flag: batchStatistics);

    // The adaptive and batch-norm kernels carry their sizes in the geometry's fields: planes of Height × Width pooled
    // to KernelH × KernelW outputs; (Batch, Channels, Height = spatial) for batch norm.
    private static Conv2dGeometry AdaptiveGeometry(int planes, int height, int width, int outHeight, int outWidth) =>
        new(planes, 1, height, width, 1, outHeight, outWidth, 1, 1, 0, 0, 1, 1, 1);

    private static Conv2dGeometry ChannelGeometry(int batch, int channels, int spatial) =>
        new(batch, channels, spatial, 1, channels, 1, 1, 1, 1, 0, 0, 1, 1, 1);

    private enum PlaneOp
    {
        Col2Im, Depthwise, DepthwiseBackwardInput, DepthwiseBackwardWeight, MaxPool, MaxPoolBackward, AvgPool, AvgPoolBackward,
        AdaptiveAvgPool, AdaptiveAvgPoolBackward, BatchNormStatistics, BatchNorm, BatchNormBackward,
    }

    /// <summary>
    /// One kernel call: its arguments, and <see cref="Execute"/> doing one plane (or channel) of it. Each calling thread
    /// keeps one instance and reuses it for every call, so a parallel kernel call allocates nothing.
    /// </summary>
    private sealed class PlaneTask : VectorTask
    {
        [ThreadStatic] private static PlaneTask? _cached;

        private PlaneOp _op;
        private Conv2dGeometry _g;
        private float* _x, _w, _b, _y, _mean, _rstd, _dy, _dw;
        private int* _index;
        private bool _flag;

        public static void Launch(PlaneOp op, in Conv2dGeometry g, int count, float* x = null, float* w = null, float* b = null,
            float* y = null, int* index = null, bool flag = false, float* mean = null, float* rstd = null, float* dy = null, float* dw = null)
        {
            var task = _cached ??= new PlaneTask();
            (task._op, task._g, task._flag) = (op, g, flag);
            task.Capture();
            task._x = x; task._w = w; task._b = b; task._y = y; task._index = index;
            task._mean = mean; task._rstd = rstd; task._dy = dy; task._dw = dw;
            WorkerPool.Run(count, task);
        }

        protected override void Execute<V>(int item)
        {
            ref readonly var g = ref _g;
            switch (_op)
            {
                case PlaneOp.Col2Im: Col2ImPlane<V>(g, item, _x, _y); break;
                case PlaneOp.Depthwise: DepthwisePlane<V>(g, item, _x, _w, _b, _y); break;
                case PlaneOp.DepthwiseBackwardInput: DepthwiseBackwardInputPlane<V>(g, item, _x, _w, _y); break;
                case PlaneOp.DepthwiseBackwardWeight: DepthwiseBackwardWeightChannel<V>(g, item, _w, _x, _y); break;
                case PlaneOp.MaxPool: MaxPoolPlane<V>(g, item, _x, _y, _index); break;
                case PlaneOp.MaxPoolBackward: MaxPoolBackwardPlane(g, item, _x, _index, _y); break;
                case PlaneOp.AvgPool: AvgPoolPlane<V>(g, item, _flag, _x, _y); break;
                case PlaneOp.AvgPoolBackward: AvgPoolBackwardPlane<V>(g, item, _flag, _x, _y); break;
                case PlaneOp.AdaptiveAvgPool: AdaptiveAvgPoolPlane(g, item, _x, _y); break;
                case PlaneOp.AdaptiveAvgPoolBackward: AdaptiveAvgPoolBackwardPlane(g, item, _x, _y); break;
                case PlaneOp.BatchNormStatistics: BatchNormStatisticsChannel<V>(g, item, _x, _w, _y); break;
                case PlaneOp.BatchNorm: BatchNormPlane<V>(g, item, _x, _mean, _rstd, _w, _b, _y); break;
                case PlaneOp.BatchNormBackward: BatchNormBackwardChannel<V>(g, item, _dy, _x, _mean, _rstd, _w, _y, _dw, _b, _flag); break;
            }
        }
    }

    // ---------------------------------------------------------------- padded, phase-split planes

    /// <summary>Layout of a padded plane in scratch: PaddedHeight rows of RowStride floats; padded column q of a row
    /// sits at (q mod stride)·PhaseLength + q / stride. Phases are whole 64-byte lines, so a loop over a phase needs
    /// no tail (the slack after the last column is padding too).</summary>
    private readonly struct PaddedPlane
    {
        public readonly int Rows, RowStride, PhaseLength, Stride;

        public PaddedPlane(in Conv2dGeometry g)
        {
            Stride = g.StrideW;
            PhaseLength = ((g.PaddedWidth + Stride - 1) / Stride + 15) & ~15;
            RowStride = Stride * PhaseLength;
            Rows = g.PaddedHeight;
        }

        public long Floats => (long)Rows * RowStride;

        /// <summary>Offset of padded position (row r, column q).</summary>
        public int At(int r, int q) => r * RowStride + q % Stride * PhaseLength + q / Stride;
    }

    /// <summary>Offsets, from the start of output row 0, of each tap (i, j)'s input for output column 0: output row oh
    /// adds oh·StrideH·RowStride, output column ow adds ow.</summary>
    private static void TapOffsets(in Conv2dGeometry g, in PaddedPlane p, int* taps)
    {
        for (int i = 0; i < g.KernelH; i++)
            for (int j = 0; j < g.KernelW; j++)
                taps[i * g.KernelW + j] = p.At(i * g.DilationH, j * g.DilationW);
    }

    /// <summary>Copies input plane <paramref name="src"/> (Height × Width) into the padded layout, padding with <paramref name="fill"/>.</summary>
    private static void Pad(in Conv2dGeometry g, in PaddedPlane p, float* src, float* dst, float fill)
    {
        for (int r = 0; r < p.Rows; r++)
        {
            float* row = dst + (long)r * p.RowStride;
            int h = r - g.PadH;
            if (h < 0 || h >= g.Height) { new Span<float>(row, p.RowStride).Fill(fill); continue; }
            float* from = src + (long)h * g.Width;
            if (p.Stride == 1)
            {
                new Span<float>(row, g.PadW).Fill(fill);
                Buffer.MemoryCopy(from, row + g.PadW, g.Width * 4L, g.Width * 4L);
                new Span<float>(row + g.PadW + g.Width, p.RowStride - g.PadW - g.Width).Fill(fill);
            }
            else
            {
                new Span<float>(row, p.RowStride).Fill(fill);
                for (int w = 0; w < g.Width; w++)
                {
                    int q = w + g.PadW;
                    row[q % p.Stride * p.PhaseLength + q / p.Stride] = from[w];
                }
            }
        }
    }

    /// <summary>The inverse of <see cref="Pad"/> for gradients: the input positions of the padded plane, into dst.</summary>
    private static void Crop(in Conv2dGeometry g, in PaddedPlane p, float* src, float* dst)
    {
        for (int h = 0; h < g.Height; h++)
        {
            float* row = src + (long)(h + g.PadH) * p.RowStride;
            float* to = dst + (long)h * g.Width;
            if (p.Stride == 1) Buffer.MemoryCopy(row + g.PadW, to, g.Width * 4L, g.Width * 4L);
            else
                for (int w = 0; w < g.Width; w++)
                {
                    int q = w + g.PadW;
                    to[w] = row[q % p.Stride * p.PhaseLength + q / p.Stride];
                }
        }
    }

    /// <summary>Σ a[k]·b[k] over [0, n).</summary>
    private static float Dot<V>(float* a, float* b, int n) where V : struct, IVec<V>
    {
        var acc = V.Splat(0f);
        int k = 0;
        for (; k + V.Count <= n; k += V.Count) acc = V.Fma(V.Load(a + k), V.Load(b + k), acc);
        float sum = V.SumAcross(acc);
        if (V.Count > V256.Count && k + V256.Count <= n)
        {
            sum += V256.SumAcross(V256.Load(a + k) * V256.Load(b + k));
            k += V256.Count;
        }
        for (; k < n; k++) sum += a[k] * b[k];
        return sum;
    }

    // ---------------------------------------------------------------- im2col backward and depthwise convolution

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
                    a0 = V.Fma(wt, V.Load(r0 + at), a0);
                    a1 = V.Fma(wt, V.Load(r1 + at), a1);
                    a2 = V.Fma(wt, V.Load(r2 + at), a2);
                    a3 = V.Fma(wt, V.Load(r3 + at), a3);
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
                    a0 = V.Fma(V.Splat(w[t]), V.Load(r0 + tap[t]), a0);
                    a1 = V.Fma(V.Splat(w[t + 1]), V.Load(r0 + tap[t + 1]), a1);
                }
                if (t < taps) a0 = V.Fma(V.Splat(w[t]), V.Load(r0 + tap[t]), a0);
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

    /// <summary>Where the kernel columns' inputs lie in a phase-split row: tap column j reads phase (j·dw) mod sw, shifted by
    /// (j·dw) / sw. Lists the columns by phase (byPhase[phaseStart[φ] .. phaseStart[φ + 1]]) and returns the largest
    /// shift (how far a gather reads to the left of a row).</summary>
    private static int TapPhases(in Conv2dGeometry g, in PaddedPlane p, int* byPhase, int* phaseStart, int* shift)
    {
        int next = 0;
        for (int phase = 0; phase < p.Stride; phase++)
        {
            phaseStart[phase] = next;
            for (int j = 0; j < g.KernelW; j++)
                if (j * g.DilationW % p.Stride == phase) { byPhase[next++] = j; shift[j] = j * g.DilationW / p.Stride; }
        }
        phaseStart[p.Stride] = next;
        return (g.KernelW - 1) * g.DilationW / p.Stride;
    }

    /// <summary>For <paramref name="rows"/> (4 or 1) rows r, <paramref name="rowStep"/> apart in output and srcStep apart in
    /// src: out_r[k] += Σ over the listed taps j of w[j]·src_r[k - shift[j]], for k in [0, length) (a multiple of 16).</summary>
    private static void GatherRows<V>(int rows, float* output, long rowStep, int length, float* src, long srcStep, float* w,
        int* taps, int count, int* shift) where V : struct, IVec<V>
    {
        if (count == 0) return;
        for (int k = 0; k < length; k += V.Count)
        {
            float* o0 = output + k, s0 = src + k;
            if (rows == 1)
            {
                var acc = V.Load(o0);
                for (int t = 0; t < count; t++)
                {
                    int j = taps[t];
                    acc = V.Fma(V.Splat(w[j]), V.Load(s0 - shift[j]), acc);
                }
                V.Store(o0, acc);
                continue;
            }
            float* o1 = o0 + rowStep, o2 = o1 + rowStep, o3 = o2 + rowStep;
            float* s1 = s0 + srcStep, s2 = s1 + srcStep, s3 = s2 + srcStep;
            V a0 = V.Load(o0), a1 = V.Load(o1), a2 = V.Load(o2), a3 = V.Load(o3);
            for (int t = 0; t < count; t++)
            {
                int j = taps[t], back = shift[j];
                var wj = V.Splat(w[j]);
                a0 = V.Fma(wj, V.Load(s0 - back), a0);
                a1 = V.Fma(wj, V.Load(s1 - back), a1);
                a2 = V.Fma(wj, V.Load(s2 - back), a2);
                a3 = V.Fma(wj, V.Load(s3 - back), a3);
            }
            V.Store(o0, a0); V.Store(o1, a1); V.Store(o2, a2); V.Store(o3, a3);
        }
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

    // ---------------------------------------------------------------- pooling

    // The running maximum and the number of the tap that reached it are kept per output lane; the tap numbers become
    // plane indices afterwards. A NaN always takes over (the last one wins, as in PyTorch's loop).
    private static void MaxPoolPlane<V>(in Conv2dGeometry g, int plane, float* x, float* y, int* argmax) where V : struct, IVec<V>
    {
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
    private static void AdaptiveAvgPoolPlane(in Conv2dGeometry g, int plane, float* x, float* y)
    {
        int H = g.Height, W = g.Width, OH = g.KernelH, OW = g.KernelW;
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

    private static void AdaptiveAvgPoolBackwardPlane(in Conv2dGeometry g, int plane, float* dy, float* dx)
    {
        int H = g.Height, W = g.Width, OH = g.KernelH, OW = g.KernelW;
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

    // ---------------------------------------------------------------- batch normalisation (Height = spatial size)

    // Two passes over the channel (mean, then squared deviations), each plane summed in float vectors and the
    // planes added in double.
    private static void BatchNormStatisticsChannel<V>(in Conv2dGeometry g, int c, float* x, float* mean, float* variance) where V : struct, IVec<V>
    {
        int spatial = g.Height;
        double sum = 0;
        for (int n = 0; n < g.Batch; n++) sum += Sum<V>(x + ((long)n * g.Channels + c) * spatial, spatial);
        double count = (double)g.Batch * spatial, m = sum / count, squares = 0;
        for (int n = 0; n < g.Batch; n++) squares += SquaredDeviations<V>(x + ((long)n * g.Channels + c) * spatial, spatial, (float)m);
        mean[c] = (float)m;
        variance[c] = (float)(squares / count);
    }

    /// <summary>Σ x[k] over [0, n).</summary>
    private static float Sum<V>(float* x, int n) where V : struct, IVec<V>
    {
        V acc0 = V.Splat(0f), acc1 = acc0;
        int k = 0;
        for (; k + 2 * V.Count <= n; k += 2 * V.Count)
        {
            acc0 += V.Load(x + k);
            acc1 += V.Load(x + k + V.Count);
        }
        for (; k + V.Count <= n; k += V.Count) acc0 += V.Load(x + k);
        float sum = V.SumAcross(acc0 + acc1);
        for (; k < n; k++) sum += x[k];
        return sum;
    }

    /// <summary>Σ (x[k] - mean)² over [0, n).</summary>
    private static float SquaredDeviations<V>(float* x, int n, float mean) where V : struct, IVec<V>
    {
        V acc0 = V.Splat(0f), acc1 = acc0, m = V.Splat(mean);
        int k = 0;
        for (; k + 2 * V.Count <= n; k += 2 * V.Count)
        {
            var d0 = V.Load(x + k) - m;
            var d1 = V.Load(x + k + V.Count) - m;
            acc0 = V.Fma(d0, d0, acc0);
            acc1 = V.Fma(d1, d1, acc1);
        }
        for (; k + V.Count <= n; k += V.Count)
        {
            var d = V.Load(x + k) - m;
            acc0 = V.Fma(d, d, acc0);
        }
        float sum = V.SumAcross(acc0 + acc1);
        for (; k < n; k++) sum += (x[k] - mean) * (x[k] - mean);
        return sum;
    }

    // y = (x - mean)·(rstd·w) + b over one (n, c) plane.
    private static void BatchNormPlane<V>(in Conv2dGeometry g, int plane, float* x, float* mean, float* rstd, float* w, float* b, float* y) where V : struct, IVec<V>
    {
        int spatial = g.Height, c = plane % g.Channels;
        long at = (long)plane * spatial;
        float scale = rstd[c] * (w == null ? 1f : w[c]), shift = b == null ? 0f : b[c];
        int k = AffineSpan<V>(x + at, y + at, mean[c], scale, shift, 0, spatial);
        if (V.Count > V256.Count) k = AffineSpan<V256>(x + at, y + at, mean[c], scale, shift, k, spatial);
        AffineSpan<V1>(x + at, y + at, mean[c], scale, shift, k, spatial);
    }

    /// <summary>y[k] = (x[k] - center)·scale + shift over [k, end).</summary>
    private static int AffineSpan<V>(float* x, float* y, float center, float scale, float shift, int k, int end) where V : struct, IVec<V>
    {
        V m = V.Splat(center), s = V.Splat(scale), b = V.Splat(shift);
        for (; k + V.Count <= end; k += V.Count) V.Store(y + k, V.Fma(V.Load(x + k) - m, s, b));
        return k;
    }

    // Per channel: Σdy and Σdy·(x - mean) in a first pass, then
    // dx = w·rstd·(dy - Σdy/count - (x - mean)·rstd²·Σdy·(x - mean)/count) in a second (only dy's term without batch statistics).
    private static void BatchNormBackwardChannel<V>(in Conv2dGeometry g, int c, float* dy, float* x, float* mean, float* rstd, float* w,
        float* dx, float* dw, float* db, bool batchStatistics) where V : struct, IVec<V>
    {
        int spatial = g.Height;
        float m = mean[c], r = rstd[c];
        double dySum = 0, dyCenteredSum = 0;
        for (int n = 0; n < g.Batch; n++)
        {
            long at = ((long)n * g.Channels + c) * spatial;
            dySum += Sum<V>(dy + at, spatial);
            dyCenteredSum += DotCentered<V>(dy + at, x + at, m, spatial);
        }
        if (dw != null) dw[c] = (float)(dyCenteredSum * r);
        if (db != null) db[c] = (float)dySum;
        if (dx == null) return;
        double count = (double)g.Batch * spatial;
        float scale = r * (w == null ? 1f : w[c]);
        // dx = scale·dy + (x - mean)·slope + offset
        float slope = batchStatistics ? (float)(-scale * r * r * dyCenteredSum / count) : 0f;
        float offset = batchStatistics ? (float)(-scale * dySum / count) : 0f;
        for (int n = 0; n < g.Batch; n++)
        {
            long at = ((long)n * g.Channels + c) * spatial;
            int k = BatchNormGradientSpan<V>(dy + at, x + at, dx + at, m, scale, slope, offset, 0, spatial);
            if (V.Count > V256.Count) k = BatchNormGradientSpan<V256>(dy + at, x + at, dx + at, m, scale, slope, offset, k, spatial);
            BatchNormGradientSpan<V1>(dy + at, x + at, dx + at, m, scale, slope, offset, k, spatial);
        }
    }

    /// <summary>Σ dy[k]·(x[k] - center) over [0, n).</summary>
    private static float DotCentered<V>(float* dy, float* x, float center, int n) where V : struct, IVec<V>
    {
        V acc = V.Splat(0f), m = V.Splat(center);
        int k = 0;
        for (; k + V.Count <= n; k += V.Count) acc = V.Fma(V.Load(dy + k), V.Load(x + k) - m, acc);
        float sum = V.SumAcross(acc);
        for (; k < n; k++) sum += dy[k] * (x[k] - center);
        return sum;
    }

    private static int BatchNormGradientSpan<V>(float* dy, float* x, float* dx, float center, float scale, float slope, float offset, int k, int end)
        where V : struct, IVec<V>
    {
        V m = V.Splat(center), s = V.Splat(scale), sl = V.Splat(slope), o = V.Splat(offset);
        for (; k + V.Count <= end; k += V.Count)
            V.Store(dx + k, V.Fma(V.Load(dy + k), s, V.Fma(V.Load(x + k) - m, sl, o)));
        return k;
    }
}
