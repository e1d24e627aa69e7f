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

    /// <summary>Bits of the flags argument: which optional inputs and outputs are there, whether a ReLU follows.</summary>
    public const int HasWeight = 1, HasBias = 2, HasResidual = 4, Relu = 8, HasDw = 16, HasDb = 32, BatchStatistics = 64;

    public static void Normalize(Index1D i, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> w, ArrayView<float> b,
        ArrayView<float> residual, ArrayView<float> y, int channels, int spatial, int flags)
    {
        int c = i / spatial % channels;
        float v = (x[i] - mean[c]) * rstd[c] * ((flags & HasWeight) != 0 ? w[c] : 1f) + ((flags & HasBias) != 0 ? b[c] : 0f);
        if ((flags & HasResidual) != 0) v += residual[i];
        y[i] = (flags & Relu) != 0 && !(v > 0f) ? 0f : v;
    }

    /// <summary>The gradient reaching the normalisation: dy, or with a ReLU dy where its output y is positive.</summary>
    private static float Incoming(ArrayView<float> dy, ArrayView<float> reluOutput, long i, int flags) =>
        (flags & Relu) == 0 || reluOutput[i] > 0f ? dy[i] : 0f;

    /// <summary>sums[c] = Σ g, sums[channels + c] = Σ g·x̂ (g: <see cref="Incoming"/>); also written to db / dw when present.</summary>
    public static void GradientSums(Index1D c, ArrayView<float> dy, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd,
        ArrayView<float> reluOutput, ArrayView<float> sums, ArrayView<float> dw, ArrayView<float> db, int batch, int channels, int spatial, int flags)
    {
        double dySum = 0, dyNormalizedSum = 0;
        for (int n = 0; n < batch; n++)
            for (int s = 0; s < spatial; s++)
            {
                long i = ((long)n * channels + c) * spatial + s;
                float g = Incoming(dy, reluOutput, i, flags);
                dySum += g;
                dyNormalizedSum += g * ((x[i] - (double)mean[c]) * rstd[c]);
            }
        sums[c] = (float)dySum;
        sums[channels + c] = (float)dyNormalizedSum;
        if ((flags & HasDw) != 0) dw[c] = (float)dyNormalizedSum;
        if ((flags & HasDb) != 0) db[c] = (float)dySum;
    }

    /// <summary>The residual's gradient: g (<see cref="Incoming"/>).</summary>
    public static void MaskedGradient(Index1D i, ArrayView<float> dy, ArrayView<float> reluOutput, ArrayView<float> g, int flags) =>
        g[i] = Incoming(dy, reluOutput, i, flags);

    public static void InputGradient(Index1D i, ArrayView<float> dy, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> rstd,
        ArrayView<float> w, ArrayView<float> reluOutput, ArrayView<float> sums, ArrayView<float> dx, int batch, int channels, int spatial, int flags)
    {
        int c = i / spatial % channels;
        long count = (long)batch * spatial;
        float g = Incoming(dy, reluOutput, i, flags);
        if ((flags & BatchStatistics) != 0) g -= sums[c] / count + (x[i] - mean[c]) * rstd[c] * (sums[channels + c] / count);
        dx[i] = ((flags & HasWeight) != 0 ? w[c] : 1f) * rstd[c] * g;
    }
}
