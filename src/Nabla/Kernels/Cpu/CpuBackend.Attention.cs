using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Nabla.Kernels.Cpu;

// Flash-style attention on the CPU: queries and keys are taken in blocks, and a block of scores is computed, turned
// into probabilities and used while it is hot in cache, so the Tq × Tk matrix never exists.
//
// Forward, one task per (batch, head) — or per part of a head's query blocks when there are fewer heads than threads
// can use: Kᵀ and V are packed once for the task, then for each query block and each block of keys,
// S = (scale·Q)·Kᵀ, and an online softmax keeps for every query row the running maximum m, the running sum l of
// exp(s - m) and the output accumulator, rescaled by exp(m_old - m_new) whenever the maximum grows; at the end
// o = acc / l and lse = m + log l. With fewer than 8 queries (decoding) each row is done on its own from the K and V
// rows as they lie.
//
// Backward, one task per (batch, head), key blocks outermost (FlashAttention-2's order): for each pair of a key block
// and a query block that sees it, the probabilities are recomputed from q, k and the saved lse, P = exp(S - lse), and
// dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP - D) with D_i = dO_i·o_i, dK += dSᵀ·(scale·Q), dQ += dS·K. dK and dV stay in
// scratch for the key block; dQ for the whole head.
//
// The block products are small GEMMs written as register tiles over packed copies: Q, dO and K rows with the head
// dimension padded to a multiple of 16 floats, and Kᵀ, Vᵀ with the keys contiguous, so scores are vectorised over
// keys (broadcast one query element, multiply a vector of keys) and the P·V products over the head dimension. The
// packing costs O(block·D) for O(block²·D) of arithmetic. Tiles wholly under the causal mask are skipped, and the
// exponentials use FastExp (Vector512.Exp costs as much as a 64³ block product).
public sealed unsafe partial class CpuBackend
{
    /// <summary>Queries per forward task and per backward inner step.</summary>
    private const int QueryBlock = 64;

    /// <summary>Below this many queries (decoding with a KV cache) the forward reads K and V rows as they lie: packing
    /// Kᵀ would cost more than the few rows of arithmetic it speeds up.</summary>
    private const int FewQueries = 8;

    /// <summary>Keys per block: multiples of two vectors of every width (the score tile is 2 vectors wide). The forward
    /// takes wide blocks, over which the per-row work of the online softmax (maximum, rescaling, sums) is spread; the
    /// backward narrower ones, which waste less on the masked half of the causal diagonal.</summary>
    private const int ForwardKeyBlock = 128, BackwardKeyBlock = 64;

    public void Attention(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse)
    {
        // Enough tasks for every thread to have a few, but no more: each task packs Kᵀ and V for its queries.
        int queryBlocks = (layout.Tq + QueryBlock - 1) / QueryBlock, heads = layout.Batch * layout.Heads;
        int parts = Math.Clamp((2 * WorkerPool.Threads + heads - 1) / heads, 1, queryBlocks);
        ParallelKernel.Items(heads * parts, new AttentionForwardParts(layout, parts, q, k, v, o, lse));
    }

    public void AttentionBackward(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse, float* dout,
        float* dq, float* dk, float* dv) =>
        ParallelKernel.Items(layout.Batch * layout.Heads, new AttentionBackwardHeads(layout, q, k, v, o, lse, dout, dq, dk, dv));

    /// <summary>Item = part p of head (b, h): query blocks [p·blocks/parts, (p+1)·blocks/parts).</summary>
    private readonly struct AttentionForwardParts(AttentionLayout l, int partsPerHead, float* q, float* k, float* v, float* o, float* lse)
        : IKernelItems
    {
        public void Execute<V>(int item) where V : struct, IVec<V>
        {
            int queryBlocks = (l.Tq + QueryBlock - 1) / QueryBlock;
            int head = item / partsPerHead, part = item % partsPerHead;
            int first = part * queryBlocks / partsPerHead, end = (part + 1) * queryBlocks / partsPerHead;
            int i0 = first * QueryBlock, i1 = Math.Min(l.Tq, end * QueryBlock);
            if (l.Tq < FewQueries)
                for (int i = i0; i < i1; i++) AttentionForwardRow<V>(l, head / l.Heads, head % l.Heads, i, q, k, v, o, lse);
            else AttentionForwardQueries<V>(l, head / l.Heads, head % l.Heads, i0, i1, q, k, v, o, lse);
        }
    }

    /// <summary>Item = head (b, h).</summary>
    private readonly struct AttentionBackwardHeads(AttentionLayout l, float* q, float* k, float* v, float* o, float* lse, float* dout,
        float* dq, float* dk, float* dv) : IKernelItems
    {
        public void Execute<V>(int item) where V : struct, IVec<V> =>
            AttentionBackwardHead<V>(l, item / l.Heads, item % l.Heads, q, k, v, o, lse, dout, dq, dk, dv);
    }

    /// <summary>Head dimension rounded up to whole 64-byte lines: the row stride of the packed copies.</summary>
    private static int PaddedHeadDim(int d) => (d + 15) & ~15;

    private static int RoundUp(int n, int multiple) => (n + multiple - 1) / multiple * multiple;

    /// <summary>
    /// How many keys of a key block each row of a query block sees: row i sees the first Keys(i) of the block's
    /// Limit keys. Without a mask that is all of them; with one it grows by one key per row. The block products use
    /// it to skip tiles that lie wholly in the masked part of a diagonal block (about half of it).
    /// </summary>
    private readonly record struct KeyVisibility(int AtRow0, int Growth, int Limit)
    {
        /// <summary>For the block of queries from i0 and the <paramref name="keys"/> keys from j0 (query i sees keys
        /// up to i + Tk - Tq under the mask).</summary>
        public static KeyVisibility Of(in AttentionLayout l, int i0, int j0, int keys) =>
            l.Causal ? new(i0 + l.Tk - l.Tq + 1 - j0, 1, keys) : new(keys, 0, keys);

        public int Keys(int i) => Math.Clamp(AtRow0 + Growth * i, 0, Limit);

        /// <summary>The first row that sees key <paramref name="key"/> of the block (rows before it see only earlier keys).</summary>
        public int FirstRowSeeing(int key) => Growth == 0 ? 0 : Math.Max(0, key - AtRow0 + 1);
    }

    // ---------------------------------------------------------------- forward

    /// <summary>Queries [i0, i1) of head (b, h): Kᵀ and V of every key they see packed once, then query block by query block.</summary>
    private static void AttentionForwardQueries<V>(in AttentionLayout l, int b, int h, int i0, int i1, float* q, float* k, float* v,
        float* o, float* lse) where V : struct, IVec<V>
    {
        int D = l.HeadDim, Dp = PaddedHeadDim(D);
        int keys = l.VisibleKeys(i1 - 1), keysWide = RoundUp(Math.Max(keys, 1), ForwardKeyBlock);
        long qFloats = (long)QueryBlock * Dp, kFloats = (long)keysWide * Dp, sFloats = (long)QueryBlock * ForwardKeyBlock;
        float* queries = ThreadScratch.Floats(2 * qFloats + 2 * kFloats + sFloats + 2 * QueryBlock);
        float* keysT = queries + qFloats, values = keysT + kFloats, scores = values + kFloats, acc = scores + sFloats;
        float* rowMax = acc + qFloats, rowSum = rowMax + QueryBlock;
        PackTransposed(l.K, b, h, 0, keys, keysWide, keysWide, D, k, keysT);
        PackRows(l.V, b, h, 0, keys, keys, D, Dp, v, 1f, values);
        for (int block = i0; block < i1; block += QueryBlock)
            AttentionForwardBlock<V>(l, b, h, block, Math.Min(QueryBlock, i1 - block), q, o, lse, keysT, keysWide, values,
                queries, scores, acc, rowMax, rowSum);
    }

    /// <summary>Query i of head (b, h) on its own: scores by dot products with the key rows, softmax, then the weighted
    /// sum of value rows four at a time.</summary>
    private static void AttentionForwardRow<V>(in AttentionLayout l, int b, int h, int i, float* q, float* k, float* v, float* o, float* lse)
        where V : struct, IVec<V>
    {
        int D = l.HeadDim, Dp = PaddedHeadDim(D), visible = l.VisibleKeys(i);
        float* oi = o + l.O.Of(b, h, i);
        long lseAt = ((long)b * l.Heads + h) * l.Tq + i;
        if (visible == 0)
        {
            new Span<float>(oi, D).Clear();
            lse[lseAt] = float.NegativeInfinity;
            return;
        }
        float* query = ThreadScratch.Floats(2 * Dp + ThreadScratch.Aligned(visible + 3));
        float* acc = query + Dp, scores = acc + Dp;
        PackRows(l.Q, b, h, i, 1, 1, D, Dp, q, l.Scale, query);
        for (int j = 0; j < visible; j++) scores[j] = Dot<V>(query, k + l.K.Of(b, h, j), D);
        float max = RowMax<V>(scores, visible);
        float sum = ExpRow<V>(scores, visible, max);
        new Span<float>(acc, Dp).Clear();
        int jj = 0;
        for (; jj + 4 <= visible; jj += 4)
            WeightedRows<V>(acc, Dp, scores + jj, v + l.V.Of(b, h, jj), v + l.V.Of(b, h, jj + 1), v + l.V.Of(b, h, jj + 2), v + l.V.Of(b, h, jj + 3), D);
        for (; jj < visible; jj++)
        {
            float* vj = v + l.V.Of(b, h, jj);
            for (int d = 0; d < D; d++) acc[d] += scores[jj] * vj[d];
        }
        float inverse = 1f / sum;
        TensorPrimitives.Multiply(new ReadOnlySpan<float>(acc, D), inverse, new Span<float>(oi, D));
        lse[lseAt] = max + MathF.Log(sum);
    }

    /// <summary>acc[d] += Σ_t p[t]·row_t[d] over four rows, for d below D (full vectors, then the tail one by one).</summary>
    private static void WeightedRows<V>(float* acc, int Dp, float* p, float* r0, float* r1, float* r2, float* r3, int D) where V : struct, IVec<V>
    {
        V p0 = V.Splat(p[0]), p1 = V.Splat(p[1]), p2 = V.Splat(p[2]), p3 = V.Splat(p[3]);
        int d = 0;
        for (; d + V.Count <= D; d += V.Count)
            V.Store(acc + d, V.Fma(p0, V.Load(r0 + d), V.Fma(p1, V.Load(r1 + d), V.Fma(p2, V.Load(r2 + d), V.Fma(p3, V.Load(r3 + d), V.Load(acc + d))))));
        for (; d < D; d++) acc[d] += p[0] * r0[d] + p[1] * r1[d] + p[2] * r2[d] + p[3] * r3[d];
    }

    /// <summary>One block of <paramref name="rows"/> queries from <paramref name="i0"/> against the packed keys and values.</summary>
    private static void AttentionForwardBlock<V>(in AttentionLayout l, int b, int h, int i0, int rows, float* q, float* o, float* lse,
        float* keysT, int keysStride, float* values, float* queries, float* scores, float* acc, float* rowMax, float* rowSum)
        where V : struct, IVec<V>
    {
        int D = l.HeadDim, Dp = PaddedHeadDim(D), rows4 = RoundUp(rows, 4);
        PackRows(l.Q, b, h, i0, rows, rows4, D, Dp, q, l.Scale, queries);
        new Span<float>(acc, rows4 * Dp).Clear();
        for (int i = 0; i < rows; i++) { rowMax[i] = float.NegativeInfinity; rowSum[i] = 0; }

        int keyEnd = l.VisibleKeys(i0 + rows - 1);
        for (int j0 = 0; j0 < keyEnd; j0 += ForwardKeyBlock)
        {
            int kn = Math.Min(ForwardKeyBlock, keyEnd - j0), kWide = RoundUp(kn, 2 * V.Count);
            var seen = KeyVisibility.Of(l, i0, j0, kn);
            ScoreTiles<V>(queries, Dp, keysT + j0, keysStride, scores, ForwardKeyBlock, rows4, kWide, D, seen);
            for (int i = 0; i < rows; i++)
            {
                float* s = scores + (long)i * ForwardKeyBlock;
                int visible = Math.Clamp(l.VisibleKeys(i0 + i) - j0, 0, kn);
                if (visible == 0) { new Span<float>(s, kn).Clear(); continue; }
                float m = MathF.Max(rowMax[i], RowMax<V>(s, visible));
                if (m > rowMax[i])
                {
                    // A new maximum: rescale what was summed so far (by 0 on the first block: exp(-∞)).
                    float rescale = MathF.Exp(rowMax[i] - m);
                    rowSum[i] *= rescale;
                    ScaleRow<V>(acc + (long)i * Dp, rescale, Dp);
                    rowMax[i] = m;
                }
                rowSum[i] += ExpRow<V>(s, visible, m);
                if (visible < kn) new Span<float>(s + visible, kn - visible).Clear();
            }
            // Padding rows of the query block multiply zeros: give them zero probabilities.
            new Span<float>(scores + (long)rows * ForwardKeyBlock, (rows4 - rows) * ForwardKeyBlock).Clear();
            ProductTiles<V>(scores, ForwardKeyBlock, values + (long)j0 * Dp, acc, rows4, Dp, seen);
        }

        for (int i = 0; i < rows; i++)
        {
            float* oi = o + l.O.Of(b, h, i0 + i);
            long lseAt = ((long)b * l.Heads + h) * l.Tq + i0 + i;
            if (rowSum[i] == 0)
            {
                new Span<float>(oi, D).Clear();
                lse[lseAt] = float.NegativeInfinity;
                continue;
            }
            float inverse = 1f / rowSum[i];
            float* ai = acc + (long)i * Dp;
            TensorPrimitives.Multiply(new ReadOnlySpan<float>(ai, D), inverse, new Span<float>(oi, D));
            lse[lseAt] = rowMax[i] + MathF.Log(rowSum[i]);
        }
    }

    // ---------------------------------------------------------------- backward

    private static void AttentionBackwardHead<V>(in AttentionLayout l, int b, int h, float* q, float* k, float* v, float* o, float* lse,
        float* dout, float* dq, float* dk, float* dv) where V : struct, IVec<V>
    {
        int D = l.HeadDim, Dp = PaddedHeadDim(D), Tq4 = RoundUp(l.Tq, 4);
        long headFloats = (long)Tq4 * Dp, kFloats = (long)BackwardKeyBlock * Dp, sFloats = (long)QueryBlock * BackwardKeyBlock;
        float* queries = ThreadScratch.Floats(3 * headFloats + ThreadScratch.Aligned(l.Tq) + 5 * kFloats + 2 * sFloats);
        float* gradOut = queries + headFloats, gradQ = gradOut + headFloats, delta = gradQ + headFloats;
        float* keysT = delta + ThreadScratch.Aligned(l.Tq), keys = keysT + kFloats, valuesT = keys + kFloats;
        float* gradK = valuesT + kFloats, gradV = gradK + kFloats, probs = gradV + kFloats, gradS = probs + sFloats;

        PackRows(l.Q, b, h, 0, l.Tq, Tq4, D, Dp, q, l.Scale, queries);
        PackRows(l.O, b, h, 0, l.Tq, Tq4, D, Dp, dout, 1f, gradOut);
        new Span<float>(gradQ, (int)headFloats).Clear();
        // D_i = Σ_j P_ij·(dO_i·v_j) = dO_i·o_i
        for (int i = 0; i < l.Tq; i++)
            delta[i] = Dot<V>(dout + l.O.Of(b, h, i), o + l.O.Of(b, h, i), D);
        float* headLse = lse + ((long)b * l.Heads + h) * l.Tq;

        for (int j0 = 0; j0 < l.Tk; j0 += BackwardKeyBlock)
        {
            int kn = Math.Min(BackwardKeyBlock, l.Tk - j0), kWide = RoundUp(kn, 2 * V.Count), kn4 = RoundUp(kn, 4);
            PackTransposed(l.K, b, h, j0, kn, kWide, BackwardKeyBlock, D, k, keysT);
            PackRows(l.K, b, h, j0, kn, kn, D, Dp, k, 1f, keys);
            PackTransposed(l.V, b, h, j0, kn, kWide, BackwardKeyBlock, D, v, valuesT);
            new Span<float>(gradK, kn4 * Dp).Clear();
            new Span<float>(gradV, kn4 * Dp).Clear();
            // From the first query that sees key j0 (all of them without a mask), rounded down to the 4-row tiles of
            // the packed queries; the rows before it see none of this block's keys and get zero probabilities.
            int iStart = l.Causal ? Math.Max(0, j0 - (l.Tk - l.Tq)) & ~3 : 0;
            for (int i0 = iStart; i0 < l.Tq; i0 += QueryBlock)
            {
                int rows = Math.Min(QueryBlock, l.Tq - i0), rows4 = RoundUp(rows, 4);
                float* qBlock = queries + (long)i0 * Dp, doBlock = gradOut + (long)i0 * Dp;
                var seen = KeyVisibility.Of(l, i0, j0, kn);
                ScoreTiles<V>(qBlock, Dp, keysT, BackwardKeyBlock, probs, BackwardKeyBlock, rows4, kWide, D, seen);
                ScoreTiles<V>(doBlock, Dp, valuesT, BackwardKeyBlock, gradS, BackwardKeyBlock, rows4, kWide, D, seen);
                for (int i = 0; i < rows4; i++)
                {
                    float* p = probs + (long)i * BackwardKeyBlock, ds = gradS + (long)i * BackwardKeyBlock;
                    int visible = i < rows ? Math.Clamp(l.VisibleKeys(i0 + i) - j0, 0, kn) : 0;
                    if (visible > 0) ProbabilitiesAndScoreGradients<V>(p, ds, visible, headLse[i0 + i], delta[i0 + i]);
                    new Span<float>(p + visible, kn4 - visible).Clear();
                    new Span<float>(ds + visible, kn4 - visible).Clear();
                }
                TransposedProductTiles<V>(probs, BackwardKeyBlock, doBlock, gradV, rows, kn4, Dp, seen);   // dV += Pᵀ·dO
                TransposedProductTiles<V>(gradS, BackwardKeyBlock, qBlock, gradK, rows, kn4, Dp, seen);    // dK += dSᵀ·(scale·Q)
                ProductTiles<V>(gradS, BackwardKeyBlock, keys, gradQ + (long)i0 * Dp, rows4, Dp, seen);    // dQ += dS·K
            }
            for (int j = 0; j < kn; j++)
            {
                Buffer.MemoryCopy(gradK + (long)j * Dp, dk + l.K.Of(b, h, j0 + j), D * 4L, D * 4L);
                Buffer.MemoryCopy(gradV + (long)j * Dp, dv + l.V.Of(b, h, j0 + j), D * 4L, D * 4L);
            }
        }
        for (int i = 0; i < l.Tq; i++)
        {
            float* dqi = dq + l.Q.Of(b, h, i), gi = gradQ + (long)i * Dp;
            TensorPrimitives.Multiply(new ReadOnlySpan<float>(gi, D), l.Scale, new Span<float>(dqi, D));
        }
    }

    /// <summary>p = exp(s - lse) (the probabilities), then ds = p·(dp - delta) in place of dp, over [0, n).</summary>
    private static void ProbabilitiesAndScoreGradients<V>(float* p, float* ds, int n, float lse, float delta) where V : struct, IVec<V>
    {
        int j = 0;
        var lv = V.Splat(lse);
        var dv = V.Splat(delta);
        for (; j + V.Count <= n; j += V.Count)
        {
            var pv = FastExp.Exp(V.Load(p + j) - lv);
            V.Store(p + j, pv);
            V.Store(ds + j, pv * (V.Load(ds + j) - dv));
        }
        for (; j < n; j++)
        {
            float pj = MathF.Exp(p[j] - lse);
            p[j] = pj;
            ds[j] = pj * (ds[j] - delta);
        }
    }

    // ---------------------------------------------------------------- packing

    /// <summary>Rows [t0, t0 + count) of one head into dst (rowsOut × Dp), times <paramref name="scale"/>; the padding
    /// columns and rows are zero.</summary>
    private static void PackRows(RowStrides strides, int b, int h, int t0, int count, int rowsOut, int D, int Dp, float* src, float scale, float* dst)
    {
        for (int t = 0; t < count; t++)
        {
            float* from = src + strides.Of(b, h, t0 + t), to = dst + (long)t * Dp;
            if (scale == 1f) Buffer.MemoryCopy(from, to, D * 4L, D * 4L);
            else TensorPrimitives.Multiply(new ReadOnlySpan<float>(from, D), scale, new Span<float>(to, D));
            new Span<float>(to + D, Dp - D).Clear();
        }
        new Span<float>(dst + (long)count * Dp, (rowsOut - count) * Dp).Clear();
    }

    /// <summary>Rows [t0, t0 + count) of one head transposed into dst (D rows of <paramref name="stride"/> floats, keys
    /// contiguous); columns from count to <paramref name="width"/> are zero.</summary>
    private static void PackTransposed(RowStrides strides, int b, int h, int t0, int count, int width, int stride, int D, float* src, float* dst)
    {
        int t = 0;
        if (CpuFeatures.UseAvx2)
            for (; t + 8 <= count; t += 8)
            {
                float* r0 = src + strides.Of(b, h, t0 + t);
                long rowStride = strides.T;
                int d = 0;
                for (; d + 8 <= D; d += 8) Transpose8x8(r0 + d, rowStride, dst + (long)d * stride + t, stride);
                for (; d < D; d++)
                    for (int k = 0; k < 8; k++) dst[(long)d * stride + t + k] = r0[k * rowStride + d];
            }
        // Four source rows at a time: each pass over d writes four neighbouring floats of a destination row.
        for (; t + 4 <= count; t += 4)
        {
            float* r0 = src + strides.Of(b, h, t0 + t), r1 = src + strides.Of(b, h, t0 + t + 1);
            float* r2 = src + strides.Of(b, h, t0 + t + 2), r3 = src + strides.Of(b, h, t0 + t + 3);
            for (int d = 0; d < D; d++)
            {
                float* to = dst + (long)d * stride + t;
                to[0] = r0[d]; to[1] = r1[d]; to[2] = r2[d]; to[3] = r3[d];
            }
        }
        for (; t < count; t++)
        {
            float* from = src + strides.Of(b, h, t0 + t);
            for (int d = 0; d < D; d++) dst[(long)d * stride + t] = from[d];
        }
        if (width > count)
            for (int d = 0; d < D; d++) new Span<float>(dst + (long)d * stride + count, width - count).Clear();
    }

    /// <summary>The 8 × 8 block at src (rows srcStride apart) transposed to dst (rows dstStride apart), in registers:
    /// interleave pairs of rows, then pairs of pairs, then swap 128-bit halves.</summary>
    private static void Transpose8x8(float* src, long srcStride, float* dst, long dstStride)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + srcStride);
        var r2 = Avx.LoadVector256(src + 2 * srcStride); var r3 = Avx.LoadVector256(src + 3 * srcStride);
        var r4 = Avx.LoadVector256(src + 4 * srcStride); var r5 = Avx.LoadVector256(src + 5 * srcStride);
        var r6 = Avx.LoadVector256(src + 6 * srcStride); var r7 = Avx.LoadVector256(src + 7 * srcStride);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * dstStride, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * dstStride, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * dstStride, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * dstStride, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * dstStride, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * dstStride, Avx.Permute2x128(u3, u7, 0x31));
    }

    // ---------------------------------------------------------------- register-tiled block products

    /// <summary>C (rows × cols, row stride ldc) = A (rows × depth, row stride lda) · Bᵀ, where bt holds Bᵀ as depth rows
    /// of ldb floats. rows is a multiple of 4 and cols of 2 vectors: tiles of 4 rows × 2 vectors. Columns that no row
    /// of a tile sees are left unwritten.</summary>
    private static void ScoreTiles<V>(float* a, int lda, float* bt, int ldb, float* c, int ldc, int rows, int cols, int depth,
        in KeyVisibility seen) where V : struct, IVec<V>
    {
        int w = V.Count;
        for (int i = 0; i < rows; i += 4)
        {
            float* a0 = a + (long)i * lda, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda;
            int tileCols = Math.Min(cols, RoundUp(seen.Keys(i + 3), 2 * w));
            for (int j = 0; j < tileCols; j += 2 * w)
            {
                V c00 = V.Splat(0f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
                float* bp = bt + j;
                for (int d = 0; d < depth; d++, bp += ldb)
                {
                    var b0 = V.Load(bp);
                    var b1 = V.Load(bp + w);
                    var x = V.Splat(a0[d]); V.AddProduct(ref c00, x, b0); V.AddProduct(ref c01, x, b1);
                    x = V.Splat(a1[d]); V.AddProduct(ref c10, x, b0); V.AddProduct(ref c11, x, b1);
                    x = V.Splat(a2[d]); V.AddProduct(ref c20, x, b0); V.AddProduct(ref c21, x, b1);
                    x = V.Splat(a3[d]); V.AddProduct(ref c30, x, b0); V.AddProduct(ref c31, x, b1);
                }
                float* cp = c + (long)i * ldc + j;
                V.Store(cp, c00); V.Store(cp + w, c01); cp += ldc;
                V.Store(cp, c10); V.Store(cp + w, c11); cp += ldc;
                V.Store(cp, c20); V.Store(cp + w, c21); cp += ldc;
                V.Store(cp, c30); V.Store(cp + w, c31);
            }
        }
    }

    /// <summary>C (rows × Dp, row stride Dp) += P (rows × keys, row stride ldp) · B (keys × Dp), where a tile of rows
    /// stops at the last key it sees (P is zero beyond). rows is a multiple of 4, Dp of 16: tiles of 4 rows × 2
    /// vectors, and 4 rows × 1 vector for the last vector of an odd count.</summary>
    private static void ProductTiles<V>(float* p, int ldp, float* b, float* c, int rows, int Dp, in KeyVisibility seen) where V : struct, IVec<V>
    {
        int w = V.Count;
        for (int i = 0; i < rows; i += 4)
        {
            int inner = seen.Keys(i + 3);
            float* p0 = p + (long)i * ldp, p1 = p0 + ldp, p2 = p1 + ldp, p3 = p2 + ldp;
            float* c0 = c + (long)i * Dp, c1 = c0 + Dp, c2 = c1 + Dp, c3 = c2 + Dp;
            int d = 0;
            for (; d + 2 * w <= Dp; d += 2 * w)
            {
                V a00 = V.Load(c0 + d), a01 = V.Load(c0 + d + w), a10 = V.Load(c1 + d), a11 = V.Load(c1 + d + w);
                V a20 = V.Load(c2 + d), a21 = V.Load(c2 + d + w), a30 = V.Load(c3 + d), a31 = V.Load(c3 + d + w);
                float* bp = b + d;
                for (int t = 0; t < inner; t++, bp += Dp)
                {
                    var b0 = V.Load(bp);
                    var b1 = V.Load(bp + w);
                    var x = V.Splat(p0[t]); V.AddProduct(ref a00, x, b0); V.AddProduct(ref a01, x, b1);
                    x = V.Splat(p1[t]); V.AddProduct(ref a10, x, b0); V.AddProduct(ref a11, x, b1);
                    x = V.Splat(p2[t]); V.AddProduct(ref a20, x, b0); V.AddProduct(ref a21, x, b1);
                    x = V.Splat(p3[t]); V.AddProduct(ref a30, x, b0); V.AddProduct(ref a31, x, b1);
                }
                V.Store(c0 + d, a00); V.Store(c0 + d + w, a01); V.Store(c1 + d, a10); V.Store(c1 + d + w, a11);
                V.Store(c2 + d, a20); V.Store(c2 + d + w, a21); V.Store(c3 + d, a30); V.Store(c3 + d + w, a31);
            }
            for (; d < Dp; d += w)
            {
                V a0 = V.Load(c0 + d), a1 = V.Load(c1 + d), a2 = V.Load(c2 + d), a3 = V.Load(c3 + d);
                float* bp = b + d;
                for (int t = 0; t < inner; t++, bp += Dp)
                {
                    var b0 = V.Load(bp);
                    V.AddProduct(ref a0, V.Splat(p0[t]), b0);
                    V.AddProduct(ref a1, V.Splat(p1[t]), b0);
                    V.AddProduct(ref a2, V.Splat(p2[t]), b0);
                    V.AddProduct(ref a3, V.Splat(p3[t]), b0);
                }
                V.Store(c0 + d, a0); V.Store(c1 + d, a1); V.Store(c2 + d, a2); V.Store(c3 + d, a3);
            }
        }
    }

    /// <summary>C (cols × Dp, row stride Dp) += Pᵀ·B for P (inner × cols, row stride ldp) and B (inner × Dp), where a
    /// tile of keys starts at the first row that sees it (P is zero above). cols is a multiple of 4, Dp of 16: tiles of
    /// 4 rows of C × 2 vectors (or 1 for the last vector of an odd count).</summary>
    private static void TransposedProductTiles<V>(float* p, int ldp, float* b, float* c, int inner, int cols, int Dp, in KeyVisibility seen)
        where V : struct, IVec<V>
    {
        int w = V.Count;
        for (int j = 0; j < cols; j += 4)
        {
            int first = Math.Min(seen.FirstRowSeeing(j), inner);
            float* c0 = c + (long)j * Dp, c1 = c0 + Dp, c2 = c1 + Dp, c3 = c2 + Dp;
            int d = 0;
            for (; d + 2 * w <= Dp; d += 2 * w)
            {
                V a00 = V.Load(c0 + d), a01 = V.Load(c0 + d + w), a10 = V.Load(c1 + d), a11 = V.Load(c1 + d + w);
                V a20 = V.Load(c2 + d), a21 = V.Load(c2 + d + w), a30 = V.Load(c3 + d), a31 = V.Load(c3 + d + w);
                float* pp = p + (long)first * ldp + j, bp = b + (long)first * Dp + d;
                for (int t = first; t < inner; t++, pp += ldp, bp += Dp)
                {
                    var b0 = V.Load(bp);
                    var b1 = V.Load(bp + w);
                    var x = V.Splat(pp[0]); V.AddProduct(ref a00, x, b0); V.AddProduct(ref a01, x, b1);
                    x = V.Splat(pp[1]); V.AddProduct(ref a10, x, b0); V.AddProduct(ref a11, x, b1);
                    x = V.Splat(pp[2]); V.AddProduct(ref a20, x, b0); V.AddProduct(ref a21, x, b1);
                    x = V.Splat(pp[3]); V.AddProduct(ref a30, x, b0); V.AddProduct(ref a31, x, b1);
                }
                V.Store(c0 + d, a00); V.Store(c0 + d + w, a01); V.Store(c1 + d, a10); V.Store(c1 + d + w, a11);
                V.Store(c2 + d, a20); V.Store(c2 + d + w, a21); V.Store(c3 + d, a30); V.Store(c3 + d + w, a31);
            }
            for (; d < Dp; d += w)
            {
                V a0 = V.Load(c0 + d), a1 = V.Load(c1 + d), a2 = V.Load(c2 + d), a3 = V.Load(c3 + d);
                float* pp = p + (long)first * ldp + j, bp = b + (long)first * Dp + d;
                for (int t = first; t < inner; t++, pp += ldp, bp += Dp)
                {
                    var b0 = V.Load(bp);
                    V.AddProduct(ref a0, V.Splat(pp[0]), b0);
                    V.AddProduct(ref a1, V.Splat(pp[1]), b0);
                    V.AddProduct(ref a2, V.Splat(pp[2]), b0);
                    V.AddProduct(ref a3, V.Splat(pp[3]), b0);
                }
                V.Store(c0 + d, a0); V.Store(c1 + d, a1); V.Store(c2 + d, a2); V.Store(c3 + d, a3);
            }
        }
    }

    // ---------------------------------------------------------------- row helpers for the online softmax

    private static float RowMax<V>(float* s, int n) where V : struct, IVec<V>
    {
        int j = 0;
        float max = float.NegativeInfinity;
        if (n >= V.Count)
        {
            var m = V.Load(s);
            for (j = V.Count; j + V.Count <= n; j += V.Count) m = V.Max(m, V.Load(s + j));
            max = V.MaxAcross(m);
        }
        for (; j < n; j++) max = MathF.Max(max, s[j]);
        return max;
    }

    /// <summary>s[j] = exp(s[j] - max) over [0, n); returns their sum.</summary>
    private static float ExpRow<V>(float* s, int n, float max) where V : struct, IVec<V>
    {
        var m = V.Splat(max);
        var sum = V.Splat(0f);
        int j = 0;
        for (; j + V.Count <= n; j += V.Count)
        {
            var e = FastExp.Exp(V.Load(s + j) - m);
            V.Store(s + j, e);
            sum += e;
        }
        float total = V.SumAcross(sum);
        for (; j < n; j++)
        {
            s[j] = MathF.Exp(s[j] - max);
            total += s[j];
        }
        return total;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaleRow<V>(float* row, float factor, int n) where V : struct, IVec<V>
    {
        var f = V.Splat(factor);
        for (int d = 0; d < n; d += V.Count) V.Store(row + d, V.Load(row + d) * f);
    }

    /// <summary>Σ a[k]·b[k] over [0, n).</summary>
    private static float Dot<V>(float* a, float* b, int n) where V : struct, IVec<V>
    {
        var acc = V.Splat(0f);
        int k = 0;
        for (; k + V.Count <= n; k += V.Count) V.AddProduct(ref acc, V.Load(a + k), V.Load(b + k));
        float sum = V.SumAcross(acc);
        if (V.Count > V256.Count && k + V256.Count <= n)
        {
            sum += V256.SumAcross(V256.Load(a + k) * V256.Load(b + k));
            k += V256.Count;
        }
        for (; k < n; k++) sum += a[k] * b[k];
        return sum;
    }
}
