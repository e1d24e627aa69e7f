namespace Nabla.Kernels.Cpu;

// Batch normalisation over (batch, channels, spatial) data: statistics and backward one channel per task, the
// normalisation itself one (image, channel) plane per task.
public sealed unsafe partial class CpuBackend
{
    public void BatchNormStatistics(float* x, float* mean, float* variance, int batch, int channels, int spatial) =>
        ParallelKernel.Items(channels, new BatchNormStatisticsChannels(x, mean, variance, batch, channels, spatial));

    public void BatchNorm(float* x, float* mean, float* rstd, float* w, float* b, float* residual, bool relu, float* y, int batch, int channels, int spatial) =>
        ParallelKernel.Items(batch * channels, new BatchNormPlanes(x, mean, rstd, w, b, residual, relu, y, channels, spatial));

    public void BatchNormBackward(float* dy, float* x, float* mean, float* rstd, float* w, float* reluOutput, float* dx, float* dResidual, float* dw, float* db,
        int batch, int channels, int spatial, bool batchStatistics) =>
        ParallelKernel.Items(channels, new BatchNormBackwardChannels(dy, x, mean, rstd, w, reluOutput, dx, dResidual, dw, db, batch, channels, spatial, batchStatistics));

    private readonly struct BatchNormStatisticsChannels(float* x, float* mean, float* variance, int batch, int channels, int spatial) : IKernelItems
    {
        public void Execute<V>(int c) where V : struct, IVec<V> => BatchNormStatisticsChannel<V>(c, batch, channels, spatial, x, mean, variance);
    }

    private readonly struct BatchNormPlanes(float* x, float* mean, float* rstd, float* w, float* b, float* residual, bool relu, float* y,
        int channels, int spatial) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => BatchNormPlane<V>(plane, channels, spatial, x, mean, rstd, w, b, residual, relu, y);
    }

    private readonly struct BatchNormBackwardChannels(float* dy, float* x, float* mean, float* rstd, float* w, float* reluOutput, float* dx,
        float* dResidual, float* dw, float* db, int batch, int channels, int spatial, bool batchStatistics) : IKernelItems
    {
        public void Execute<V>(int c) where V : struct, IVec<V> =>
            BatchNormBackwardChannel<V>(c, batch, channels, spatial, dy, x, mean, rstd, w, reluOutput, dx, dResidual, dw, db, batchStatistics);
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
            V.AddProduct(ref acc0, d0, d0);
            V.AddProduct(ref acc1, d1, d1);
        }
        for (; k + V.Count <= n; k += V.Count)
        {
            var d = V.Load(x + k) - m;
            V.AddProduct(ref acc0, d, d);
        }
        float sum = V.SumAcross(acc0 + acc1);
        for (; k < n; k++) sum += (x[k] - mean) * (x[k] - mean);
        return sum;
    }

    // y = (x - mean)·(rstd·w) + b (+ residual) (then the ReLU) over one (n, c) plane.
    private static void BatchNormPlane<V>(int plane, int channels, int spatial, float* x, float* mean, float* rstd, float* w, float* b,
        float* residual, bool relu, float* y) where V : struct, IVec<V>
    {
        int c = plane % channels;
        long at = (long)plane * spatial;
        float scale = rstd[c] * (w == null ? 1f : w[c]), shift = b == null ? 0f : b[c];
        float* r = residual == null ? null : residual + at;
        int k = NormalizeSpan<V>(x + at, r, relu, y + at, mean[c], scale, shift, 0, spatial);
        if (V.Count > V256.Count) k = NormalizeSpan<V256>(x + at, r, relu, y + at, mean[c], scale, shift, k, spatial);
        NormalizeSpan<V1>(x + at, r, relu, y + at, mean[c], scale, shift, k, spatial);
    }

    /// <summary>y[k] = (x[k] - center)·scale + shift (+ residual[k]) (then max(·, 0)) over [k, end).</summary>
    private static int NormalizeSpan<V>(float* x, float* residual, bool relu, float* y, float center, float scale, float shift, int k, int end)
        where V : struct, IVec<V>
    {
        V m = V.Splat(center), s = V.Splat(scale), b = V.Splat(shift), zero = V.Splat(0f);
        for (; k + V.Count <= end; k += V.Count)
        {
            V v = V.Fma(V.Load(x + k) - m, s, b);
            if (residual != null) v += V.Load(residual + k);
            if (relu) v = V.Max(v, zero);
            V.Store(y + k, v);
        }
        return k;
    }

    // Per channel, with g the gradient reaching the normalisation (dy through the ReLU's mask, if any): Σg and
    // Σg·(x - mean) in a first pass, which also writes g to dResidual, then
    // dx = w·rstd·(g - Σg/count - (x - mean)·rstd²·Σg·(x - mean)/count) in a second (only g's term without batch statistics).
    private static void BatchNormBackwardChannel<V>(int c, int batch, int channels, int spatial, float* dy, float* x, float* mean, float* rstd,
        float* w, float* reluOutput, float* dx, float* dResidual, float* dw, float* db, bool batchStatistics) where V : struct, IVec<V>
    {
        float m = mean[c], r = rstd[c];
        double dySum = 0, dyCenteredSum = 0;
        for (int n = 0; n < batch; n++)
        {
            long at = ((long)n * channels + c) * spatial;
            var (sum, centered) = GradientSums<V>(dy + at, reluOutput == null ? null : reluOutput + at, x + at, m,
                dResidual == null ? null : dResidual + at, spatial);
            dySum += sum;
            dyCenteredSum += centered;
        }
        if (dw != null) dw[c] = (float)(dyCenteredSum * r);
        if (db != null) db[c] = (float)dySum;
        if (dx == null) return;
        double count = (double)batch * spatial;
        float scale = r * (w == null ? 1f : w[c]);
        // dx = scale·dy + (x - mean)·slope + offset
        float slope = batchStatistics ? (float)(-scale * r * r * dyCenteredSum / count) : 0f;
        float offset = batchStatistics ? (float)(-scale * dySum / count) : 0f;
        // g again: already masked in dResidual where there is one, else masked from the ReLU's output on the way.
        float* g = dResidual != null ? dResidual : dy, mask = dResidual == null ? reluOutput : null;
        for (int n = 0; n < batch; n++)
        {
            long at = ((long)n * channels + c) * spatial;
            float* maskAt = mask == null ? null : mask + at;
            int k = BatchNormGradientSpan<V>(g + at, maskAt, x + at, dx + at, m, scale, slope, offset, 0, spatial);
            if (V.Count > V256.Count) k = BatchNormGradientSpan<V256>(g + at, maskAt, x + at, dx + at, m, scale, slope, offset, k, spatial);
            BatchNormGradientSpan<V1>(g + at, maskAt, x + at, dx + at, m, scale, slope, offset, k, spatial);
        }
    }

    /// <summary>dy[k], or 0 where a ReLU's output mask[k] is not positive.</summary>
    private static V Masked<V>(float* dy, float* mask, int k) where V : struct, IVec<V> =>
        mask == null ? V.Load(dy + k) : V.Select(V.Greater(V.Load(mask + k), V.Splat(0f)), V.Load(dy + k), V.Splat(0f));

    /// <summary>(Σ g[k], Σ g[k]·(x[k] - center)) over [0, n), g the dy <see cref="Masked{V}"/> by the ReLU output (if
    /// any), also written to <paramref name="gOut"/> when not null.</summary>
    private static (float Sum, float Centered) GradientSums<V>(float* dy, float* mask, float* x, float center, float* gOut, int n)
        where V : struct, IVec<V>
    {
        V sum = V.Splat(0f), centered = sum, m = V.Splat(center);
        int k = 0;
        for (; k + V.Count <= n; k += V.Count)
        {
            V g = Masked<V>(dy, mask, k);
            if (gOut != null) V.Store(gOut + k, g);
            sum += g;
            V.AddProduct(ref centered, g, V.Load(x + k) - m);
        }
        float s = V.SumAcross(sum), sc = V.SumAcross(centered);
        for (; k < n; k++)
        {
            float g = Masked<V1>(dy, mask, k).V;
            if (gOut != null) gOut[k] = g;
            s += g;
            sc += g * (x[k] - center);
        }
        return (s, sc);
    }

    private static int BatchNormGradientSpan<V>(float* dy, float* mask, float* x, float* dx, float center, float scale, float slope, float offset, int k, int end)
        where V : struct, IVec<V>
    {
        V m = V.Splat(center), s = V.Splat(scale), sl = V.Splat(slope), o = V.Splat(offset);
        for (; k + V.Count <= end; k += V.Count)
            V.Store(dx + k, V.Fma(Masked<V>(dy, mask, k), s, V.Fma(V.Load(x + k) - m, sl, o)));
        return k;
    }
}
