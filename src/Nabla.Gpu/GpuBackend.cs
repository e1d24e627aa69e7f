using System.Collections.Concurrent;
using ILGPU;
using ILGPU.Runtime;
using Nabla.Gpu.Kernels;
using Nabla.Kernels;
using K = Nabla.Gpu.Kernels;

namespace Nabla.Gpu;

public enum GemmVersion { V1Naive = 1, V2SharedTiles, V3RegisterBlocking, V4WideTiles }
public enum AttentionVersion { V1Materialized = 1, V2Flash }
public enum RowKernelVersion { V1RowPerThread = 1, V2BlockPerRow }
public enum UnaryKernelVersion { V1Spec = 1, V2Float }

/// <summary>
/// The kernel interface on an ILGPU accelerator. Pointer arguments are device addresses of <see cref="GpuRuntime"/>
/// buffers, turned into ILGPU views by address lookup; kernels are launched on the accelerator's default stream
/// (asynchronous on CUDA; <see cref="GpuRuntime.Synchronize"/> or a copy to the host waits). Each kernel family
/// lives in Kernels/ in numbered versions; the properties below choose one (the best by default; tests and the
/// benchmark select each in turn). Kernels are compiled once per runtime, on first use.
/// </summary>
public sealed unsafe partial class GpuBackend : IKernelBackend, IDisposable
{
    private readonly GpuRuntime _runtime;
    private readonly ConcurrentDictionary<System.Reflection.MethodInfo, Delegate> _loaded = new();
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _placeholder;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _error;
    private readonly object _errorGate = new();

    public string Name => $"ilgpu ({_runtime.Name})";
    public GemmVersion GemmKernel { get; set; } = GemmVersion.V4WideTiles;
    public AttentionVersion AttentionKernel { get; set; } = AttentionVersion.V2Flash;
    public RowKernelVersion SoftmaxKernel { get; set; } = RowKernelVersion.V2BlockPerRow;
    public RowKernelVersion LayerNormKernel { get; set; } = RowKernelVersion.V2BlockPerRow;
    public UnaryKernelVersion UnaryKernel { get; set; } = UnaryKernelVersion.V2Float;

    internal GpuBackend(GpuRuntime runtime)
    {
        _runtime = runtime;
        _placeholder = runtime.Accelerator.Allocate1D<float>(1);
        _error = runtime.Accelerator.Allocate1D<int>(1);
    }

    private Accelerator Accelerator => _runtime.Accelerator;

    // ---------------------------------------------------------------- pointers → views, kernel loading

    private ArrayView<float> F(float* p) => p == null ? _placeholder.View : _runtime.View<float>((nint)p);
    private ArrayView<int> I(int* p) => p == null ? ((ArrayView<float>)_placeholder.View).Cast<int>() : _runtime.View<int>((nint)p);

    private static Index1D Count(long n, string op) =>
        n <= int.MaxValue ? new Index1D((int)n) : throw new NotSupportedException($"{op} on the GPU: {n} elements exceed one launch's {int.MaxValue}.");

    private TDelegate Load<TDelegate>(Delegate kernel, Func<TDelegate> load) where TDelegate : Delegate =>
        (TDelegate)_loaded.GetOrAdd(kernel.Method, _ => load());

    // One thread per index, group size chosen by ILGPU.
    private Action<Index1D, T1, T2> Auto<T1, T2>(Action<Index1D, T1, T2> k)
        where T1 : struct where T2 : struct => Load(k, () => Accelerator.LoadAutoGroupedStreamKernel(k));
    private Action<Index1D, T1, T2, T3> Auto<T1, T2, T3>(Action<Index1D, T1, T2, T3> k)
        where T1 : struct where T2 : struct where T3 : struct => Load(k, () => Accelerator.LoadAutoGroupedStreamKernel(k));
    private Action<Index1D, T1, T2, T3, T4> Auto<T1, T2, T3, T4>(Action<Index1D, T1, T2, T3, T4> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct => Load(k, () => Accelerator.LoadAutoGroupedStreamKernel(k));
    private Action<Index1D, T1, T2, T3, T4, T5> Auto<T1, T2, T3, T4, T5>(Action<Index1D, T1, T2, T3, T4, T5> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct =>
        Load(k, () => Accelerator.LoadAutoGroupedStreamKernel(k));
    private Action<Index1D, T1, T2, T3, T4, T5, T6> Auto<T1, T2, T3, T4, T5, T6>(Action<Index1D, T1, T2, T3, T4, T5, T6> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct =>
        Load(k, () => Accelerator.LoadAutoGroupedStreamKernel(k));
    private Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8> Auto<T1, T2, T3, T4, T5, T6, T7, T8>(Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct =>
        Load(k, () => Accelerator.LoadAutoGroupedStreamKernel(k));
    private Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12> Auto<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12>(
        Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct
        where T7 : struct where T8 : struct where T9 : struct where T10 : struct where T11 : struct where T12 : struct =>
        Load(k, () => Accelerator.LoadAutoGroupedStreamKernel(k));
    private Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> Auto<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10>(
        Action<Index1D, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct
        where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct =>
        Load(k, () => Accelerator.LoadAutoGroupedStreamKernel(k));

    // Explicit grid and group sizes (kernels that use shared memory and barriers).
    private Action<KernelConfig, T1, T2, T3, T4> Grouped<T1, T2, T3, T4>(Action<T1, T2, T3, T4> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct => Load(k, () => Accelerator.LoadStreamKernel(k));
    private Action<KernelConfig, T1, T2, T3, T4, T5> Grouped<T1, T2, T3, T4, T5>(Action<T1, T2, T3, T4, T5> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct => Load(k, () => Accelerator.LoadStreamKernel(k));
    private Action<KernelConfig, T1, T2, T3, T4, T5, T6> Grouped<T1, T2, T3, T4, T5, T6>(Action<T1, T2, T3, T4, T5, T6> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct =>
        Load(k, () => Accelerator.LoadStreamKernel(k));
    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7> Grouped<T1, T2, T3, T4, T5, T6, T7>(Action<T1, T2, T3, T4, T5, T6, T7> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct =>
        Load(k, () => Accelerator.LoadStreamKernel(k));
    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8> Grouped<T1, T2, T3, T4, T5, T6, T7, T8>(Action<T1, T2, T3, T4, T5, T6, T7, T8> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct =>
        Load(k, () => Accelerator.LoadStreamKernel(k));
    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9> Grouped<T1, T2, T3, T4, T5, T6, T7, T8, T9>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct
        where T8 : struct where T9 : struct => Load(k, () => Accelerator.LoadStreamKernel(k));
    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> Grouped<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10>(
        Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct
        where T8 : struct where T9 : struct where T10 : struct => Load(k, () => Accelerator.LoadStreamKernel(k));
    private Action<KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12> Grouped<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12>(
        Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12> k)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct
        where T8 : struct where T9 : struct where T10 : struct where T11 : struct where T12 : struct => Load(k, () => Accelerator.LoadStreamKernel(k));

    /// <summary>One group per row: 256 threads on a GPU; 32 on the CPU accelerator (see <see cref="Block"/>).</summary>
    private KernelConfig Rows(int rows) => new(new Index1D(rows), new Index1D(_runtime.IsCuda ? Block.MaxSize : 32));

    /// <summary>Kernels that validate indices record the first bad position + 1 in a one-int device flag; the host
    /// reads it back after the launch (one small synchronous copy) and reports the position like the CPU backends.</summary>
    private void ResetError() => _error.View.CopyFromCPU([int.MaxValue]);

    private int ReadError()
    {
        var flag = new int[1];
        _error.View.CopyToCPU(flag);
        return flag[0] == int.MaxValue ? -1 : flag[0] - 1;
    }

    private int ReadInt(int* p, int index)
    {
        int value;
        _runtime.CopyToHost((nint)(p + index), &value, sizeof(int));
        return value;
    }

    // ---------------------------------------------------------------- element-wise

    public void Fill(float* y, float value, long n)
    {
        if (n == 0) return;
        Auto<ArrayView<float>, float>(Elementwise.Fill)(Count(n, nameof(Fill)), F(y), value);
    }

    public void AddInt(int* x, int value, long n)
    {
        if (n == 0) return;
        Auto<ArrayView<int>, int>(Elementwise.AddInt)(Count(n, nameof(AddInt)), I(x), value);
    }

    public void Copy(float* src, ReadOnlySpan<int> srcStrides, float* dst, ReadOnlySpan<int> dstStrides, ReadOnlySpan<int> shape, bool accumulate)
    {
        long n = ShapeMath.Count(shape);
        if (n == 0) return;
        var layout = StridedLayout.Create(nameof(Copy), shape, srcStrides, dstStrides);
        Auto<ArrayView<float>, ArrayView<float>, StridedLayout, int>(Elementwise.Copy)(Count(n, nameof(Copy)), F(src), F(dst), layout, accumulate ? 1 : 0);
    }

    public void Unary<TFunction>(float alpha, float* x, float* y, long n) where TFunction : struct, IUnaryFunction
    {
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, float>(UnaryKernel == UnaryKernelVersion.V1Spec ? Elementwise.UnaryV1Spec<TFunction> : Elementwise.UnaryV2Float<TFunction>)(
            Count(n, TFunction.Name), F(x), F(y), alpha);
    }

    public void UnaryBackward<TFunction>(float alpha, float* x, float* y, float* dy, float* dx, long n) where TFunction : struct, IUnaryFunction
    {
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, float, int>(
            UnaryKernel == UnaryKernelVersion.V1Spec ? Elementwise.UnaryBackwardV1Spec<TFunction> : Elementwise.UnaryBackwardV2Float<TFunction>)(
            Count(n, TFunction.Name + "Backward"), F(x), F(y), F(dy), F(dx), alpha, y == null ? 0 : 1);
    }

    public void Binary(BinaryOp op, float* a, ReadOnlySpan<int> aStrides, float* b, ReadOnlySpan<int> bStrides, float* y, ReadOnlySpan<int> shape)
    {
        if (!Enum.IsDefined(op)) throw new ArgumentOutOfRangeException(nameof(op), $"Binary: unknown op {op}.");
        long n = ShapeMath.Count(shape);
        if (n == 0) return;
        var layout = StridedLayout.Create($"Binary {op}", shape, aStrides, bStrides);
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, StridedLayout, int>(Elementwise.Binary)(
            Count(n, nameof(Binary)), F(a), F(b), F(y), layout, (int)op);
    }

    public void AdamW(float* p, float* g, float* m, float* v, long n, float lr, float beta1, float beta2, float eps, float weightDecay, int step)
    {
        if (n == 0) return;
        var args = new AdamWArgs
        {
            Lr = lr, Beta1 = beta1, Beta2 = beta2, Eps = eps, WeightDecay = weightDecay,
            Correction1 = (float)(1 - Math.Pow(beta1, step)), Correction2 = (float)(1 - Math.Pow(beta2, step)),
        };
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWArgs>(Elementwise.AdamW)(
            Count(n, nameof(AdamW)), F(p), F(g), F(m), F(v), args);
    }

    // ---------------------------------------------------------------- reductions and row kernels

    public void Sum(float* x, float* y, int outer, int r, int inner)
    {
        long n = (long)outer * inner;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, int, int>(K.Reduction.Sum)(Count(n, nameof(Sum)), F(x), F(y), r, inner);
    }

    public void Max(float* x, float* y, int* argmax, int outer, int r, int inner)
    {
        long n = (long)outer * inner;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int, int>(K.Reduction.Max)(
            Count(n, nameof(Max)), F(x), F(y), I(argmax), r, inner, argmax == null ? 0 : 1);
    }

    public void Softmax(float* x, float* y, int rows, int cols, bool log)
    {
        if (rows == 0 || cols == 0) return;
        if (SoftmaxKernel == RowKernelVersion.V1RowPerThread)
            Auto<ArrayView<float>, ArrayView<float>, int, int>(K.Softmax.V1RowPerThread)(rows, F(x), F(y), cols, log ? 1 : 0);
        else
            Grouped<ArrayView<float>, ArrayView<float>, int, int>(K.Softmax.V2BlockPerRow)(Rows(rows), F(x), F(y), cols, log ? 1 : 0);
    }

    public void SoftmaxBackward(float* y, float* dy, float* dx, int rows, int cols, bool log)
    {
        if (rows == 0 || cols == 0) return;
        Grouped<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(K.Softmax.Backward)(Rows(rows), F(y), F(dy), F(dx), cols, log ? 1 : 0);
    }

    public void CrossEntropy(float* logits, int* targets, float* loss, int rows, int classes, int ignoreIndex, float smoothing)
    {
        if (rows == 0) return;
        lock (_errorGate)
        {
            ResetError();
            Grouped<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>, int, int, float>(K.Softmax.CrossEntropy)(
                Rows(rows), F(logits), I(targets), F(loss), _error.View, classes, ignoreIndex, smoothing);
            ThrowIfBadTarget(targets, classes);
        }
    }

    public void CrossEntropyBackward(float* logits, int* targets, float* dloss, float* dlogits, int rows, int classes, int ignoreIndex, float smoothing)
    {
        if (rows == 0) return;
        lock (_errorGate)
        {
            ResetError();
            Grouped<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int, float>(K.Softmax.CrossEntropyBackward)(
                Rows(rows), F(logits), I(targets), F(dloss), F(dlogits), _error.View, classes, ignoreIndex, smoothing);
            ThrowIfBadTarget(targets, classes);
        }
    }

    private void ThrowIfBadTarget(int* targets, int classes)
    {
        int row = ReadError();
        if (row >= 0)
            throw new ArgumentOutOfRangeException("target", $"Target {ReadInt(targets, row)} at row {row} is outside the {classes} classes [0, {classes}).");
    }

    public void LayerNorm(float* x, float* w, float* b, float* y, float* mean, float* rstd, int rows, int cols, float eps)
    {
        if (rows == 0) return;
        int hasW = w == null ? 0 : 1, hasB = b == null ? 0 : 1;
        if (LayerNormKernel == RowKernelVersion.V1RowPerThread)
            Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int>(
                K.LayerNorm.V1RowPerThread)(rows, F(x), F(w), F(b), F(y), F(mean), F(rstd), cols, eps, hasW, hasB);
        else
            Grouped<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int>(
                K.LayerNorm.V2BlockPerRow)(Rows(rows), F(x), F(w), F(b), F(y), F(mean), F(rstd), cols, eps, hasW, hasB);
    }

    public void LayerNormBackward(float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db, int rows, int cols)
    {
        if (rows == 0) return;
        Grouped<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            int, int, int, int>(K.LayerNorm.Backward)(Rows(rows), F(dy), F(x), F(w), F(mean), F(rstd), F(dx), F(dw), F(db), cols,
            w == null ? 0 : 1, dw == null ? 0 : 1, db == null ? 0 : 1);
    }

    // ---------------------------------------------------------------- embedding

    public void Embedding(float* table, int* idx, float* y, int n, int dim, int rows)
    {
        long count = (long)n * dim;
        if (count == 0) return;
        lock (_errorGate)
        {
            ResetError();
            Auto<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<int>, int, int>(K.Embedding.Forward)(
                Count(count, nameof(Embedding)), F(table), I(idx), F(y), _error.View, dim, rows);
            int position = ReadError();
            if (position >= 0)
                throw new ArgumentOutOfRangeException("index", $"Index {ReadInt(idx, position)} at position {position} is outside the table's {rows} rows.");
        }
    }

    public void EmbeddingBackward(float* dy, int* idx, float* dtable, int n, int dim)
    {
        long count = (long)n * dim;
        if (count == 0) return;
        Auto<ArrayView<float>, ArrayView<int>, ArrayView<float>, int>(K.Embedding.Backward)(Count(count, nameof(EmbeddingBackward)), F(dy), I(idx), F(dtable), dim);
    }

    public void Dispose()
    {
        _placeholder.Dispose();
        _error.Dispose();
    }
}
