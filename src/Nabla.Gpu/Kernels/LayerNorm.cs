using ILGPU;

namespace Nabla.Gpu.Kernels;

/// <summary>
/// Layer norm over the last dimension of contiguous rows × cols.
/// <para>v1: one thread per row (three passes: mean, variance, write) — uncoalesced across a warp, like softmax v1.
/// v2: one group per row, threads striding over the columns, group reductions for the mean and the variance
/// (two-pass variance, not E[x²]-E[x]², so large means do not cancel). The backward uses the v2 layout and adds
/// each row's share of dw and db with atomics (llm.c's first layer-norm backward does the same).</para>
/// Null w / b arrive as flags (a kernel cannot take a null view).
/// </summary>
internal static class LayerNorm
{
    public static void V1RowPerThread(Index1D row, ArrayView<float> x, ArrayView<float> w, ArrayView<float> b, ArrayView<float> y,
        ArrayView<float> mean, ArrayView<float> rstd, int cols, float eps, int hasW, int hasB)
    {
        long start = (long)row.X * cols;
        float m = 0;
        for (int c = 0; c < cols; c++) m += x[start + c];
        m /= cols;
        float v = 0;
        for (int c = 0; c < cols; c++) v += (x[start + c] - m) * (x[start + c] - m);
        float s = 1f / MathF.Sqrt(v / cols + eps);
        for (int c = 0; c < cols; c++)
            y[start + c] = (x[start + c] - m) * s * (hasW != 0 ? w[c] : 1f) + (hasB != 0 ? b[c] : 0f);
        mean[row] = m;
        rstd[row] = s;
    }

    public static void V2BlockPerRow(ArrayView<float> x, ArrayView<float> w, ArrayView<float> b, ArrayView<float> y,
        ArrayView<float> mean, ArrayView<float> rstd, int cols, float eps, int hasW, int hasB)
    {
        var scratch = SharedMemory.Allocate<float>(Block.MaxSize);
        int row = Grid.IdxX, t = Group.IdxX;
        long start = (long)row * cols;
        float partial = 0;
        for (int c = t; c < cols; c += Group.DimX) partial += x[start + c];
        float m = Block.Sum(partial, scratch) / cols;
        partial = 0;
        for (int c = t; c < cols; c += Group.DimX) partial += (x[start + c] - m) * (x[start + c] - m);
        float s = 1f / MathF.Sqrt(Block.Sum(partial, scratch) / cols + eps);
        for (int c = t; c < cols; c += Group.DimX)
            y[start + c] = (x[start + c] - m) * s * (hasW != 0 ? w[c] : 1f) + (hasB != 0 ? b[c] : 0f);
        if (t == 0)
        {
            mean[row] = m;
            rstd[row] = s;
        }
    }

    /// <summary>dx = rstd·(g - mean(g) - n·mean(g·n)) with n = (x - mean)·rstd, g = dy·w; dw += dy·n, db += dy.</summary>
    public static void Backward(ArrayView<float> dy, ArrayView<float> x, ArrayView<float> w, ArrayView<float> mean, ArrayView<float> rstd,
        ArrayView<float> dx, ArrayView<float> dw, ArrayView<float> db, int cols, int hasW, int hasDw, int hasDb)
    {
        var scratch = SharedMemory.Allocate<float>(Block.MaxSize);
        int row = Grid.IdxX, t = Group.IdxX;
        long start = (long)row * cols;
        float m = mean[row], s = rstd[row];
        float gSum = 0, gnSum = 0;
        for (int c = t; c < cols; c += Group.DimX)
        {
            float n = (x[start + c] - m) * s;
            float g = dy[start + c] * (hasW != 0 ? w[c] : 1f);
            gSum += g;
            gnSum += g * n;
        }
        float gMean = Block.Sum(gSum, scratch) / cols;
        float gnMean = Block.Sum(gnSum, scratch) / cols;
        for (int c = t; c < cols; c += Group.DimX)
        {
            float n = (x[start + c] - m) * s;
            float g = dy[start + c] * (hasW != 0 ? w[c] : 1f);
            dx[start + c] = s * (g - gMean - n * gnMean);
            if (hasDw != 0) Atomic.Add(ref dw[c], dy[start + c] * n);
            if (hasDb != 0) Atomic.Add(ref db[c], dy[start + c]);
        }
    }
}
