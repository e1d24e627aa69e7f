namespace Nabla.Kernels.Cpu;

// Batch normalisation over (batch, channels, spatial) data: statistics and backward one channel per task, the
// normalisation itself one (image, channel) plane per task.
public sealed unsafe partial class CpuBackend
{
    public void BatchNormStatistics(float* x, float* mean, float* variance, int batch, int channels, int spatial) =>
        ParallelKernel.Items(channels, new BatchNormStatisticsChannels(x, mean, variance, batch, channels, spatial));

    public void BatchNorm(float* x, float* mean, float* rstd, float* w, float* b, float* y, int batch, int channels, int spatial) =>
        ParallelKernel.Items(batch * channels, new BatchNormPlanes(x, mean, rstd, w, b, y, channels, spatial));

    public void BatchNormBackward(float* dy, float* x, float* mean, float* rstd, float* w, float* dx, float* dw, float* db,
        int batch, int channels, int spatial, bool batchStatistics) =>
        ParallelKernel.Items(channels, new BatchNormBackwardChannels(dy, x, mean, rstd, w, dx, dw, db, batch, channels, spatial, batchStatistics));

    private readonly struct BatchNormStatisticsChannels(float* x, float* mean, float* variance, int batch, int channels, int spatial) : IKernelItems
    {
        public void Execute<V>(int c) where V : struct, IVec<V> => BatchNormStatisticsChannel<V>(c, batch, channels, spatial, x, mean, variance);
    }

    private readonly struct BatchNormPlanes(float* x, float* mean, float* rstd, float* w, float* b, float* y, int channels, int spatial) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => BatchNormPlane<V>(plane, channels, spatial, x, mean, rstd, w, b, y);
    }

    private readonly struct BatchNormBackwardChannels(float* dy, float* x, float* mean, float* rstd, float* w, float* dx, float* dw, float* db,
        int batch, int channels, int spatial, bool batchStatistics) : IKernelItems
    {
        public void Execute<V>(int c) where V : struct, IVec<V> =>
            BatchNormBackwardChannel<V>(c, batch, channels, spatial, dy, x, mean, rstd, w, dx, dw, db, batchStatistics);
    }


    // Two passes over the channel (mean, then squared deviations), each plane summed in float vectors and the
    // planes added in double.
    private static void BatchNormStatisticsChannel<V>(int c, int batch, int channels, int spatial, float* x, float* mean, float* variance)
        where V : struct, IVec<V>
    {
        double sum = 0;
        for (int n = 0; n < batch; n++) sum += Sum<V>(x + ((long)n * channels + c) * spatial, spatial);
        double count = (double)batch * spatial, m = sum / count, squares = 0;
        for (int n = 0; n < batch; n++) squares += SquaredDeviations<V>(x + ((long)n * channels + c) * spatial, spatial, (float)m);
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
    private static void BatchNormPlane<V>(int plane, int channels, int spatial, float* x, float* mean, float* rstd, float* w, float* b, float* y)
        where V : struct, IVec<V>
    {
        int c = plane % channels;
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
    private static void BatchNormBackwardChannel<V>(int c, int batch, int channels, int spatial, float* dy, float* x, float* mean, float* rstd,
        float* w, float* dx, float* dw, float* db, bool batchStatistics) where V : struct, IVec<V>
    {
        float m = mean[c], r = rstd[c];
        double dySum = 0, dyCenteredSum = 0;
        for (int n = 0; n < batch; n++)
        {
            long at = ((long)n * channels + c) * spatial;
            dySum += Sum<V>(dy + at, spatial);
            dyCenteredSum += DotCentered<V>(dy + at, x + at, m, spatial);
        }
        if (dw != null) dw[c] = (float)(dyCenteredSum * r);
        if (db != null) db[c] = (float)dySum;
        if (dx == null) return;
        double count = (double)batch * spatial;
        float scale = r * (w == null ? 1f : w[c]);
        // dx = scale·dy + (x - mean)·slope + offset
        float slope = batchStatistics ? (float)(-scale * r * r * dyCenteredSum / count) : 0f;
        float offset = batchStatistics ? (float)(-scale * dySum / count) : 0f;
        for (int n = 0; n < batch; n++)
        {
            long at = ((long)n * channels + c) * spatial;
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
