using System.Diagnostics;

namespace Nabla.Kernels;

/// <summary>
/// Wraps a backend and measures the time spent in each of its kernels, to show where a training step goes:
/// <c>using (Backend.Use(profiler)) { ... } Console.Write(profiler.Report());</c>. Adds a timer read per kernel
/// call (tens of nanoseconds), nothing else.
/// </summary>
public sealed unsafe class ProfilingBackend(IKernelBackend inner) : IKernelBackend
{
    private readonly Dictionary<string, (long Ticks, long Calls)> _totals = new();

    public string Name => $"profiling({inner.Name})";

    public void Reset() => _totals.Clear();

    /// <summary>Time per kernel, largest first, with its share of the total.</summary>
    public string Report()
    {
        double total = _totals.Values.Sum(t => t.Ticks);
        var lines = _totals.OrderByDescending(kv => kv.Value.Ticks).Select(kv =>
            $"{kv.Key,-24} {kv.Value.Ticks * 1000.0 / Stopwatch.Frequency,10:F1} ms {100 * kv.Value.Ticks / Math.Max(total, 1),6:F1}% {kv.Value.Calls,8} calls");
        return string.Join(Environment.NewLine, lines) + Environment.NewLine;
    }

    private readonly struct Timer(ProfilingBackend owner, string name) : IDisposable
    {
        private readonly long _start = Stopwatch.GetTimestamp();

        public void Dispose()
        {
            long elapsed = Stopwatch.GetTimestamp() - _start;
            owner._totals[name] = owner._totals.TryGetValue(name, out var t) ? (t.Ticks + elapsed, t.Calls + 1) : (elapsed, 1);
        }
    }

    private Timer Time(string name) => new(this, name);

    public void Fill(float* y, float value, long n) { using var _ = Time("Fill"); inner.Fill(y, value, n); }

    public void Copy(float* src, ReadOnlySpan<int> srcStrides, float* dst, ReadOnlySpan<int> dstStrides, ReadOnlySpan<int> shape, bool accumulate)
    { using var _ = Time(accumulate ? "Copy (accumulate)" : "Copy"); inner.Copy(src, srcStrides, dst, dstStrides, shape, accumulate); }

    public void Unary(UnaryOp op, float alpha, float* x, float* y, long n) { using var _ = Time(op.ToString()); inner.Unary(op, alpha, x, y, n); }

    public void UnaryBackward(UnaryOp op, float alpha, float* x, float* y, float* dy, float* dx, long n)
    { using var _ = Time(op + " backward"); inner.UnaryBackward(op, alpha, x, y, dy, dx, n); }

    public void Binary(BinaryOp op, float* a, ReadOnlySpan<int> aStrides, float* b, ReadOnlySpan<int> bStrides, float* y, ReadOnlySpan<int> shape)
    { using var _ = Time(op.ToString()); inner.Binary(op, a, aStrides, b, bStrides, y, shape); }

    public void Sum(float* x, float* y, int outer, int r, int inner1) { using var _ = Time("Sum"); inner.Sum(x, y, outer, r, inner1); }

    public void Max(float* x, float* y, int* argmax, int outer, int r, int inner1) { using var _ = Time("Max"); inner.Max(x, y, argmax, outer, r, inner1); }

    public void Softmax(float* x, float* y, int rows, int cols, bool log) { using var _ = Time("Softmax"); inner.Softmax(x, y, rows, cols, log); }

    public void SoftmaxBackward(float* y, float* dy, float* dx, int rows, int cols, bool log)
    { using var _ = Time("Softmax backward"); inner.SoftmaxBackward(y, dy, dx, rows, cols, log); }

    public void CrossEntropy(float* logits, int* targets, float* loss, int rows, int classes, int ignoreIndex, float smoothing)
    { using var _ = Time("CrossEntropy"); inner.CrossEntropy(logits, targets, loss, rows, classes, ignoreIndex, smoothing); }

    public void CrossEntropyBackward(float* logits, int* targets, float* dloss, float* dlogits, int rows, int classes, int ignoreIndex, float smoothing)
    { using var _ = Time("CrossEntropy backward"); inner.CrossEntropyBackward(logits, targets, dloss, dlogits, rows, classes, ignoreIndex, smoothing); }

    public void LayerNorm(float* x, float* w, float* b, float* y, float* mean, float* rstd, int rows, int cols, float eps)
    { using var _ = Time("LayerNorm"); inner.LayerNorm(x, w, b, y, mean, rstd, rows, cols, eps); }

    public void LayerNormBackward(float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db, int rows, int cols)
    { using var _ = Time("LayerNorm backward"); inner.LayerNormBackward(dy, x, w, mean, rstd, dx, dw, db, rows, cols); }

    public void Gemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, long strideA, float* b, int ldb, long strideB,
        float* c, int ldc, long strideC, int batch, bool accumulate, float* bias)
    { using var _ = Time("Gemm"); inner.Gemm(transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, c, ldc, strideC, batch, accumulate, bias); }

    public void Attention(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse)
    { using var _ = Time("Attention"); inner.Attention(layout, q, k, v, o, lse); }

    public void AttentionBackward(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse, float* dout, float* dq, float* dk, float* dv)
    { using var _ = Time("Attention backward"); inner.AttentionBackward(layout, q, k, v, o, lse, dout, dq, dk, dv); }

    public void Embedding(float* table, int* idx, float* y, int n, int dim, int rows) { using var _ = Time("Embedding"); inner.Embedding(table, idx, y, n, dim, rows); }

    public void EmbeddingBackward(float* dy, int* idx, float* dtable, int n, int dim) { using var _ = Time("Embedding backward"); inner.EmbeddingBackward(dy, idx, dtable, n, dim); }

    public void AdamW(float* p, float* g, float* m, float* v, long n, float lr, float beta1, float beta2, float eps, float weightDecay, int step)
    { using var _ = Time("AdamW"); inner.AdamW(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, step); }

    public void Col2Im(in Conv2dGeometry g, float* col, float* dx) { using var _ = Time("Col2Im"); inner.Col2Im(g, col, dx); }

    public void DepthwiseConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y)
    { using var _ = Time("DepthwiseConv2d"); inner.DepthwiseConv2d(g, x, w, bias, y); }

    public void DepthwiseConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx)
    { using var _ = Time("DepthwiseConv2d backward input"); inner.DepthwiseConv2dBackwardInput(g, dy, w, dx); }

    public void DepthwiseConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw)
    { using var _ = Time("DepthwiseConv2d backward weight"); inner.DepthwiseConv2dBackwardWeight(g, dy, x, dw); }

    public void MaxPool2d(in Conv2dGeometry g, float* x, float* y, int* argmax) { using var _ = Time("MaxPool2d"); inner.MaxPool2d(g, x, y, argmax); }

    public void MaxPool2dBackward(in Conv2dGeometry g, float* dy, int* argmax, float* dx)
    { using var _ = Time("MaxPool2d backward"); inner.MaxPool2dBackward(g, dy, argmax, dx); }

    public void AvgPool2d(in Conv2dGeometry g, bool countIncludePad, float* x, float* y)
    { using var _ = Time("AvgPool2d"); inner.AvgPool2d(g, countIncludePad, x, y); }

    public void AvgPool2dBackward(in Conv2dGeometry g, bool countIncludePad, float* dy, float* dx)
    { using var _ = Time("AvgPool2d backward"); inner.AvgPool2dBackward(g, countIncludePad, dy, dx); }

    public void AdaptiveAvgPool2d(int planes, int height, int width, int outHeight, int outWidth, float* x, float* y)
    { using var _ = Time("AdaptiveAvgPool2d"); inner.AdaptiveAvgPool2d(planes, height, width, outHeight, outWidth, x, y); }

    public void AdaptiveAvgPool2dBackward(int planes, int height, int width, int outHeight, int outWidth, float* dy, float* dx)
    { using var _ = Time("AdaptiveAvgPool2d backward"); inner.AdaptiveAvgPool2dBackward(planes, height, width, outHeight, outWidth, dy, dx); }

    public void BatchNormStatistics(float* x, float* mean, float* variance, int batch, int channels, int spatial)
    { using var _ = Time("BatchNorm statistics"); inner.BatchNormStatistics(x, mean, variance, batch, channels, spatial); }

    public void BatchNorm(float* x, float* mean, float* rstd, float* w, float* b, float* y, int batch, int channels, int spatial)
    { using var _ = Time("BatchNorm"); inner.BatchNorm(x, mean, rstd, w, b, y, batch, channels, spatial); }

    public void BatchNormBackward(float* dy, float* x, float* mean, float* rstd, float* w, float* dx, float* dw, float* db,
        int batch, int channels, int spatial, bool batchStatistics)
    { using var _ = Time("BatchNorm backward"); inner.BatchNormBackward(dy, x, mean, rstd, w, dx, dw, db, batch, channels, spatial, batchStatistics); }
}
