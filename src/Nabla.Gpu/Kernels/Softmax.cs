using ILGPU;

namespace Nabla.Gpu.Kernels;

/// <summary>
/// Row-wise softmax, its backward, and the fused cross-entropy (loss and gradient straight from the logits, never
/// materialising the probabilities), over contiguous rows × cols matrices.
/// <para>v1: one thread per row, three passes over the row (max, Σexp, write): simple, but a warp's 32 threads read
/// 32 different rows (uncoalesced) and a few rows leave most of the GPU idle. v2: one group of
/// 256 threads (on a GPU) per row, each striding over the columns (coalesced), with group reductions for the
/// max and the sum: the layout llm.c's softmax kernels converge to. Backward and cross-entropy use the v2 layout.</para>
/// </summary>
internal static class Softmax
{
    public static void V1RowPerThread(Index1D row, ArrayView<float> x, ArrayView<float> y, int cols, int log)
    {
        long start = (long)row.X * cols;
        float max = float.NegativeInfinity;
        for (int c = 0; c < cols; c++) max = Block.NanMax(max, x[start + c]);
        float sum = 0;
        for (int c = 0; c < cols; c++) sum += MathF.Exp(x[start + c] - max);
        float logSum = MathF.Log(sum);
        for (int c = 0; c < cols; c++)
            y[start + c] = log != 0 ? x[start + c] - max - logSum : MathF.Exp(x[start + c] - max) / sum;
    }

    public static void V2BlockPerRow(ArrayView<float> x, ArrayView<float> y, int cols, int log)
    {
        var scratch = SharedMemory.Allocate<float>(Block.MaxSize);
        long start = (long)Grid.IdxX * cols;
        int t = Group.IdxX;
        float max = float.NegativeInfinity;
        for (int c = t; c < cols; c += Group.DimX) max = Block.NanMax(max, x[start + c]);
        max = Block.Max(max, scratch);
        float sum = 0;
        for (int c = t; c < cols; c += Group.DimX) sum += MathF.Exp(x[start + c] - max);
        sum = Block.Sum(sum, scratch);
        float logSum = MathF.Log(sum);
        for (int c = t; c < cols; c += Group.DimX)
            y[start + c] = log != 0 ? x[start + c] - max - logSum : MathF.Exp(x[start + c] - max) / sum;
    }

    /// <summary>dx = y·(dy - Σ y·dy), or for log-softmax dx = dy - exp(y)·Σ dy.</summary>
    public static void Backward(ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx, int cols, int log)
    {
        var scratch = SharedMemory.Allocate<float>(Block.MaxSize);
        long start = (long)Grid.IdxX * cols;
        int t = Group.IdxX;
        float partial = 0;
        for (int c = t; c < cols; c += Group.DimX) partial += log != 0 ? dy[start + c] : y[start + c] * dy[start + c];
        float total = Block.Sum(partial, scratch);
        for (int c = t; c < cols; c += Group.DimX)
            dx[start + c] = log != 0 ? dy[start + c] - MathF.Exp(y[start + c]) * total : y[start + c] * (dy[start + c] - total);
    }

    /// <summary>Loss of one row per group: (1-ε)·(lse - z_t) + ε·(lse - mean z). A target outside [0, classes) (other
    /// than the ignore index) records row + 1 in <paramref name="error"/> (the smallest such row wins) for the host to report.</summary>
    public static void CrossEntropy(ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> loss, ArrayView<int> error,
        int classes, int ignoreIndex, float smoothing)
    {
        var scratch = SharedMemory.Allocate<float>(Block.MaxSize);
        int row = Grid.IdxX, t = Group.IdxX;
        int target = targets[row];
        if (target == ignoreIndex)
        {
            if (t == 0) loss[row] = 0;
            return;
        }
        if ((uint)target >= (uint)classes)
        {
            if (t == 0) Atomic.Min(ref error[0], row + 1);
            return;
        }
        long start = (long)row * classes;
        float max = float.NegativeInfinity;
        for (int c = t; c < classes; c += Group.DimX) max = Block.NanMax(max, logits[start + c]);
        max = Block.Max(max, scratch);
        float sum = 0, sumLogits = 0;
        for (int c = t; c < classes; c += Group.DimX)
        {
            sum += MathF.Exp(logits[start + c] - max);
            sumLogits += logits[start + c];
        }
        sum = Block.Sum(sum, scratch);
        sumLogits = Block.Sum(sumLogits, scratch);
        if (t == 0)
        {
            float logSumExp = max + MathF.Log(sum);
            float nll = logSumExp - logits[start + target];
            float uniform = logSumExp - sumLogits / classes;
            loss[row] = (1 - smoothing) * nll + smoothing * uniform;
        }
    }

    /// <summary>dlogits = dloss·(softmax - q), q = (1-ε)·onehot + ε/classes; zeros for ignored rows.</summary>
    public static void CrossEntropyBackward(ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> dloss, ArrayView<float> dlogits,
        ArrayView<int> error, int classes, int ignoreIndex, float smoothing)
    {
        var scratch = SharedMemory.Allocate<float>(Block.MaxSize);
        int row = Grid.IdxX, t = Group.IdxX;
        long start = (long)row * classes;
        int target = targets[row];
        if (target == ignoreIndex)
        {
            for (int c = t; c < classes; c += Group.DimX) dlogits[start + c] = 0;
            return;
        }
        if ((uint)target >= (uint)classes)
        {
            if (t == 0) Atomic.Min(ref error[0], row + 1);
            return;
        }
        float max = float.NegativeInfinity;
        for (int c = t; c < classes; c += Group.DimX) max = Block.NanMax(max, logits[start + c]);
        max = Block.Max(max, scratch);
        float sum = 0;
        for (int c = t; c < classes; c += Group.DimX) sum += MathF.Exp(logits[start + c] - max);
        sum = Block.Sum(sum, scratch);
        float scale = dloss[row] / sum, uniform = smoothing / classes;
        for (int c = t; c < classes; c += Group.DimX)
        {
            float q = uniform + (c == target ? 1 - smoothing : 0);
            dlogits[start + c] = scale * MathF.Exp(logits[start + c] - max) - dloss[row] * q;
        }
    }
}
