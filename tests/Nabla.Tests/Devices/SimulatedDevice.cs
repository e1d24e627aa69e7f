using System.Runtime.InteropServices;
using Nabla.Kernels;
using Nabla.Kernels.Reference;

namespace Nabla.Tests.Devices;

/// <summary>
/// A fake device for testing device-aware code without a GPU. Its memory is host memory kept apart from the addresses
/// it hands out: each allocation is a data block the kernels and copies use, and a same-sized "address" block, filled
/// with a NaN pattern, whose address is the tensor's device address. So a host path that dereferences a device address
/// reads NaNs (and the results go wrong) and one that writes there spoils the pattern (<see cref="CheckAddressBlocks"/>
/// finds it); and the kernels, which wrap a host backend, first map every pointer argument back to its data block and
/// fail on a pointer that is not one of this device's, i.e. host memory reaching the device backend.
/// </summary>
public sealed unsafe class SimulatedDevice : IDeviceRuntime
{
    private const uint AddressPoison = 0x7FC0DEAD; // a quiet NaN

    private readonly record struct Block(nint Address, long Bytes, nint Data);

    private readonly object _gate = new();
    private readonly List<Block> _blocks = []; // sorted by Address
    private long _liveBytes;

    public SimulatedDevice(string name, IKernelBackend hostKernels)
    {
        Name = name;
        Kernels = new CheckedKernels(this, hostKernels);
    }

    public string Name { get; }
    public IKernelBackend Kernels { get; }
    public long LiveBytes => Interlocked.Read(ref _liveBytes);

    /// <summary>The kinds registered with <see cref="Device.Register"/>: "sim" runs the reference kernels, "sim-cpu" the
    /// optimised CPU ones.</summary>
    public static Device Reference => Get("sim", () => new SimulatedDevice("sim", ReferenceBackend.Instance));
    public static Device Cpu => Get("sim-cpu", () => new SimulatedDevice("sim-cpu", Nabla.Kernels.Cpu.CpuBackend.Instance));

    private static Device Get(string kind, Func<IDeviceRuntime> factory)
    {
        Device.Register(kind, factory);
        return Device.Get(kind);
    }

    public nint Allocate(long bytes, out long capacity)
    {
        capacity = bytes;
        var address = (nint)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        var data = (nint)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        new Span<uint>((void*)address, (int)(bytes / 4)).Fill(AddressPoison);
        lock (_gate)
        {
            int i = Find(address);
            _blocks.Insert(~i, new Block(address, bytes, data));
        }
        Interlocked.Add(ref _liveBytes, bytes);
        return address;
    }

    public void Free(nint address, long capacity)
    {
        Block block;
        lock (_gate)
        {
            int i = Find(address);
            if (i < 0) throw new InvalidOperationException($"{Name}: Free of {address:x}, which is not a block of this device.");
            block = _blocks[i];
            _blocks.RemoveAt(i);
        }
        if (capacity != block.Bytes) throw new InvalidOperationException($"{Name}: Free of a {block.Bytes}-byte block with capacity {capacity}.");
        if (!PoisonIntact(block)) Interlocked.Increment(ref _spoiledBlocks);
        Interlocked.Add(ref _liveBytes, -block.Bytes);
        NativeMemory.AlignedFree((void*)block.Address);
        NativeMemory.AlignedFree((void*)block.Data);
    }

    private long _spoiledBlocks;

    /// <summary>Throws if host code wrote to a device address: a freed block whose pattern was spoiled, or a live one.</summary>
    public void CheckAddressBlocks()
    {
        lock (_gate)
            foreach (var block in _blocks)
                if (!PoisonIntact(block)) throw new InvalidOperationException($"{Name}: host code wrote to device address {block.Address:x}.");
        if (Interlocked.Read(ref _spoiledBlocks) > 0) throw new InvalidOperationException($"{Name}: host code wrote to {_spoiledBlocks} device blocks since freed.");
    }

    private static bool PoisonIntact(Block block) =>
        !new ReadOnlySpan<uint>((void*)block.Address, (int)(block.Bytes / 4)).ContainsAnyExcept(AddressPoison);

    public void CopyFromHost(void* source, nint destination, long bytes) =>
        Buffer.MemoryCopy(source, (void*)Data(destination, bytes), bytes, bytes);

    public void CopyToHost(nint source, void* destination, long bytes) =>
        Buffer.MemoryCopy((void*)Data(source, bytes), destination, bytes, bytes);

    public void CopyWithin(nint source, nint destination, long bytes) =>
        Buffer.MemoryCopy((void*)Data(source, bytes), (void*)Data(destination, bytes), bytes, bytes);

    public void Synchronize() { }

    /// <summary>The data behind device address <paramref name="address"/>, checking that the <paramref name="bytes"/>
    /// from it lie inside one block.</summary>
    private nint Data(nint address, long bytes)
    {
        lock (_gate)
        {
            int i = Find(address);
            if (i < 0) i = ~i - 1; // the block starting below the address
            if (i >= 0 && address >= _blocks[i].Address && address + bytes <= _blocks[i].Address + _blocks[i].Bytes)
                return _blocks[i].Data + (address - _blocks[i].Address);
        }
        throw new InvalidOperationException($"{Name}: pointer {address:x} ({bytes} bytes) is not device memory of {Name}: host memory reached the device.");
    }

    private int Find(nint address)
    {
        int lo = 0, hi = _blocks.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_blocks[mid].Address == address) return mid;
            if (_blocks[mid].Address < address) lo = mid + 1; else hi = mid - 1;
        }
        return ~lo;
    }

    /// <summary>The host kernels, on the data blocks behind the device addresses they are given.</summary>
    private sealed class CheckedKernels(SimulatedDevice device, IKernelBackend inner) : IKernelBackend
    {
        private readonly IKernelBackend _inner = inner;

        public string Name => device.Name;

        private float* At(float* p) => p == null ? null : (float*)device.Data((nint)p, 0);
        private int* At(int* p) => p == null ? null : (int*)device.Data((nint)p, 0);

        public void Fill(float* y, float value, long n) =>
            _inner.Fill(At(y), value, n);

        public void AddInt(int* x, int value, long n) =>
            _inner.AddInt(At(x), value, n);

    public void Copy(float* src, ReadOnlySpan<int> srcStrides, float* dst, ReadOnlySpan<int> dstStrides, ReadOnlySpan<int> shape, bool accumulate) =>
        _inner.Copy(At(src), srcStrides, At(dst), dstStrides, shape, accumulate);

    public void Unary<F>(float alpha, float* x, float* y, long n) where F : struct, IUnaryFunction =>
        _inner.Unary<F>(alpha, At(x), At(y), n);

    public void UnaryBackward<F>(float alpha, float* x, float* y, float* dy, float* dx, long n) where F : struct, IUnaryFunction =>
        _inner.UnaryBackward<F>(alpha, At(x), At(y), At(dy), At(dx), n);

    public void Binary(BinaryOp op, float* a, ReadOnlySpan<int> aStrides, float* b, ReadOnlySpan<int> bStrides, float* y, ReadOnlySpan<int> shape) =>
        _inner.Binary(op, At(a), aStrides, At(b), bStrides, At(y), shape);

    public void Sum(float* x, float* y, int outer, int r, int inner) =>
        _inner.Sum(At(x), At(y), outer, r, inner);

    public void Max(float* x, float* y, int* argmax, int outer, int r, int inner) =>
        _inner.Max(At(x), At(y), At(argmax), outer, r, inner);

    public void Softmax(float* x, float* y, int rows, int cols, bool log) =>
        _inner.Softmax(At(x), At(y), rows, cols, log);

    public void SoftmaxBackward(float* y, float* dy, float* dx, int rows, int cols, bool log) =>
        _inner.SoftmaxBackward(At(y), At(dy), At(dx), rows, cols, log);

    public void CrossEntropy(float* logits, int* targets, float* loss, int rows, int classes, int ignoreIndex, float smoothing) =>
        _inner.CrossEntropy(At(logits), At(targets), At(loss), rows, classes, ignoreIndex, smoothing);

    public void CrossEntropyBackward(float* logits, int* targets, float* dloss, float* dlogits, int rows, int classes, int ignoreIndex, float smoothing) =>
        _inner.CrossEntropyBackward(At(logits), At(targets), At(dloss), At(dlogits), rows, classes, ignoreIndex, smoothing);

    public void LayerNorm(float* x, float* w, float* b, float* y, float* mean, float* rstd, int rows, int cols, float eps) =>
        _inner.LayerNorm(At(x), At(w), At(b), At(y), At(mean), At(rstd), rows, cols, eps);

    public void LayerNormBackward(float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db, int rows, int cols) =>
        _inner.LayerNormBackward(At(dy), At(x), At(w), At(mean), At(rstd), At(dx), At(dw), At(db), rows, cols);

    public void Gemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, long strideA, float* b, int ldb, long strideB, float* c, int ldc, long strideC, int batch, bool accumulate, float* bias) =>
        _inner.Gemm(transA, transB, m, n, k, At(a), lda, strideA, At(b), ldb, strideB, At(c), ldc, strideC, batch, accumulate, At(bias));

    public void Attention(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse) =>
        _inner.Attention(in layout, At(q), At(k), At(v), At(o), At(lse));

    public void AttentionBackward(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse, float* dout, float* dq, float* dk, float* dv) =>
        _inner.AttentionBackward(in layout, At(q), At(k), At(v), At(o), At(lse), At(dout), At(dq), At(dk), At(dv));

    public void Embedding(float* table, int* idx, float* y, int n, int dim, int rows) =>
        _inner.Embedding(At(table), At(idx), At(y), n, dim, rows);

    public void EmbeddingBackward(float* dy, int* idx, float* dtable, int n, int dim) =>
        _inner.EmbeddingBackward(At(dy), At(idx), At(dtable), n, dim);

    public void AdamW(float* p, float* g, float* m, float* v, long n, float lr, float beta1, float beta2, float eps, float weightDecay, int step) =>
        _inner.AdamW(At(p), At(g), At(m), At(v), n, lr, beta1, beta2, eps, weightDecay, step);

    public void LstmCell(float* gates, float* cPrev, float* c, float* h, int batch, int hidden) =>
        _inner.LstmCell(At(gates), At(cPrev), At(c), At(h), batch, hidden);

    public void LstmCellBackward(float* gates, float* cPrev, float* c, float* dh, float* dc, float* dGates, float* dcPrev, int batch, int hidden) =>
        _inner.LstmCellBackward(At(gates), At(cPrev), At(c), At(dh), At(dc), At(dGates), At(dcPrev), batch, hidden);

    public void GruCell(float* inputGates, float* hiddenGates, float* hPrev, float* h, int batch, int hidden) =>
        _inner.GruCell(At(inputGates), At(hiddenGates), At(hPrev), At(h), batch, hidden);

    public void GruCellBackward(float* gates, float* hiddenGates, float* hPrev, float* dh, float* dInputGates, float* dHiddenGates, float* dhPrev, int batch, int hidden) =>
        _inner.GruCellBackward(At(gates), At(hiddenGates), At(hPrev), At(dh), At(dInputGates), At(dHiddenGates), At(dhPrev), batch, hidden);

    public void Col2Im(in Conv2dGeometry g, float* col, float* dx) =>
        _inner.Col2Im(in g, At(col), At(dx));

    public void WinogradInput(in Conv2dGeometry g, float* x, float* v) =>
        _inner.WinogradInput(in g, At(x), At(v));

    public void WinogradOutput(in Conv2dGeometry g, float* m, float* bias, float* y) =>
        _inner.WinogradOutput(in g, At(m), At(bias), At(y));

    public void WinogradOutputAdjoint(in Conv2dGeometry g, float* dy, float* dm) =>
        _inner.WinogradOutputAdjoint(in g, At(dy), At(dm));

    public void WinogradKernels(in Conv2dGeometry g, float* w, float* u, bool inputGradient) =>
        _inner.WinogradKernels(in g, At(w), At(u), inputGradient);

    public void WinogradKernelGradient(in Conv2dGeometry g, float* du, float* dw) =>
        _inner.WinogradKernelGradient(in g, At(du), At(dw));

    public void DirectConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y) =>
        _inner.DirectConv2d(in g, At(x), At(w), At(bias), At(y));

    public void DirectConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx) =>
        _inner.DirectConv2dBackwardInput(in g, At(dy), At(w), At(dx));

    public void DirectConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw) =>
        _inner.DirectConv2dBackwardWeight(in g, At(dy), At(x), At(dw));

    public void DepthwiseConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y) =>
        _inner.DepthwiseConv2d(in g, At(x), At(w), At(bias), At(y));

    public void DepthwiseConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx) =>
        _inner.DepthwiseConv2dBackwardInput(in g, At(dy), At(w), At(dx));

    public void DepthwiseConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw) =>
        _inner.DepthwiseConv2dBackwardWeight(in g, At(dy), At(x), At(dw));

    public void MaxPool2d(in Conv2dGeometry g, float* x, float* y, int* argmax) =>
        _inner.MaxPool2d(in g, At(x), At(y), At(argmax));

    public void MaxPool2dBackward(in Conv2dGeometry g, float* dy, int* argmax, float* dx) =>
        _inner.MaxPool2dBackward(in g, At(dy), At(argmax), At(dx));

    public void AvgPool2d(in Conv2dGeometry g, bool countIncludePad, float* x, float* y) =>
        _inner.AvgPool2d(in g, countIncludePad, At(x), At(y));

    public void AvgPool2dBackward(in Conv2dGeometry g, bool countIncludePad, float* dy, float* dx) =>
        _inner.AvgPool2dBackward(in g, countIncludePad, At(dy), At(dx));

    public void AdaptiveAvgPool2d(int planes, int height, int width, int outHeight, int outWidth, float* x, float* y) =>
        _inner.AdaptiveAvgPool2d(planes, height, width, outHeight, outWidth, At(x), At(y));

    public void AdaptiveAvgPool2dBackward(int planes, int height, int width, int outHeight, int outWidth, float* dy, float* dx) =>
        _inner.AdaptiveAvgPool2dBackward(planes, height, width, outHeight, outWidth, At(dy), At(dx));

    public void BatchNormStatistics(float* x, float* mean, float* variance, int batch, int channels, int spatial) =>
        _inner.BatchNormStatistics(At(x), At(mean), At(variance), batch, channels, spatial);

    public void BatchNorm(float* x, float* mean, float* rstd, float* w, float* b, float* residual, bool relu, float* y, int batch, int channels, int spatial) =>
        _inner.BatchNorm(At(x), At(mean), At(rstd), At(w), At(b), At(residual), relu, At(y), batch, channels, spatial);

    public void BatchNormBackward(float* dy, float* x, float* mean, float* rstd, float* w, float* reluOutput, float* dx, float* dResidual, float* dw, float* db,
        int batch, int channels, int spatial, bool batchStatistics) =>
        _inner.BatchNormBackward(At(dy), At(x), At(mean), At(rstd), At(w), At(reluOutput), At(dx), At(dResidual), At(dw), At(db), batch, channels, spatial, batchStatistics);
    }
}
