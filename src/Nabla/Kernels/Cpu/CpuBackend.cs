using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Nabla.Kernels.Reference;

namespace Nabla.Kernels.Cpu;

/// <summary>
/// The optimised CPU kernels: vectorised (AVX-512, AVX2 or scalar, see <see cref="CpuFeatures"/>) and spread
/// over <see cref="WorkerPool"/> where the work is large enough to pay for it. Each method computes exactly
/// what the same method of <see cref="ReferenceBackend"/> computes; the tests hold them to it.
/// </summary>
public sealed unsafe partial class CpuBackend : IKernelBackend
{
    public static readonly CpuBackend Instance = new();
    public string Name => "cpu";

    /// <summary>Element-wise work below this many elements runs on one thread.</summary>
    internal const int ParallelGrain = 1 << 15;

    public void Fill(float* y, float value, long n)
    {
        Parallel(n, (s, e) => new Span<float>(y + s, (int)(e - s)).Fill(value));
    }

    /// <summary>Splits [0, n) into chunks of at least <see cref="ParallelGrain"/> elements over the worker pool.</summary>
    private static void Parallel(long n, Action<long, long> body)
    {
        if (n <= ParallelGrain) { if (n > 0) body(0, n); return; }
        int chunks = (int)Math.Min(WorkerPool.Threads * 4L, (n + ParallelGrain - 1) / ParallelGrain);
        WorkerPool.For(chunks, 1, (c0, c1) => body(n * c0 / chunks, n * c1 / chunks));
    }

    // ---------------------------------------------------------------- copies

    public void Copy(float* src, ReadOnlySpan<int> srcStrides, float* dst, ReadOnlySpan<int> dstStrides, ReadOnlySpan<int> shape, bool accumulate)
    {
        var g = StridedLoop.Coalesce(shape, srcStrides, dstStrides);
        long count = g.Count;
        if (count == 0) return;
        int inner = g.InnerSize, ss = g.InnerStrideA, ds = g.InnerStrideB;
        long rows = count / inner;
        var geometry = g;
        void Rows(long r0, long r1)
        {
            var it = geometry.Iterator(r0);
            for (long r = r0; r < r1; r++, it.Next())
            {
                float* s = src + it.OffsetA, d = dst + it.OffsetB;
                if (accumulate)
                {
                    if (ss == 1 && ds == 1) TensorPrimitives.Add(new ReadOnlySpan<float>(d, inner), new ReadOnlySpan<float>(s, inner), new Span<float>(d, inner));
                    else for (int i = 0; i < inner; i++) d[(long)i * ds] += s[(long)i * ss];
                }
                else if (ss == 1 && ds == 1) Buffer.MemoryCopy(s, d, inner * 4L, inner * 4L);
                else for (int i = 0; i < inner; i++) d[(long)i * ds] = s[(long)i * ss];
            }
        }
        // Accumulating copies may overlap in the destination (unfold backward): keep them on one thread.
        if (accumulate || count <= ParallelGrain) Rows(0, rows);
        else
        {
            int chunks = (int)Math.Min(WorkerPool.Threads * 4L, rows);
            WorkerPool.For(chunks, 1, (c0, c1) => Rows(rows * c0 / chunks, rows * c1 / chunks));
        }
    }

    // ---------------------------------------------------------------- unary

    public void Unary(UnaryOp op, float alpha, float* x, float* y, long n)
    {
        switch (op)
        {
            // TensorPrimitives already vectorises these well (and Tanh/Pow accurately near the hard spots).
            case UnaryOp.Exp: Parallel(n, (s, e) => TensorPrimitives.Exp(Span(x, s, e), Out(y, s, e))); break;
            case UnaryOp.Log: Parallel(n, (s, e) => TensorPrimitives.Log(Span(x, s, e), Out(y, s, e))); break;
            case UnaryOp.Tanh: Parallel(n, (s, e) => TensorPrimitives.Tanh(Span(x, s, e), Out(y, s, e))); break;
            case UnaryOp.PowScalar: Parallel(n, (s, e) => TensorPrimitives.Pow(Span(x, s, e), alpha, Out(y, s, e))); break;
            case UnaryOp.Neg: Map<NegFn>(x, y, n, alpha); break;
            case UnaryOp.Sqrt: Map<SqrtFn>(x, y, n, alpha); break;
            case UnaryOp.Abs: Map<AbsFn>(x, y, n, alpha); break;
            case UnaryOp.Scale: Map<ScaleFn>(x, y, n, alpha); break;
            case UnaryOp.Shift: Map<ShiftFn>(x, y, n, alpha); break;
            case UnaryOp.Relu: Map<ReluFn>(x, y, n, alpha); break;
            case UnaryOp.LeakyRelu: Map<LeakyReluFn>(x, y, n, alpha); break;
            case UnaryOp.Sigmoid: Map<SigmoidFn>(x, y, n, alpha); break;
            case UnaryOp.GeluExact: Map<GeluExactFn>(x, y, n, alpha); break;
            case UnaryOp.GeluTanh: Map<GeluTanhFn>(x, y, n, alpha); break;
            case UnaryOp.Silu: Map<SiluFn>(x, y, n, alpha); break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    public void UnaryBackward(UnaryOp op, float alpha, float* x, float* y, float* dy, float* dx, long n)
    {
        switch (op)
        {
            case UnaryOp.Neg: MapBackward<NegFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.Exp: MapBackward<ExpFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.Log: MapBackward<LogFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.Sqrt: MapBackward<SqrtFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.Abs: MapBackward<AbsFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.Scale: MapBackward<ScaleFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.Shift: MapBackward<ShiftFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.PowScalar: MapBackward<PowScalarFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.Relu: MapBackward<ReluFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.LeakyRelu: MapBackward<LeakyReluFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.Sigmoid: MapBackward<SigmoidFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.Tanh: MapBackward<TanhFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.GeluExact: MapBackward<GeluExactFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.GeluTanh: MapBackward<GeluTanhFn>(x, y, dy, dx, n, alpha); break;
            case UnaryOp.Silu: MapBackward<SiluFn>(x, y, dy, dx, n, alpha); break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    private static ReadOnlySpan<float> Span(float* p, long s, long e) => new(p + s, (int)(e - s));
    private static Span<float> Out(float* p, long s, long e) => new(p + s, (int)(e - s));

    private static void Map<F>(float* x, float* y, long n, float alpha) where F : IUnaryFunction
    {
        if (CpuFeatures.UseAvx512) Parallel(n, (s, e) => MapRange<F, V512>(x, y, s, e, alpha));
        else if (CpuFeatures.UseAvx2) Parallel(n, (s, e) => MapRange<F, V256>(x, y, s, e, alpha));
        else Parallel(n, (s, e) => MapRange<F, V1>(x, y, s, e, alpha));
    }

    private static void MapRange<F, V>(float* x, float* y, long i, long n, float alpha) where F : IUnaryFunction where V : struct, IVec<V>
    {
        var a = V.Splat(alpha);
        for (; i + V.Count <= n; i += V.Count) V.Store(y + i, F.Forward(V.Load(x + i), a));
        var a1 = V1.Splat(alpha);
        for (; i < n; i++) V1.Store(y + i, F.Forward(V1.Load(x + i), a1));
    }

    private static void MapBackward<F>(float* x, float* y, float* dy, float* dx, long n, float alpha) where F : IUnaryFunction
    {
        if (CpuFeatures.UseAvx512) Parallel(n, (s, e) => MapBackwardRange<F, V512>(x, y, dy, dx, s, e, alpha));
        else if (CpuFeatures.UseAvx2) Parallel(n, (s, e) => MapBackwardRange<F, V256>(x, y, dy, dx, s, e, alpha));
        else Parallel(n, (s, e) => MapBackwardRange<F, V1>(x, y, dy, dx, s, e, alpha));
    }

    private static void MapBackwardRange<F, V>(float* x, float* y, float* dy, float* dx, long i, long n, float alpha)
        where F : IUnaryFunction where V : struct, IVec<V>
    {
        // y is only read by derivatives that use it; callers pass null for the others, so read a zero instead.
        var a = V.Splat(alpha);
        var zero = V.Splat(0f);
        for (; i + V.Count <= n; i += V.Count)
            V.Store(dx + i, F.Backward(V.Load(x + i), y == null ? zero : V.Load(y + i), V.Load(dy + i), a));
        var a1 = V1.Splat(alpha);
        for (; i < n; i++)
            V1.Store(dx + i, F.Backward(V1.Load(x + i), y == null ? V1.Splat(0f) : V1.Load(y + i), V1.Load(dy + i), a1));
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
        var g = StridedLoop.Coalesce(shape, aStrides, bStrides);
        if (g.Count == 0) return;
        int inner = g.InnerSize;
        long rows = g.Count / inner;
        void Rows(long r0, long r1)
        {
            var it = g.Iterator(r0);
            for (long r = r0; r < r1; r++, it.Next())
                BinaryRow<F>(a + it.OffsetA, g.InnerStrideA, b + it.OffsetB, g.InnerStrideB, y + r * inner, inner);
        }
        if (g.Count <= ParallelGrain || rows == 1) Rows(0, rows);
        else
        {
            int chunks = (int)Math.Min(WorkerPool.Threads * 4L, rows);
            WorkerPool.For(chunks, 1, (c0, c1) => Rows(rows * c0 / chunks, rows * c1 / chunks));
        }
    }

    private static void BinaryRow<F>(float* a, int sa, float* b, int sb, float* y, int n) where F : IBinaryFunction
    {
        if (CpuFeatures.UseAvx512) BinaryRow<F, V512>(a, sa, b, sb, y, n);
        else if (CpuFeatures.UseAvx2) BinaryRow<F, V256>(a, sa, b, sb, y, n);
        else BinaryRow<F, V1>(a, sa, b, sb, y, n);
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
                float* pp = partial;
                WorkerPool.For(chunks, 1, (c0, c1) =>
                {
                    for (int c = c0; c < c1; c++)
                    {
                        long s = (long)r * c / chunks, e = (long)r * (c + 1) / chunks;
                        pp[c] = TensorPrimitives.Sum(new ReadOnlySpan<float>(x + s, (int)(e - s)));
                    }
                });
                float total = 0;
                for (int c = 0; c < chunks; c++) total += partial[c];
                *y = total;
                return;
            }
            WorkerPool.For(outer, Math.Max(1, ParallelGrain / Math.Max(r, 1)), (o0, o1) =>
            {
                for (int o = o0; o < o1; o++) y[o] = TensorPrimitives.Sum(new ReadOnlySpan<float>(x + (long)o * r, r));
            });
            return;
        }
        // Sum of rows: y[o, :] = Σ_k x[o, k, :]. Split over outer, or over columns when outer is small.
        if (outer >= WorkerPool.Threads || (long)r * inner < ParallelGrain)
        {
            WorkerPool.For(outer, Math.Max(1, ParallelGrain / Math.Max(r * inner, 1)), (o0, o1) =>
            {
                for (int o = o0; o < o1; o++) SumRows(x + (long)o * r * inner, inner, y + (long)o * inner, r, 0, inner);
            });
        }
        else
        {
            for (int o = 0; o < outer; o++)
            {
                float* xo = x + (long)o * r * inner, yo = y + (long)o * inner;
                WorkerPool.For(inner, 64, (c0, c1) => SumRows(xo, inner, yo, r, c0, c1));
            }
        }
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

    public void Max(float* x, float* y, int* argmax, int outer, int r, int inner)
    {
        WorkerPool.For(outer, Math.Max(1, ParallelGrain / Math.Max(r * inner, 1)), (o0, o1) =>
        {
            for (int o = o0; o < o1; o++)
            {
                float* xo = x + (long)o * r * inner;
                if (inner == 1)
                {
                    var row = new ReadOnlySpan<float>(xo, r);
                    float m = TensorPrimitives.Max(row);
                    y[o] = m;
                    if (argmax != null)
                    {
                        int at = float.IsNaN(m) ? IndexOfNaN(row) : row.IndexOf(m);
                        argmax[o] = at;
                    }
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
                    y[(long)o * inner + i] = best;
                    if (argmax != null) argmax[(long)o * inner + i] = at;
                }
            }
        });
    }

    private static int IndexOfNaN(ReadOnlySpan<float> row)
    {
        for (int i = 0; i < row.Length; i++) if (float.IsNaN(row[i])) return i;
        return 0;
    }

    // ---------------------------------------------------------------- softmax and cross-entropy

    public void Softmax(float* x, float* y, int rows, int cols, bool log)
    {
        WorkerPool.For(rows, Math.Max(1, ParallelGrain / Math.Max(cols, 1)), (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var xr = new ReadOnlySpan<float>(x + (long)r * cols, cols);
                var yr = new Span<float>(y + (long)r * cols, cols);
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
        });
    }

    public void SoftmaxBackward(float* y, float* dy, float* dx, int rows, int cols, bool log)
    {
        WorkerPool.For(rows, Math.Max(1, ParallelGrain / Math.Max(cols, 1)), (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var yr = new ReadOnlySpan<float>(y + (long)r * cols, cols);
                var dyr = new ReadOnlySpan<float>(dy + (long)r * cols, cols);
                var dxr = new Span<float>(dx + (long)r * cols, cols);
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
        });
    }

    public void CrossEntropy(float* logits, int* targets, float* loss, int rows, int classes, int ignoreIndex, float smoothing)
    {
        for (int r = 0; r < rows; r++)
            if (targets[r] != ignoreIndex) ReferenceBackend.CheckTarget(targets[r], r, classes);
        WorkerPool.For(rows, Math.Max(1, ParallelGrain / Math.Max(classes, 1)), (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                int t = targets[r];
                if (t == ignoreIndex) { loss[r] = 0; continue; }
                var z = new ReadOnlySpan<float>(logits + (long)r * classes, classes);
                float max = TensorPrimitives.Max(z);
                float logSumExp = max + MathF.Log(SumExp(logits + (long)r * classes, classes, max));
                float nll = logSumExp - z[t];
                loss[r] = smoothing == 0 ? nll
                    : (1 - smoothing) * nll + smoothing * (logSumExp - TensorPrimitives.Sum(z) / classes);
            }
        });
    }

    public void CrossEntropyBackward(float* logits, int* targets, float* dloss, float* dlogits, int rows, int classes, int ignoreIndex, float smoothing)
    {
        for (int r = 0; r < rows; r++)
            if (targets[r] != ignoreIndex) ReferenceBackend.CheckTarget(targets[r], r, classes);
        WorkerPool.For(rows, Math.Max(1, ParallelGrain / Math.Max(classes, 1)), (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var dz = new Span<float>(dlogits + (long)r * classes, classes);
                int t = targets[r];
                if (t == ignoreIndex) { dz.Clear(); continue; }
                var z = new ReadOnlySpan<float>(logits + (long)r * classes, classes);
                float max = TensorPrimitives.Max(z);
                TensorPrimitives.Subtract(z, max, dz);
                TensorPrimitives.Exp(dz, dz);
                float scale = dloss[r] / TensorPrimitives.Sum(dz);
                // dloss·(p - q) with q = ε/C everywhere plus (1-ε) at the target
                TensorPrimitives.Multiply(dz, scale, dz);
                if (smoothing != 0) TensorPrimitives.Add(dz, -dloss[r] * smoothing / classes, dz);
                dz[t] -= dloss[r] * (1 - smoothing);
            }
        });
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

    // ---------------------------------------------------------------- layer norm

    public void LayerNorm(float* x, float* w, float* b, float* y, float* mean, float* rstd, int rows, int cols, float eps)
    {
        WorkerPool.For(rows, Math.Max(1, ParallelGrain / Math.Max(cols, 1)), (r0, r1) =>
        {
            for (int r = r0; r < r1; r++)
            {
                var xr = new ReadOnlySpan<float>(x + (long)r * cols, cols);
                var yr = new Span<float>(y + (long)r * cols, cols);
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
        });
    }

    public void LayerNormBackward(float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db, int rows, int cols)
    {
        int chunks = Math.Clamp(rows * cols / ParallelGrain, 1, WorkerPool.Threads);
        // Each chunk of rows sums its own dw/db partials (scratch: n̂ row, g row, then 2 partial rows).
        var pool = ArrayPool<float>.Shared;
        var scratch = pool.Rent(chunks * 4 * cols);
        try
        {
            fixed (float* sp = scratch)
            {
                float* scratchPtr = sp;
                new Span<float>(sp, chunks * 4 * cols).Clear();
                WorkerPool.For(chunks, 1, (c0, c1) =>
                {
                    for (int c = c0; c < c1; c++)
                    {
                        float* nh = scratchPtr + (long)c * 4 * cols, g = nh + cols, pdw = g + cols, pdb = pdw + cols;
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
                });
                for (int c = 0; c < chunks; c++)
                {
                    float* pdw = scratchPtr + (long)c * 4 * cols + 2 * cols, pdb = pdw + cols;
                    if (dw != null) TensorPrimitives.Add(new ReadOnlySpan<float>(dw, cols), new ReadOnlySpan<float>(pdw, cols), new Span<float>(dw, cols));
                    if (db != null) TensorPrimitives.Add(new ReadOnlySpan<float>(db, cols), new ReadOnlySpan<float>(pdb, cols), new Span<float>(db, cols));
                }
            }
        }
        finally { pool.Return(scratch); }
    }

    // ---------------------------------------------------------------- embedding

    public void Embedding(float* table, int* idx, float* y, int n, int dim, int rows)
    {
        for (int i = 0; i < n; i++)
            if ((uint)idx[i] >= (uint)rows)
                throw new ArgumentOutOfRangeException("index", $"Index {idx[i]} at position {i} is outside the table's {rows} rows.");
        WorkerPool.For(n, Math.Max(1, ParallelGrain / Math.Max(dim, 1)), (i0, i1) =>
        {
            for (int i = i0; i < i1; i++)
                Buffer.MemoryCopy(table + (long)idx[i] * dim, y + (long)i * dim, dim * 4L, dim * 4L);
        });
    }

    public void EmbeddingBackward(float* dy, int* idx, float* dtable, int n, int dim)
    {
        // Repeated indices add into the same row, so split the columns, not the rows, between threads.
        WorkerPool.For(dim, Math.Max(16, ParallelGrain / Math.Max(n, 1)), (d0, d1) =>
        {
            for (int i = 0; i < n; i++)
            {
                var row = new Span<float>(dtable + (long)idx[i] * dim + d0, d1 - d0);
                TensorPrimitives.Add(row, new ReadOnlySpan<float>(dy + (long)i * dim + d0, d1 - d0), row);
            }
        });
    }

    // ---------------------------------------------------------------- optimizer

    public void AdamW(float* p, float* g, float* m, float* v, long n, float lr, float beta1, float beta2, float eps, float weightDecay, int step)
    {
        float bc1 = 1f - MathF.Pow(beta1, step), bc2 = 1f - MathF.Pow(beta2, step);
        if (CpuFeatures.UseAvx512) Parallel(n, (s, e) => AdamWRange<V512>(p, g, m, v, s, e, lr, beta1, beta2, eps, weightDecay, bc1, bc2));
        else if (CpuFeatures.UseAvx2) Parallel(n, (s, e) => AdamWRange<V256>(p, g, m, v, s, e, lr, beta1, beta2, eps, weightDecay, bc1, bc2));
        else Parallel(n, (s, e) => AdamWRange<V1>(p, g, m, v, s, e, lr, beta1, beta2, eps, weightDecay, bc1, bc2));
    }

    private static void AdamWRange<V>(float* p, float* g, float* m, float* v, long i, long n,
        float lr, float beta1, float beta2, float eps, float wd, float bc1, float bc2) where V : struct, IVec<V>
    {
        for (; i + V.Count <= n; i += V.Count) AdamWLane<V>(p + i, g + i, m + i, v + i, lr, beta1, beta2, eps, wd, bc1, bc2);
        for (; i < n; i++) AdamWLane<V1>(p + i, g + i, m + i, v + i, lr, beta1, beta2, eps, wd, bc1, bc2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AdamWLane<V>(float* p, float* g, float* m, float* v,
        float lr, float beta1, float beta2, float eps, float wd, float bc1, float bc2) where V : struct, IVec<V>
    {
        var gv = V.Load(g);
        var mv = V.Fma(V.Splat(beta1), V.Load(m), V.Splat(1 - beta1) * gv);
        var vv = V.Fma(V.Splat(beta2), V.Load(v), V.Splat(1 - beta2) * gv * gv);
        V.Store(m, mv);
        V.Store(v, vv);
        var pv = V.Load(p);
        var update = mv / (V.Splat(bc1) * (V.Sqrt(vv / V.Splat(bc2)) + V.Splat(eps)));
        V.Store(p, pv - V.Splat(lr) * V.Fma(V.Splat(wd), pv, update));
    }
}
