using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Nabla.Kernels.Reference;

namespace Nabla.Kernels.Cpu;

/// <summary>
/// The optimised CPU kernels: vectorised (AVX-512, AVX2 or scalar, see <see cref="CpuFeatures"/>) and spread
/// over <see cref="WorkerPool"/> where the work is large enough to pay for it. Each method computes exactly
/// what the same method of <see cref="ReferenceBackend"/> computes; the tests hold them to it. Each kernel's
/// work is a small struct of its own (its arguments, by name) run by <see cref="ParallelKernel"/>, so no call
/// allocates once warm. Families of kernels have files of their own: attention, convolution, pooling, batch norm.
/// </summary>
public sealed unsafe partial class CpuBackend : IKernelBackend
{
    public static readonly CpuBackend Instance = new();
    public string Name => "cpu";

    /// <summary>Element-wise work below this many elements runs on one thread.</summary>
    internal const int ParallelGrain = 1 << 15;

    public void Fill(float* y, float value, long n) => ParallelKernel.Range(n, ParallelGrain, 4, new FillRange(y, value));

    // Counters of one or a few elements: not worth a parallel range.
    public void AddInt(int* x, int value, long n) => ReferenceBackend.Instance.AddInt(x, value, n);

    private readonly struct FillRange(float* y, float value) : IKernelRange
    {
        public void Execute<V>(long s, long e) where V : struct, IVec<V> => new Span<float>(y + s, (int)(e - s)).Fill(value);
    }

    // ---------------------------------------------------------------- copies

    public void Copy(float* src, ReadOnlySpan<int> srcStrides, float* dst, ReadOnlySpan<int> dstStrides, ReadOnlySpan<int> shape, bool accumulate)
    {
        var loop = StridedLoop.Coalesce(shape, srcStrides, dstStrides);
        if (loop.Count == 0) return;
        long rows = loop.Count / loop.InnerSize;
        var copy = new CopyRows(loop, src, dst, accumulate);
        // Accumulating copies may overlap in the destination (unfold backward): keep them on one thread.
        if (accumulate || loop.Count <= ParallelGrain) copy.Execute<V1>(0, rows);
        else ParallelKernel.Range(rows, 1, 4, copy);
    }

    private readonly struct CopyRows(StridedLoop loop, float* src, float* dst, bool accumulate) : IKernelRange
    {
        public void Execute<V>(long r0, long r1) where V : struct, IVec<V>
        {
            int inner = loop.InnerSize, ss = loop.InnerStrideA, ds = loop.InnerStrideB;
            var it = loop.Iterator(r0);
            for (long r = r0; r < r1; r++, it.Next())
            {
                float* s = src + it.OffsetA, d = dst + it.OffsetB;
                if (accumulate)
                {
                    if (ss == 1 && ds == 1) TensorPrimitives.Add(new ReadOnlySpan<float>(d, inner), new ReadOnlySpan<float>(s, inner), new Span<float>(d, inner));
                    else for (int i = 0; i < inner; i++) d[(long)i * ds] += s[(long)i * ss];
                }
                else if (ss == 1 && ds == 1) Buffer.MemoryCopy(s, d, inner * 4L, inner * 4L);
                else if (ss == 0 && ds == 1) new Span<float>(d, inner).Fill(*s); // a broadcast (a bias over positions)
                else if (ss == 2 && ds == 1) EveryOther(s, d, inner); // a stride-2 subsampling (a 1×1 stride-2 convolution's columns)
                else for (int i = 0; i < inner; i++) d[(long)i * ds] = s[(long)i * ss];
            }
        }
    }

    /// <summary>d[i] = s[2i] for i &lt; n: with AVX2, 8 at a time from 16 inputs wherever those lie within s[0 .. 2n - 2]
    /// (never reading past the last element used), the rest one by one.</summary>
    private static void EveryOther(float* s, float* d, int n)
    {
        int i = 0;
        if (CpuFeatures.UseAvx2)
            for (; 2 * i + 16 <= 2 * n - 1; i += 8)
                Avx.Store(d + i, EvenLanes(Avx.LoadVector256(s + 2 * i), Avx.LoadVector256(s + 2 * i + 8)));
        for (; i < n; i++) d[i] = s[2 * i];
    }

    // ---------------------------------------------------------------- unary

    public void Unary<F>(float alpha, float* x, float* y, long n) where F : struct, IUnaryFunction =>
        ParallelKernel.Range(n, ParallelGrain, 4, new UnaryRange<F>(x, y, alpha));

    public void UnaryBackward<F>(float alpha, float* x, float* y, float* dy, float* dx, long n) where F : struct, IUnaryFunction =>
        ParallelKernel.Range(n, ParallelGrain, 4, new UnaryBackwardRange<F>(x, y, dy, dx, alpha));

    private readonly struct UnaryRange<F>(float* x, float* y, float alpha) : IKernelRange where F : struct, IUnaryFunction
    {
        public void Execute<V>(long i, long n) where V : struct, IVec<V>
        {
            if (F.TryForwardSpan(new ReadOnlySpan<float>(x + i, (int)(n - i)), alpha, new Span<float>(y + i, (int)(n - i)))) return;
            var a = V.Splat(alpha);
            for (; i + V.Count <= n; i += V.Count) V.Store(y + i, F.Forward(V.Load(x + i), a));
            var a1 = V1.Splat(alpha);
            for (; i < n; i++) V1.Store(y + i, F.Forward(V1.Load(x + i), a1));
        }
    }

    private readonly struct UnaryBackwardRange<F>(float* x, float* y, float* dy, float* dx, float alpha) : IKernelRange where F : struct, IUnaryFunction
    {
        public void Execute<V>(long i, long n) where V : struct, IVec<V>
        {
            // y is only read by derivatives that use it; callers may pass null for the others, so read a zero instead.
            var a = V.Splat(alpha);
            var zero = V.Splat(0f);
            float* xs = x, ys = y, dys = dy, dxs = dx;
            if (ys == null)
                for (; i + V.Count <= n; i += V.Count)
                    V.Store(dxs + i, F.Backward(V.Load(xs + i), zero, V.Load(dys + i), a));
            else
                for (; i + V.Count <= n; i += V.Count)
                    V.Store(dxs + i, F.Backward(V.Load(xs + i), V.Load(ys + i), V.Load(dys + i), a));
            var a1 = V1.Splat(alpha);
            for (; i < n; i++)
                V1.Store(dxs + i, F.Backward(V1.Load(xs + i), ys == null ? V1.Splat(0f) : V1.Load(ys + i), V1.Load(dys + i), a1));
        }
    }

    // ---------------------------------------------------------------- binary

    public void Binary(BinaryOp op, float* a, ReadOnlySpan<int> aStrides, float* b, ReadOnlySpan<int> bStrides, float* y, ReadOnlySpan<int> shape)
    {
        switch (op)
        {
            case BinaryOp.Add: Binary<AddFn>(a, aStrides, b, bStrides, y, shape); break;
            case BinaryOp.Sub: Binary<SubFn>(a, aStrides, b, bStrides, y, shape); break;
            case BinaryOp.Mul: Binary<MulFn>(a, aStrides, b, bStrides, y, shape); break;
            case BinaryOp.Div: Binary<DivFn>(a, aStrides, b, bStrides, y, shape); break;
            case BinaryOp.Maximum: Binary<MaxFn>(a, aStrides, b, bStrides, y, shape); break;
            case BinaryOp.Minimum: Binary<MinFn>(a, aStrides, b, bStrides, y, shape); break;
            case BinaryOp.Greater: Binary<GreaterFn>(a, aStrides, b, bStrides, y, shape); break;
            case BinaryOp.Less: Binary<LessFn>(a, aStrides, b, bStrides, y, shape); break;
            case BinaryOp.Equal: Binary<EqualFn>(a, aStrides, b, bStrides, y, shape); break;
            case BinaryOp.Pow: Binary<PowFn>(a, aStrides, b, bStrides, y, shape); break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    private static void Binary<F>(float* a, ReadOnlySpan<int> aStrides, float* b, ReadOnlySpan<int> bStrides, float* y, ReadOnlySpan<int> shape)
        where F : IBinaryFunction
    {
        var loop = StridedLoop.Coalesce(shape, aStrides, bStrides);
        if (loop.Count == 0) return;
        long rows = loop.Count / loop.InnerSize;
        var body = new BinaryRows<F>(loop, a, b, y);
        if (loop.Count <= ParallelGrain || rows == 1) ParallelKernel.Range(rows, rows, 1, body);
        else ParallelKernel.Range(rows, 1, 4, body);
    }

    private readonly struct BinaryRows<F>(StridedLoop loop, float* a, float* b, float* y) : IKernelRange where F : IBinaryFunction
    {
        public void Execute<V>(long r0, long r1) where V : struct, IVec<V>
        {
            int inner = loop.InnerSize;
            var it = loop.Iterator(r0);
            for (long r = r0; r < r1; r++, it.Next())
                BinaryRow<F, V>(a + it.OffsetA, loop.InnerStrideA, b + it.OffsetB, loop.InnerStrideB, y + r * inner, inner);
        }
    }

    private static void BinaryRow<F, V>(float* a, int sa, float* b, int sb, float* y, int n) where F : IBinaryFunction where V : struct, IVec<V>
    {
        int i = 0;
        if (sa == 1 && sb == 1)
            for (; i + V.Count <= n; i += V.Count) V.Store(y + i, F.Apply(V.Load(a + i), V.Load(b + i)));
        else if (sa == 1 && sb == 0)
        {
            var bv = V.Splat(*b);
            for (; i + V.Count <= n; i += V.Count) V.Store(y + i, F.Apply(V.Load(a + i), bv));
        }
        else if (sa == 0 && sb == 1)
        {
            var av = V.Splat(*a);
            for (; i + V.Count <= n; i += V.Count) V.Store(y + i, F.Apply(av, V.Load(b + i)));
        }
        for (; i < n; i++) y[i] = F.Apply(V1.Load(a + (long)i * sa), V1.Load(b + (long)i * sb)).V;
    }

    // ---------------------------------------------------------------- reductions

    public void Sum(float* x, float* y, int outer, int r, int inner)
    {
        if (inner == 1)
        {
            if (outer == 1 && r > ParallelGrain * 2)
            {
                // One long row: partial sums per chunk, then add them up.
                int chunks = Math.Min(WorkerPool.Threads * 4, r / ParallelGrain);
                var partial = stackalloc float[chunks];
                ParallelKernel.Items(chunks, new SumChunks(x, r, chunks, partial));
                float total = 0;
                for (int c = 0; c < chunks; c++) total += partial[c];
                *y = total;
                return;
            }
            ParallelKernel.Range(outer, Math.Max(1, ParallelGrain / Math.Max(r, 1)), 1, new SumRowsOf(x, y, r));
            return;
        }
        // Sum of rows: y[o, :] = Σ_k x[o, k, :]. Split over outer, or over columns when outer is small.
        if (outer >= WorkerPool.Threads || (long)r * inner < ParallelGrain)
            ParallelKernel.Range(outer, Math.Max(1, ParallelGrain / Math.Max(r * inner, 1)), 1, new SumBlocks(x, y, r, inner));
        else
            for (int o = 0; o < outer; o++)
                ParallelKernel.Range(inner, 64, 1, new SumColumns(x + (long)o * r * inner, y + (long)o * inner, r, inner));
    }

    /// <summary>partial[c] = the sum of chunk c of one long row.</summary>
    private readonly struct SumChunks(float* x, int r, int chunks, float* partial) : IKernelItems
    {
        public void Execute<V>(int c) where V : struct, IVec<V>
        {
            long s = (long)r * c / chunks, e = (long)r * (c + 1) / chunks;
            partial[c] = TensorPrimitives.Sum(new ReadOnlySpan<float>(x + s, (int)(e - s)));
        }
    }

    /// <summary>y[o] = Σ of row o (r contiguous floats).</summary>
    private readonly struct SumRowsOf(float* x, float* y, int r) : IKernelRange
    {
        public void Execute<V>(long o0, long o1) where V : struct, IVec<V>
        {
            for (long o = o0; o < o1; o++) y[o] = TensorPrimitives.Sum(new ReadOnlySpan<float>(x + o * r, r));
        }
    }

    /// <summary>y[o, :] = Σ_k x[o, k, :] for whole blocks o.</summary>
    private readonly struct SumBlocks(float* x, float* y, int r, int inner) : IKernelRange
    {
        public void Execute<V>(long o0, long o1) where V : struct, IVec<V>
        {
            for (long o = o0; o < o1; o++) SumRows(x + o * r * inner, inner, y + o * inner, r, 0, inner);
        }
    }

    /// <summary>Columns [c0, c1) of one block's Σ_k x[k, :].</summary>
    private readonly struct SumColumns(float* x, float* y, int r, int inner) : IKernelRange
    {
        public void Execute<V>(long c0, long c1) where V : struct, IVec<V> => SumRows(x, inner, y, r, (int)c0, (int)c1);
    }

    /// <summary>y[c] = Σ_k x[k·stride + c] for c in [c0, c1).</summary>
    private static void SumRows(float* x, int stride, float* y, int r, int c0, int c1)
    {
        var dst = new Span<float>(y + c0, c1 - c0);
        if (r == 0) { dst.Clear(); return; }
        new ReadOnlySpan<float>(x + c0, c1 - c0).CopyTo(dst);
        for (int k = 1; k < r; k++)
            TensorPrimitives.Add(dst, new ReadOnlySpan<float>(x + (long)k * stride + c0, c1 - c0), dst);
    }

    public void Max(float* x, float* y, int* argmax, int outer, int r, int inner) =>
        ParallelKernel.Range(outer, Math.Max(1, ParallelGrain / Math.Max(r * inner, 1)), 1, new MaxBlocks(x, y, argmax, r, inner));

    private readonly struct MaxBlocks(float* x, float* y, int* argmax, int r, int inner) : IKernelRange
    {
        public void Execute<V>(long o0, long o1) where V : struct, IVec<V>
        {
            for (long o = o0; o < o1; o++)
            {
                float* xo = x + o * r * inner;
                if (inner == 1)
                {
                    var row = new ReadOnlySpan<float>(xo, r);
                    float m = TensorPrimitives.Max(row);
                    y[o] = m;
                    if (argmax != null) argmax[o] = float.IsNaN(m) ? IndexOfNaN(row) : row.IndexOf(m);
                    continue;
                }
                for (int i = 0; i < inner; i++)
                {
                    float best = xo[i];
                    int at = 0;
                    for (int k = 1; k < r && !float.IsNaN(best); k++)
                    {
                        float v = xo[(long)k * inner + i];
                        if (v > best || float.IsNaN(v)) { best = v; at = k; }
                    }
                    y[o * inner + i] = best;
                    if (argmax != null) argmax[o * inner + i] = at;
                }
            }
        }
    }

    private static int IndexOfNaN(ReadOnlySpan<float> row)
    {
        for (int i = 0; i < row.Length; i++) if (float.IsNaN(row[i])) return i;
        return 0;
    }

    // ---------------------------------------------------------------- softmax and cross-entropy

    /// <summary>Rows per chunk so that a chunk has about <see cref="ParallelGrain"/> elements.</summary>
    private static long RowGrain(int cols) => Math.Max(1, ParallelGrain / Math.Max(cols, 1));

    public void Softmax(float* x, float* y, int rows, int cols, bool log) =>
        ParallelKernel.Range(rows, RowGrain(cols), 1, new SoftmaxRows(x, y, cols, log));

    private readonly struct SoftmaxRows(float* x, float* y, int cols, bool log) : IKernelRange
    {
        public void Execute<V>(long r0, long r1) where V : struct, IVec<V>
        {
            for (long r = r0; r < r1; r++)
            {
                var xr = new ReadOnlySpan<float>(x + r * cols, cols);
                var yr = new Span<float>(y + r * cols, cols);
                float max = TensorPrimitives.Max(xr);
                if (float.IsNegativeInfinity(max)) max = 0; // an all -inf row gives NaN, as in PyTorch
                TensorPrimitives.Subtract(xr, max, yr);
                TensorPrimitives.Exp(yr, yr);
                float sum = TensorPrimitives.Sum(yr);
                if (log)
                {
                    // (x - max) - log Σ, not x - (max + log Σ): rounding max + log Σ first loses the small
                    // log-probabilities of the largest logits (hundreds of ulps when max is large).
                    TensorPrimitives.Subtract(xr, max, yr);
                    TensorPrimitives.Subtract(yr, MathF.Log(sum), yr);
                }
                else TensorPrimitives.Multiply(yr, 1f / sum, yr);
            }
        }
    }

    public void SoftmaxBackward(float* y, float* dy, float* dx, int rows, int cols, bool log) =>
        ParallelKernel.Range(rows, RowGrain(cols), 1, new SoftmaxBackwardRows(y, dy, dx, cols, log));

    private readonly struct SoftmaxBackwardRows(float* y, float* dy, float* dx, int cols, bool log) : IKernelRange
    {
        public void Execute<V>(long r0, long r1) where V : struct, IVec<V>
        {
            for (long r = r0; r < r1; r++)
            {
                var yr = new ReadOnlySpan<float>(y + r * cols, cols);
                var dyr = new ReadOnlySpan<float>(dy + r * cols, cols);
                var dxr = new Span<float>(dx + r * cols, cols);
                if (log)
                {
                    float sum = TensorPrimitives.Sum(dyr);
                    TensorPrimitives.Exp(yr, dxr);
                    TensorPrimitives.MultiplyAdd(dxr, -sum, dyr, dxr);
                }
                else
                {
                    float dot = TensorPrimitives.Dot(yr, dyr);
                    TensorPrimitives.Subtract(dyr, dot, dxr);
                    TensorPrimitives.Multiply(dxr, yr, dxr);
                }
            }
        }
    }

    public void CrossEntropy(float* logits, int* targets, float* loss, int rows, int classes, int ignoreIndex, float smoothing)
    {
        for (int r = 0; r < rows; r++)
            if (targets[r] != ignoreIndex) ReferenceBackend.CheckTarget(targets[r], r, classes);
        ParallelKernel.Range(rows, RowGrain(classes), 1, new CrossEntropyRows(logits, targets, loss, classes, ignoreIndex, smoothing));
    }

    private readonly struct CrossEntropyRows(float* logits, int* targets, float* loss, int classes, int ignoreIndex, float smoothing) : IKernelRange
    {
        public void Execute<V>(long r0, long r1) where V : struct, IVec<V>
        {
            for (long r = r0; r < r1; r++)
            {
                int t = targets[r];
                if (t == ignoreIndex) { loss[r] = 0; continue; }
                var z = new ReadOnlySpan<float>(logits + r * classes, classes);
                float max = TensorPrimitives.Max(z);
                float logSumExp = max + MathF.Log(SumExp(logits + r * classes, classes, max));
                float nll = logSumExp - z[t];
                loss[r] = smoothing == 0 ? nll
                    : (1 - smoothing) * nll + smoothing * (logSumExp - TensorPrimitives.Sum(z) / classes);
            }
        }
    }

    public void CrossEntropyBackward(float* logits, int* targets, float* dloss, float* dlogits, int rows, int classes, int ignoreIndex, float smoothing)
    {
        for (int r = 0; r < rows; r++)
            if (targets[r] != ignoreIndex) ReferenceBackend.CheckTarget(targets[r], r, classes);
        ParallelKernel.Range(rows, RowGrain(classes), 1, new CrossEntropyBackwardRows(logits, targets, dloss, dlogits, classes, ignoreIndex, smoothing));
    }

    private readonly struct CrossEntropyBackwardRows(float* logits, int* targets, float* dloss, float* dlogits, int classes, int ignoreIndex, float smoothing)
        : IKernelRange
    {
        public void Execute<V>(long r0, long r1) where V : struct, IVec<V>
        {
            for (long r = r0; r < r1; r++)
            {
                var dz = new Span<float>(dlogits + r * classes, classes);
                int t = targets[r];
                if (t == ignoreIndex) { dz.Clear(); continue; }
                float* z = logits + r * classes;
                float max = TensorPrimitives.Max(new ReadOnlySpan<float>(z, classes));
                // dloss·(p - q) with q = ε/C everywhere plus (1-ε) at the target; the exponentials are stored and summed
                // in one pass (the same exp as the forward's SumExp), then scaled and shifted in a second.
                float scale = dloss[r] / ExpInto<V>(z, dlogits + r * classes, classes, max);
                ScaleShift<V>(dlogits + r * classes, classes, scale, -dloss[r] * smoothing / classes);
                dz[t] -= dloss[r] * (1 - smoothing);
            }
        }
    }

    /// <summary>Σ exp(z[i] - max), without storing the exponentials.</summary>
    internal static float SumExp(float* z, int n, float max)
    {
        if (CpuFeatures.UseAvx512) return SumExp<V512>(z, n, max);
        if (CpuFeatures.UseAvx2) return SumExp<V256>(z, n, max);
        return SumExp<V1>(z, n, max);
    }

    private static float SumExp<V>(float* z, int n, float max) where V : struct, IVec<V>
    {
        var m = V.Splat(max);
        V acc0 = V.Splat(0f), acc1 = V.Splat(0f);
        int i = 0;
        for (; i + 2 * V.Count <= n; i += 2 * V.Count)
        {
            acc0 += V.Exp(V.Load(z + i) - m);
            acc1 += V.Exp(V.Load(z + i + V.Count) - m);
        }
        for (; i + V.Count <= n; i += V.Count) acc0 += V.Exp(V.Load(z + i) - m);
        float sum = V.SumAcross(acc0 + acc1);
        for (; i < n; i++) sum += MathF.Exp(z[i] - max);
        return sum;
    }

    /// <summary>dst = exp(z - max); returns Σ dst.</summary>
    private static float ExpInto<V>(float* z, float* dst, int n, float max) where V : struct, IVec<V>
    {
        var m = V.Splat(max);
        V acc0 = V.Splat(0f), acc1 = V.Splat(0f);
        int i = 0;
        for (; i + 2 * V.Count <= n; i += 2 * V.Count)
        {
            var e0 = V.Exp(V.Load(z + i) - m);
            var e1 = V.Exp(V.Load(z + i + V.Count) - m);
            V.Store(dst + i, e0);
            V.Store(dst + i + V.Count, e1);
            acc0 += e0;
            acc1 += e1;
        }
        float sum = V.SumAcross(acc0 + acc1);
        for (; i < n; i++) sum += dst[i] = MathF.Exp(z[i] - max);
        return sum;
    }

    /// <summary>x = x·scale + shift.</summary>
    private static void ScaleShift<V>(float* x, int n, float scale, float shift) where V : struct, IVec<V>
    {
        var s = V.Splat(scale);
        var b = V.Splat(shift);
        int i = 0;
        for (; i + V.Count <= n; i += V.Count) V.Store(x + i, V.Fma(V.Load(x + i), s, b));
        for (; i < n; i++) x[i] = MathF.FusedMultiplyAdd(x[i], scale, shift);
    }

    // ---------------------------------------------------------------- layer norm

    public void LayerNorm(float* x, float* w, float* b, float* y, float* mean, float* rstd, int rows, int cols, float eps) =>
        ParallelKernel.Range(rows, RowGrain(cols), 1, new LayerNormRows(x, w, b, y, mean, rstd, cols, eps));

    private readonly struct LayerNormRows(float* x, float* w, float* b, float* y, float* mean, float* rstd, int cols, float eps) : IKernelRange
    {
        public void Execute<V>(long r0, long r1) where V : struct, IVec<V>
        {
            for (long r = r0; r < r1; r++)
            {
                var xr = new ReadOnlySpan<float>(x + r * cols, cols);
                var yr = new Span<float>(y + r * cols, cols);
                float m = TensorPrimitives.Sum(xr) / cols;
                TensorPrimitives.Subtract(xr, m, yr);
                float v = TensorPrimitives.SumOfSquares(yr) / cols;
                float s = 1f / MathF.Sqrt(v + eps);
                TensorPrimitives.Multiply(yr, s, yr);
                if (w != null) TensorPrimitives.Multiply(yr, new ReadOnlySpan<float>(w, cols), yr);
                if (b != null) TensorPrimitives.Add(yr, new ReadOnlySpan<float>(b, cols), yr);
                mean[r] = m;
                rstd[r] = s;
            }
        }
    }

    public void LayerNormBackward(float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db, int rows, int cols)
    {
        int chunks = Math.Clamp(rows * cols / ParallelGrain, 1, WorkerPool.Threads);
        // Each chunk of rows sums its own dw/db partials (scratch: n̂ row, g row, then 2 partial rows), in the calling
        // thread's scratch (the chunks only write their own part of it; no other kernel runs meanwhile).
        long chunkFloats = 4L * cols;
        float* scratch = ThreadScratch.Floats(chunks * chunkFloats);
        new Span<float>(scratch, (int)(chunks * chunkFloats)).Clear();
        ParallelKernel.Items(chunks, new LayerNormBackwardChunks(dy, x, w, mean, rstd, dx, dw, db, rows, cols, chunks, scratch));
        for (int c = 0; c < chunks; c++)
        {
            float* pdw = scratch + c * chunkFloats + 2 * cols, pdb = pdw + cols;
            if (dw != null) TensorPrimitives.Add(new ReadOnlySpan<float>(dw, cols), new ReadOnlySpan<float>(pdw, cols), new Span<float>(dw, cols));
            if (db != null) TensorPrimitives.Add(new ReadOnlySpan<float>(db, cols), new ReadOnlySpan<float>(pdb, cols), new Span<float>(db, cols));
        }
    }

    private readonly struct LayerNormBackwardChunks(float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db,
        int rows, int cols, int chunks, float* scratch) : IKernelItems
    {
        public void Execute<V>(int c) where V : struct, IVec<V>
        {
            float* nh = scratch + (long)c * 4 * cols, g = nh + cols, pdw = g + cols, pdb = pdw + cols;
            var nhs = new Span<float>(nh, cols);
            var gs = new Span<float>(g, cols);
            int r0 = (int)((long)rows * c / chunks), r1 = (int)((long)rows * (c + 1) / chunks);
            for (int r = r0; r < r1; r++)
            {
                var xr = new ReadOnlySpan<float>(x + (long)r * cols, cols);
                var dyr = new ReadOnlySpan<float>(dy + (long)r * cols, cols);
                var dxr = new Span<float>(dx + (long)r * cols, cols);
                float s = rstd[r];
                TensorPrimitives.Subtract(xr, mean[r], nhs);
                TensorPrimitives.Multiply(nhs, s, nhs);
                if (w != null) TensorPrimitives.Multiply(dyr, new ReadOnlySpan<float>(w, cols), gs);
                else dyr.CopyTo(gs);
                float gMean = TensorPrimitives.Sum(gs) / cols;
                float gnMean = TensorPrimitives.Dot(gs, nhs) / cols;
                // dx = rstd·(g - gMean - n̂·gnMean)
                TensorPrimitives.MultiplyAdd(nhs, -gnMean, gs, dxr);
                TensorPrimitives.Add(dxr, -gMean, dxr);
                TensorPrimitives.Multiply(dxr, s, dxr);
                if (dw != null) TensorPrimitives.MultiplyAdd(dyr, nhs, new ReadOnlySpan<float>(pdw, cols), new Span<float>(pdw, cols));
                if (db != null) TensorPrimitives.Add(dyr, new ReadOnlySpan<float>(pdb, cols), new Span<float>(pdb, cols));
            }
        }
    }

    // ---------------------------------------------------------------- embedding

    public void Embedding(float* table, int* idx, float* y, int n, int dim, int rows)
    {
        for (int i = 0; i < n; i++)
            if ((uint)idx[i] >= (uint)rows)
                throw new ArgumentOutOfRangeException("index", $"Index {idx[i]} at position {i} is outside the table's {rows} rows.");
        ParallelKernel.Range(n, RowGrain(dim), 1, new EmbeddingRows(table, idx, y, dim));
    }

    private readonly struct EmbeddingRows(float* table, int* idx, float* y, int dim) : IKernelRange
    {
        public void Execute<V>(long i0, long i1) where V : struct, IVec<V>
        {
            for (long i = i0; i < i1; i++) Buffer.MemoryCopy(table + (long)idx[i] * dim, y + i * dim, dim * 4L, dim * 4L);
        }
    }

    // Repeated indices add into the same row, so split the columns, not the rows, between threads.
    public void EmbeddingBackward(float* dy, int* idx, float* dtable, int n, int dim) =>
        ParallelKernel.Range(dim, Math.Max(16, ParallelGrain / Math.Max(n, 1)), 1, new EmbeddingBackwardColumns(dy, idx, dtable, n, dim));

    private readonly struct EmbeddingBackwardColumns(float* dy, int* idx, float* dtable, int n, int dim) : IKernelRange
    {
        public void Execute<V>(long d0, long d1) where V : struct, IVec<V>
        {
            int width = (int)(d1 - d0);
            for (int i = 0; i < n; i++)
            {
                var row = new Span<float>(dtable + (long)idx[i] * dim + d0, width);
                TensorPrimitives.Add(row, new ReadOnlySpan<float>(dy + (long)i * dim + d0, width), row);
            }
        }
    }

    // ---------------------------------------------------------------- optimizer

    public void AdamW(float* p, float* g, float* m, float* v, long n, float lr, float beta1, float beta2, float eps, float weightDecay, int step) =>
        ParallelKernel.Range(n, ParallelGrain, 4, new AdamWRange(p, g, m, v, lr, beta1, beta2, eps, weightDecay,
            1f - MathF.Pow(beta1, step), 1f - MathF.Pow(beta2, step)));

    private readonly struct AdamWRange(float* p, float* g, float* m, float* v, float lr, float beta1, float beta2, float eps, float wd,
        float bc1, float bc2) : IKernelRange
    {
        public void Execute<V>(long i, long n) where V : struct, IVec<V>
        {
            for (; i + V.Count <= n; i += V.Count) Lane<V>(i);
            for (; i < n; i++) Lane<V1>(i);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Lane<V>(long i) where V : struct, IVec<V>
        {
            var gv = V.Load(g + i);
            var mv = V.Fma(V.Splat(beta1), V.Load(m + i), V.Splat(1 - beta1) * gv);
            var vv = V.Fma(V.Splat(beta2), V.Load(v + i), V.Splat(1 - beta2) * gv * gv);
            V.Store(m + i, mv);
            V.Store(v + i, vv);
            var pv = V.Load(p + i);
            var update = mv / (V.Splat(bc1) * (V.Sqrt(vv / V.Splat(bc2)) + V.Splat(eps)));
            V.Store(p + i, pv - V.Splat(lr) * V.Fma(V.Splat(wd), pv, update));
        }
    }
}
