using System.Numerics.Tensors;

namespace Nabla.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    // Row-at-a-time attention: each query row computes its scores, softmax and weighted sum of values, with
    // the work spread over (batch, head) pairs. Memory stays O(Tk) per thread (no T×T matrix).

    public void Attention(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse)
    {
        var l = layout;
        int rowsPerTask = Math.Max(1, 4096 / Math.Max(1, l.Tk));
        int blocks = (l.Tq + rowsPerTask - 1) / rowsPerTask;
        int tasks = l.Batch * l.Heads * blocks;
        WorkerPool.For(tasks, 1, (t0, t1) =>
        {
            var scratch = new float[l.Tk];
            fixed (float* scores = scratch)
                for (int t = t0; t < t1; t++)
                {
                    int bh = t / blocks, block = t % blocks, b = bh / l.Heads, h = bh % l.Heads;
                    for (int i = block * rowsPerTask; i < Math.Min(l.Tq, (block + 1) * rowsPerTask); i++)
                        AttentionRow(l, b, h, i, q, k, v, o, lse, scores);
                }
        });
    }

    private static void AttentionRow(in AttentionLayout l, int b, int h, int i, float* q, float* k, float* v, float* o, float* lse, float* scores)
    {
        int D = l.HeadDim, visible = l.VisibleKeys(i);
        var qi = new ReadOnlySpan<float>(q + l.Q.Of(b, h, i), D);
        var oi = new Span<float>(o + l.O.Of(b, h, i), D);
        oi.Clear();
        long lseAt = ((long)b * l.Heads + h) * l.Tq + i;
        if (visible == 0) { lse[lseAt] = float.NegativeInfinity; return; }
        for (int j = 0; j < visible; j++)
            scores[j] = l.Scale * TensorPrimitives.Dot(qi, new ReadOnlySpan<float>(k + l.K.Of(b, h, j), D));
        var row = new Span<float>(scores, visible);
        float max = TensorPrimitives.Max(row);
        TensorPrimitives.Subtract(row, max, row);
        TensorPrimitives.Exp(row, row);
        float sum = TensorPrimitives.Sum(row);
        float inv = 1f / sum;
        for (int j = 0; j < visible; j++)
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(v + l.V.Of(b, h, j), D), scores[j] * inv, oi, oi);
        lse[lseAt] = max + MathF.Log(sum);
    }

    public void AttentionBackward(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse, float* dout,
        float* dq, float* dk, float* dv)
    {
        var l = layout;
        int D = l.HeadDim;
        // dk and dv sum over all queries of a head, so one task owns a whole (batch, head).
        WorkerPool.For(l.Batch * l.Heads, 1, (t0, t1) =>
        {
            for (int t = t0; t < t1; t++)
            {
                int b = t / l.Heads, h = t % l.Heads;
                for (int j = 0; j < l.Tk; j++)
                {
                    new Span<float>(dk + l.K.Of(b, h, j), D).Clear();
                    new Span<float>(dv + l.V.Of(b, h, j), D).Clear();
                }
                for (int i = 0; i < l.Tq; i++)
                {
                    var qi = new ReadOnlySpan<float>(q + l.Q.Of(b, h, i), D);
                    var doi = new ReadOnlySpan<float>(dout + l.O.Of(b, h, i), D);
                    var dqi = new Span<float>(dq + l.Q.Of(b, h, i), D);
                    dqi.Clear();
                    float rowLse = lse[((long)b * l.Heads + h) * l.Tq + i];
                    float di = TensorPrimitives.Dot(doi, new ReadOnlySpan<float>(o + l.O.Of(b, h, i), D));
                    for (int j = 0; j < l.VisibleKeys(i); j++)
                    {
                        var kj = new ReadOnlySpan<float>(k + l.K.Of(b, h, j), D);
                        var vj = new ReadOnlySpan<float>(v + l.V.Of(b, h, j), D);
                        float p = MathF.Exp(l.Scale * TensorPrimitives.Dot(qi, kj) - rowLse);
                        float ds = p * (TensorPrimitives.Dot(doi, vj) - di) * l.Scale;
                        TensorPrimitives.MultiplyAdd(kj, ds, dqi, dqi);
                        var dkj = new Span<float>(dk + l.K.Of(b, h, j), D);
                        TensorPrimitives.MultiplyAdd(qi, ds, dkj, dkj);
                        var dvj = new Span<float>(dv + l.V.Of(b, h, j), D);
                        TensorPrimitives.MultiplyAdd(doi, p, dvj, dvj);
                    }
                }
            }
        });
    }
}
