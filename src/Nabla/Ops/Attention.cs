using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

public static unsafe partial class F
{
    /// <summary>
    /// softmax(q·kᵀ·scale [+ causal mask])·v for q (B, H, Tq, D) and k, v (B, H, Tk, D); the default scale is
    /// 1/√D. With <paramref name="causal"/> the queries are the last Tq positions of the Tk keys (Tq = Tk in
    /// training; 1 when decoding with a cache). One fused kernel: the Tq×Tk probabilities are never stored.
    /// </summary>
    public static Tensor ScaledDotProductAttention(Tensor q, Tensor k, Tensor v, bool causal = false, float? scale = null)
    {
        foreach (var (t, name) in new[] { (q, "q"), (k, "k"), (v, "v") })
        {
            t.RequireFloat("ScaledDotProductAttention");
            if (t.Rank != 4) throw new ArgumentException($"ScaledDotProductAttention: {name} must be (batch, heads, time, head_dim), got {t.ShapeString}.");
        }
        int B = q.Size(0), H = q.Size(1), Tq = q.Size(2), D = q.Size(3), Tk = k.Size(2);
        if (!k.Shape.SequenceEqual(v.Shape) || k.Size(0) != B || k.Size(1) != H || k.Size(3) != D)
            throw new ArgumentException($"ScaledDotProductAttention: q {q.ShapeString}, k {k.ShapeString} and v {v.ShapeString} do not fit together.");
        if (causal && Tq > Tk) throw new ArgumentException($"ScaledDotProductAttention: causal attention needs Tq ≤ Tk, got {Tq} > {Tk}.");
        // The kernel reads any (b, h, t) strides with a contiguous head dimension, so views of a KV cache need no
        // copy. For training the inputs are made contiguous: the gradients are written with the same layout.
        bool training = GradMode.Needed([q, k, v]);
        Tensor Prepare(Tensor t) => !training && t.Strides[3] == 1 ? t : t.Contiguous();
        var (qc, kc, vc) = (Prepare(q), Prepare(k), Prepare(v));
        var o = Tensor.Empty([B, H, Tq, D], DType.Float32, q.Device);
        var layout = new AttentionLayout(B, H, Tq, Tk, D, scale ?? 1f / MathF.Sqrt(D), causal,
            Rows(qc), Rows(kc), Rows(vc), Rows(o));
        return RunAttention(layout, qc, kc, vc, o, [q, k, v], g =>
        {
            var (dq, dk, dv) = (Tensor.Empty([B, H, Tq, D], DType.Float32, g.Device), Tensor.Empty([B, H, Tk, D], DType.Float32, g.Device),
                Tensor.Empty([B, H, Tk, D], DType.Float32, g.Device));
            return ([dq, dk, dv], (nint)dq.Data, (nint)dk.Data, (nint)dv.Data);
        });
    }

    /// <summary>
    /// GPT-style causal self-attention straight from the packed projection qkv (B, T, 3C) — [q | k | v], each
    /// split into heads of C/heads — to the output (B, T, C), heads already merged: the kernel reads and
    /// writes through strides, so there is no split, transpose or merge copy, and the backward returns the
    /// gradient of qkv in one buffer.
    /// </summary>
    public static Tensor CausalSelfAttention(Tensor qkv, int heads)
    {
        qkv.RequireFloat("CausalSelfAttention");
        if (qkv.Rank != 3 || qkv.Size(2) % 3 != 0 || qkv.Size(2) / 3 % heads != 0)
            throw new ArgumentException($"CausalSelfAttention: qkv must be (batch, time, 3·channels) with channels divisible by {heads} heads, got {qkv.ShapeString}.");
        var x = qkv.Contiguous();
        int B = x.Size(0), T = x.Size(1), C = x.Size(2) / 3, D = C / heads;
        var rows = new RowStrides((long)T * 3 * C, D, 3 * C);
        var o = Tensor.Empty([B, T, C], DType.Float32, x.Device);
        var layout = new AttentionLayout(B, heads, T, T, D, 1f / MathF.Sqrt(D), true, rows, rows, rows, new RowStrides((long)T * C, D, C));
        return RunAttention(layout, x, x, x, o, [qkv], g =>
        {
            var dqkv = Tensor.Empty([B, T, 3 * C], DType.Float32, g.Device);
            return ([dqkv], (nint)dqkv.Data, (nint)(dqkv.Data + C), (nint)(dqkv.Data + 2 * C));
        }, kOffset: C, vOffset: 2 * C);
    }

    /// <summary><paramref name="t"/> if it is a copy the op made (no input shares its storage), else null.</summary>
    private static Tensor? PrivateCopy(Tensor t, Tensor[] inputs) =>
        Array.Exists(inputs, i => ReferenceEquals(i.Storage, t.Storage)) ? null : t;

    private static RowStrides Rows(Tensor t) => new(t.Strides[0], t.Strides[1], t.Strides[2]);

    /// <summary>Runs the attention kernel and records its backward. <paramref name="makeGrads"/> allocates the
    /// input gradients and says where dq, dk and dv go.</summary>
    private static Tensor RunAttention(AttentionLayout layout, Tensor q, Tensor k, Tensor v, Tensor o, Tensor[] inputs,
        Func<Tensor, (Tensor?[] Grads, nint Dq, nint Dk, nint Dv)> makeGrads, int kOffset = 0, int vOffset = 0)
    {
        var kernels = Tensor.KernelsFor("Attention", q, k, v);
        var lse = Tensor.Empty([layout.Batch, layout.Heads, layout.Tq], DType.Float32, q.Device);
        if (o.Count > 0)
            kernels.Attention(layout, q.Data, k.Data + kOffset, v.Data + vOffset, o.Data, lse.Data);
        if (GradMode.Needed(inputs))
        {
            o.Record("Attention", inputs, g =>
            {
                var gc = g.Contiguous();
                var (grads, dq, dk, dv) = makeGrads(gc);
                if (o.Count > 0)
                    Tensor.KernelsFor("Attention backward", q, k, v, gc).AttentionBackward(layout, q.Data, k.Data + kOffset, v.Data + vOffset, o.Data, lse.Data, gc.Data,
                        (float*)dq, (float*)dk, (float*)dv);
                GC.KeepAlive(gc);
                return grads;
            }, saved: [lse, PrivateCopy(q, inputs), PrivateCopy(k, inputs), PrivateCopy(v, inputs)]);
        }
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v);
        return o;
    }
}
