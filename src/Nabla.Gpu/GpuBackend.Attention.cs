using ILGPU;
using ILGPU.Runtime;
using Nabla.Gpu.Kernels;
using Nabla.Kernels;
using K = Nabla.Gpu.Kernels;

namespace Nabla.Gpu;

public sealed unsafe partial class GpuBackend
{
    public void Attention(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse) =>
        Attention(AttentionKernel, layout, q, k, v, o, lse);

    public void AttentionBackward(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse, float* dout,
        float* dq, float* dk, float* dv) =>
        AttentionBackward(AttentionKernel, layout, q, k, v, o, lse, dout, dq, dk, dv);

    /// <summary>The flash kernels keep a head in fixed-size local and shared arrays; wider heads use v1.</summary>
    private static AttentionVersion Effective(AttentionVersion version, in AttentionLayout l) =>
        version == AttentionVersion.V2Flash && l.HeadDim > K.Attention.MaxHeadDim ? AttentionVersion.V1Materialized : version;

    /// <summary>Attention forward with a chosen kernel version.</summary>
    public void Attention(AttentionVersion version, in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse)
    {
        int bh = layout.Batch * layout.Heads;
        if (bh == 0 || layout.Tq == 0) return;
        var args = new AttentionArgs(layout);
        if (Effective(version, layout) == AttentionVersion.V2Flash)
        {
            var config = new KernelConfig(new Index2D((layout.Tq + K.Attention.FlashRows - 1) / K.Attention.FlashRows, bh), new Index2D(K.Attention.FlashRows, 1));
            Grouped<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(K.Attention.V2FlashForward)(
                config, F(q), F(k), F(v), F(o), F(lse), args);
            return;
        }
        long scores = (long)bh * layout.Tq * layout.Tk;
        using var p = Scratch(scores);
        if (layout.Tk > 0)
            Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(K.Attention.V1Scores)(Count(scores, "Attention"), F(q), F(k), p.View, args);
        Auto<ArrayView<float>, ArrayView<float>, AttentionArgs>(K.Attention.V1SoftmaxRows)(bh * layout.Tq, p.View, F(lse), args);
        if (layout.HeadDim > 0)
            Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(K.Attention.V1WeightedValues)(
                Count((long)bh * layout.Tq * layout.HeadDim, "Attention"), p.View, F(v), F(o), args);
    }

    /// <summary>Attention backward with a chosen kernel version.</summary>
    public void AttentionBackward(AttentionVersion version, in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse, float* dout,
        float* dq, float* dk, float* dv)
    {
        int bh = layout.Batch * layout.Heads, D = layout.HeadDim;
        if (bh == 0 || D == 0) return;
        var args = new AttentionArgs(layout);
        using var rowDot = Scratch((long)bh * layout.Tq);
        if (layout.Tq > 0)
            Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(K.Attention.RowDots)(bh * layout.Tq, F(o), F(dout), rowDot.View, args);
        if (Effective(version, layout) == AttentionVersion.V2Flash)
        {
            var keyTiles = new KernelConfig(new Index2D((layout.Tk + K.Attention.FlashRows - 1) / K.Attention.FlashRows, bh), new Index2D(K.Attention.FlashRows, 1));
            if (layout.Tk > 0)
                Grouped<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(
                    K.Attention.V2FlashKeyValueGradient)(keyTiles, F(q), F(k), F(v), F(lse), F(dout), rowDot.View, F(dk), F(dv), args);
            var queryTiles = new KernelConfig(new Index2D((layout.Tq + K.Attention.FlashRows - 1) / K.Attention.FlashRows, bh), new Index2D(K.Attention.FlashRows, 1));
            if (layout.Tq > 0)
                Grouped<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(
                    K.Attention.V2FlashQueryGradient)(queryTiles, F(q), F(k), F(v), F(lse), F(dout), rowDot.View, F(dq), args);
            return;
        }
        long scores = (long)bh * layout.Tq * layout.Tk;
        using var p = Scratch(scores);
        var all = Count(scores, "AttentionBackward");
        if (scores > 0)
        {
            Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(K.Attention.V1Probabilities)(all, F(q), F(k), F(lse), p.View, args);
        }
        if (layout.Tk > 0)
            Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(K.Attention.V1ValueGradient)(
                Count((long)bh * layout.Tk * D, "AttentionBackward"), p.View, F(dout), F(dv), args);
        if (scores > 0)
            Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(K.Attention.V1ScoreGradient)(all, p.View, F(v), F(dout), rowDot.View, args);
        if (layout.Tq > 0)
            Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(K.Attention.V1QueryGradient)(
                Count((long)bh * layout.Tq * D, "AttentionBackward"), p.View, F(k), F(dq), args);
        if (layout.Tk > 0)
            Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionArgs>(K.Attention.V1KeyGradient)(
                Count((long)bh * layout.Tk * D, "AttentionBackward"), p.View, F(q), F(dk), args);
    }

    /// <summary>A temporary device buffer from the runtime's pool, returned on dispose (after the kernels queued on
    /// the stream that use it: later kernels on the same stream run after them, so reuse is safe).</summary>
    private ScratchBuffer Scratch(long floats) => new(_runtime, Math.Max(floats, 1) * sizeof(float));

    private readonly struct ScratchBuffer : IDisposable
    {
        private readonly GpuRuntime _runtime;
        private readonly nint _address;
        private readonly long _capacity;

        public ScratchBuffer(GpuRuntime runtime, long bytes)
        {
            _runtime = runtime;
            _address = runtime.Allocate(bytes, out _capacity);
            View = runtime.View<float>(_address);
        }

        public ArrayView<float> View { get; }
        public void Dispose() => _runtime.Free(_address, _capacity);
    }
}
