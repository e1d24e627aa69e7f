using ILGPU;

namespace Nabla.Gpu.Kernels;

/// <summary>Batch normalisation over (batch, channels, spatial), naive: one thread per channel for the statistics
/// and the gradient sums (double accumulators, as the reference), one per element for the rest.</summary>
internal static class BatchNorm
{
    public static void Statistics(Index1D c, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> variance, int batch, int channels, int spatial)
    {
        long count = (long)batch * spatial;
        double sum = 0;
        for (int n = 0; n < batch; n++)
            for (int s = 0; s < spatial; s++) sum += x[((long)n * channels + c) * spatial + s];
        double m = sum / count, squares = 0;
        for (int n = 0; n < batch; n++)
            for (int s = 0; s < spatial; s++)
            {
                double d = x[((long)n * channels + c) * spatial + s] - m;
                squares += d * d;
            }
        mean[c] = (float)m;
        variance[c] = (float)(squares / count);
    }

    public static void Normalize(Index1D i, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> w, ArrayView<float> b,
        ArrayView<float> y, int channels, int spatial, int hasW, int hasB)
    {
        int c = i / spatial % channels;
        y[i] = (x[i] - mean[c]) * rstd[c] * (hasW != 0 ? w[c] : 1f) + (hasB != 0 ? b[c] : 0f);
    }

    /// <summary>sums[c] = Σ dy, sums[channels + c] = Σ dy·x̂; also written to db / dw when present.</summary>
    public static void GradientSums(Index1D c, ArrayView<float> dy, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd,
        ArrayView<float> sums, ArrayView<float> dw, ArrayView<float> db, int batch, int channels, int spatial, int hasDw, int hasDb)
    {
        double dySum = 0, dyNormalizedSum = 0;
        for (int n = 0; n < batch; n++)
            for (int s = 0; s < spatial; s++)
            {
                long i = ((long)n * channels + c) * spatial + s;
                dySum += dy[i];
                dyNormalizedSum += dy[i] * ((x[i] - (double)mean[c]) * rstd[c]);
            }
        sums[c] = (float)dySum;
        sums[channels + c] = (float)dyNormalizedSum;
        if (hasDw != 0) dw[c] = (float)dyNormalizedSum;
        if (hasDb != 0) db[c] = (float)dySum;
    }

    public static void InputGradient(Index1D i, ArrayView<float> dy, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd,
        ArrayView<float> w, ArrayView<float> sums, ArrayView<float> dx, int batch, int channels, int spatial, int hasW, int batchStatistics)
    {
        int c = i / spatial % channels;
        long count = (long)batch * spatial;
        float g = dy[i];
        if (batchStatistics != 0) g -= sums[c] / count + (x[i] - mean[c]) * rstd[c] * (sums[channels + c] / count);
        dx[i] = (hasW != 0 ? w[c] : 1f) * rstd[c] * g;
    }
}
