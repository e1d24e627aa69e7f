using ILGPU;
using Nabla.Kernels;

namespace Nabla.Gpu.Kernels;

/// <summary>An <see cref="AttentionLayout"/> as a kernel argument (plain fields).</summary>
internal struct AttentionArgs
{
    public int Heads, Tq, Tk, D, Causal;
    public float Scale;
    public long QB, QH, QT, KB, KH, KT, VB, VH, VT, OB, OH, OT;

    public AttentionArgs(in AttentionLayout l)
    {
        Heads = l.Heads; Tq = l.Tq; Tk = l.Tk; D = l.HeadDim; Causal = l.Causal ? 1 : 0; Scale = l.Scale;
        (QB, QH, QT) = (l.Q.B, l.Q.H, l.Q.T);
        (KB, KH, KT) = (l.K.B, l.K.H, l.K.T);
        (VB, VH, VT) = (l.V.B, l.V.H, l.V.T);
        (OB, OH, OT) = (l.O.B, l.O.H, l.O.T);
    }

    public readonly int VisibleKeys(int i)
    {
        if (Causal == 0) return Tk;
        int v = i + Tk - Tq + 1;
        return v < 0 ? 0 : v > Tk ? Tk : v;
    }

    // bh = b·Heads + h
    public readonly long Q(int bh, int t) => bh / Heads * QB + bh % Heads * QH + t * QT;
    public readonly long K(int bh, int t) => bh / Heads * KB + bh % Heads * KH + t * KT;
    public readonly long V(int bh, int t) => bh / Heads * VB + bh % Heads * VH + t * VT;
    public readonly long O(int bh, int t) => bh / Heads * OB + bh % Heads * OH + t * OT;
}

/// <summary>
/// Scaled-dot-product attention, forward and backward, in two versions.
/// <list type="number">
/// <item>V1 (materialising): the (B·H, Tq, Tk) score matrix is written to a scratch buffer, softmaxed in place
/// (one thread per row, also writing the log-sum-exp), then multiplied by V; the backward likewise builds P, then
/// dV = Pᵀ·dO, dS = P∘(dO·Vᵀ - D) in place and dQ = dS·K, dK = dSᵀ·Q. One thread per output element throughout.
/// Memory O(T²) per head: 400 MB of scratch for GPT-2 at B=8, T=1024.</item>
/// <item>V2 (flash): no score matrix. Forward: a group of <see cref="FlashRows"/> threads handles that many queries
/// (one each); key/value tiles of <see cref="FlashKeys"/> rows are staged in shared memory and each thread keeps an
/// online softmax (running max m, running sum l, output accumulator rescaled by exp(m_old - m_new)) in local
/// memory. Backward (FlashAttention-2's split): one kernel per key tile accumulates dK and dV for its keys over all
/// queries that see them, another per query tile accumulates dQ; both recompute P from Q, K and the forward's
/// log-sum-exp, and use D_i = dO_i·O_i computed first. Tiles a causal mask hides entirely are skipped.
/// Head dimensions up to <see cref="MaxHeadDim"/>.</item>
/// </list>
/// </summary>
internal static class Attention
{
    public const int MaxHeadDim = 128, FlashRows = 64, FlashKeys = 32;

    // ---------------------------------------------------------------- v1: materialised scores

    /// <summary>s[bh, i, j] = scale·q_i·k_j, or -∞ where the causal mask hides key j.</summary>
    public static void V1Scores(Index1D index, ArrayView<float> q, ArrayView<float> k, ArrayView<float> s, AttentionArgs a)
    {
        int j = index % a.Tk, i = index / a.Tk % a.Tq, bh = index / a.Tk / a.Tq;
        if (j >= a.VisibleKeys(i)) { s[index] = float.NegativeInfinity; return; }
        long qi = a.Q(bh, i), kj = a.K(bh, j);
        float dot = 0;
        for (int d = 0; d < a.D; d++) dot += q[qi + d] * k[kj + d];
        s[index] = dot * a.Scale;
    }

    /// <summary>Row (bh, i) of s becomes softmax probabilities; lse[bh, i] = log Σ exp (-∞ for a row with no visible key).</summary>
    public static void V1SoftmaxRows(Index1D row, ArrayView<float> s, ArrayView<float> lse, AttentionArgs a)
    {
        int visible = a.VisibleKeys(row % a.Tq);
        long start = (long)row.X * a.Tk;
        float max = float.NegativeInfinity;
        for (int j = 0; j < visible; j++) max = MathF.Max(max, s[start + j]);
        float sum = 0;
        for (int j = 0; j < visible; j++) sum += MathF.Exp(s[start + j] - max);
        for (int j = 0; j < a.Tk; j++) s[start + j] = j < visible ? MathF.Exp(s[start + j] - max) / sum : 0f;
        lse[row] = visible == 0 ? float.NegativeInfinity : max + MathF.Log(sum);
    }

    /// <summary>o[bh, i, d] = Σ_j p[bh, i, j]·v[bh, j, d].</summary>
    public static void V1WeightedValues(Index1D index, ArrayView<float> p, ArrayView<float> v, ArrayView<float> o, AttentionArgs a)
    {
        int d = index % a.D, i = index / a.D % a.Tq, bh = index / a.D / a.Tq;
        long row = ((long)bh * a.Tq + i) * a.Tk;
        float acc = 0;
        for (int j = 0; j < a.VisibleKeys(i); j++) acc += p[row + j] * v[a.V(bh, j) + d];
        o[a.O(bh, i) + d] = acc;
    }

    /// <summary>p[bh, i, j] = exp(scale·q_i·k_j - lse_i) (0 where masked), recomputed for the backward.</summary>
    public static void V1Probabilities(Index1D index, ArrayView<float> q, ArrayView<float> k, ArrayView<float> lse, ArrayView<float> p, AttentionArgs a)
    {
        int j = index % a.Tk, i = index / a.Tk % a.Tq, bh = index / a.Tk / a.Tq;
        if (j >= a.VisibleKeys(i)) { p[index] = 0; return; }
        long qi = a.Q(bh, i), kj = a.K(bh, j);
        float dot = 0;
        for (int d = 0; d < a.D; d++) dot += q[qi + d] * k[kj + d];
        p[index] = MathF.Exp(dot * a.Scale - lse[(long)bh * a.Tq + i]);
    }

    /// <summary>D[bh, i] = dO_i·O_i (= Σ_j p_ij·dO_i·v_j), shared by both backward versions.</summary>
    public static void RowDots(Index1D row, ArrayView<float> o, ArrayView<float> dout, ArrayView<float> rowDot, AttentionArgs a)
    {
        int bh = row / a.Tq, i = row % a.Tq;
        long at = a.O(bh, i);
        float dot = 0;
        for (int d = 0; d < a.D; d++) dot += dout[at + d] * o[at + d];
        rowDot[row] = dot;
    }

    /// <summary>dv[bh, j, d] = Σ_i p_ij·dO[i, d].</summary>
    public static void V1ValueGradient(Index1D index, ArrayView<float> p, ArrayView<float> dout, ArrayView<float> dv, AttentionArgs a)
    {
        int d = index % a.D, j = index / a.D % a.Tk, bh = index / a.D / a.Tk;
        float acc = 0;
        for (int i = 0; i < a.Tq; i++) acc += p[((long)bh * a.Tq + i) * a.Tk + j] * dout[a.O(bh, i) + d];
        dv[a.V(bh, j) + d] = acc;
    }

    /// <summary>In place: p_ij becomes dS_ij = p_ij·(dO_i·v_j - D_i).</summary>
    public static void V1ScoreGradient(Index1D index, ArrayView<float> p, ArrayView<float> v, ArrayView<float> dout, ArrayView<float> rowDot, AttentionArgs a)
    {
        int j = index % a.Tk, i = index / a.Tk % a.Tq, bh = index / a.Tk / a.Tq;
        float pij = p[index];
        if (pij == 0) return;
        long oi = a.O(bh, i), vj = a.V(bh, j);
        float dp = 0;
        for (int d = 0; d < a.D; d++) dp += dout[oi + d] * v[vj + d];
        p[index] = pij * (dp - rowDot[(long)bh * a.Tq + i]);
    }

    /// <summary>dq[bh, i, d] = scale·Σ_j dS_ij·k[j, d].</summary>
    public static void V1QueryGradient(Index1D index, ArrayView<float> ds, ArrayView<float> k, ArrayView<float> dq, AttentionArgs a)
    {
        int d = index % a.D, i = index / a.D % a.Tq, bh = index / a.D / a.Tq;
        long row = ((long)bh * a.Tq + i) * a.Tk;
        float acc = 0;
        for (int j = 0; j < a.VisibleKeys(i); j++) acc += ds[row + j] * k[a.K(bh, j) + d];
        dq[a.Q(bh, i) + d] = acc * a.Scale;
    }

    /// <summary>dk[bh, j, d] = scale·Σ_i dS_ij·q[i, d].</summary>
    public static void V1KeyGradient(Index1D index, ArrayView<float> ds, ArrayView<float> q, ArrayView<float> dk, AttentionArgs a)
    {
        int d = index % a.D, j = index / a.D % a.Tk, bh = index / a.D / a.Tk;
        float acc = 0;
        for (int i = 0; i < a.Tq; i++) acc += ds[((long)bh * a.Tq + i) * a.Tk + j] * q[a.Q(bh, i) + d];
        dk[a.K(bh, j) + d] = acc * a.Scale;
    }

    // ---------------------------------------------------------------- v2: flash attention

    /// <summary>Grid (query tiles, B·H); group of <see cref="FlashRows"/> threads, thread = query.</summary>
    public static void V2FlashForward(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse, AttentionArgs a)
    {
        var keys = SharedMemory.Allocate<float>(FlashKeys * MaxHeadDim);
        var values = SharedMemory.Allocate<float>(FlashKeys * MaxHeadDim);
        var query = LocalMemory.Allocate<float>(MaxHeadDim);
        var acc = LocalMemory.Allocate<float>(MaxHeadDim);
        var scores = LocalMemory.Allocate<float>(FlashKeys);
        int t = Group.IdxX, bh = Grid.IdxY, first = Grid.IdxX * FlashRows, i = first + t, D = a.D;
        bool active = i < a.Tq;
        int visible = active ? a.VisibleKeys(i) : 0;
        // Keys any query of this group sees: the tile loop bound must be the same for every thread (barriers).
        int lastQuery = first + FlashRows - 1 < a.Tq ? first + FlashRows - 1 : a.Tq - 1;
        int groupKeys = a.VisibleKeys(lastQuery);
        long qi = active ? a.Q(bh, i) : 0;
        for (int d = 0; d < D; d++)
        {
            query[d] = active ? q[qi + d] * a.Scale : 0f;
            acc[d] = 0;
        }
        float m = float.NegativeInfinity, l = 0;
        for (int j0 = 0; j0 < groupKeys; j0 += FlashKeys)
        {
            int tileKeys = groupKeys - j0 < FlashKeys ? groupKeys - j0 : FlashKeys;
            for (int e = t; e < tileKeys * D; e += FlashRows)
            {
                int j = e / D, d = e % D;
                keys[j * MaxHeadDim + d] = k[a.K(bh, j0 + j) + d];
                values[j * MaxHeadDim + d] = v[a.V(bh, j0 + j) + d];
            }
            Group.Barrier();
            int mine = visible - j0 < tileKeys ? visible - j0 : tileKeys;
            if (mine > 0)
            {
                float tileMax = float.NegativeInfinity;
                for (int j = 0; j < mine; j++)
                {
                    float s = 0;
                    for (int d = 0; d < D; d++) s += query[d] * keys[j * MaxHeadDim + d];
                    scores[j] = s;
                    tileMax = MathF.Max(tileMax, s);
                }
                float mNew = MathF.Max(m, tileMax);
                float correction = MathF.Exp(m - mNew);
                l *= correction;
                for (int j = 0; j < mine; j++)
                {
                    scores[j] = MathF.Exp(scores[j] - mNew);
                    l += scores[j];
                }
                for (int d = 0; d < D; d++)
                {
                    float sum = acc[d] * correction;
                    for (int j = 0; j < mine; j++) sum += scores[j] * values[j * MaxHeadDim + d];
                    acc[d] = sum;
                }
                m = mNew;
            }
            Group.Barrier();
        }
        if (!active) return;
        long oi = a.O(bh, i);
        for (int d = 0; d < D; d++) o[oi + d] = visible == 0 ? 0f : acc[d] / l;
        lse[(long)bh * a.Tq + i] = visible == 0 ? float.NegativeInfinity : m + MathF.Log(l);
    }

    /// <summary>Grid (key tiles, B·H); group of <see cref="FlashRows"/> threads, thread = key j, owning dK_j and dV_j.</summary>
    public static void V2FlashKeyValueGradient(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse,
        ArrayView<float> dout, ArrayView<float> rowDot, ArrayView<float> dk, ArrayView<float> dv, AttentionArgs a)
    {
        var queries = SharedMemory.Allocate<float>(FlashKeys * MaxHeadDim);
        var grads = SharedMemory.Allocate<float>(FlashKeys * MaxHeadDim);
        var rowLse = SharedMemory.Allocate<float>(FlashKeys);
        var rowDots = SharedMemory.Allocate<float>(FlashKeys);
        var key = LocalMemory.Allocate<float>(MaxHeadDim);
        var value = LocalMemory.Allocate<float>(MaxHeadDim);
        var dKey = LocalMemory.Allocate<float>(MaxHeadDim);
        var dValue = LocalMemory.Allocate<float>(MaxHeadDim);
        int t = Group.IdxX, bh = Grid.IdxY, first = Grid.IdxX * FlashRows, j = first + t, D = a.D;
        bool active = j < a.Tk;
        long kj = active ? a.K(bh, j) : 0, vj = active ? a.V(bh, j) : 0;
        for (int d = 0; d < D; d++)
        {
            key[d] = active ? k[kj + d] : 0f;
            value[d] = active ? v[vj + d] : 0f;
            dKey[d] = 0;
            dValue[d] = 0;
        }
        // Query i sees key j when j < VisibleKeys(i), i.e. i ≥ j - (Tk - Tq) under the causal mask.
        int startQuery = a.Causal != 0 ? first - (a.Tk - a.Tq) : 0;
        if (startQuery < 0) startQuery = 0;
        startQuery -= startQuery % FlashKeys;
        for (int i0 = startQuery; i0 < a.Tq; i0 += FlashKeys)
        {
            int tileQueries = a.Tq - i0 < FlashKeys ? a.Tq - i0 : FlashKeys;
            for (int e = t; e < tileQueries * D; e += FlashRows)
            {
                int i = e / D, d = e % D;
                queries[i * MaxHeadDim + d] = q[a.Q(bh, i0 + i) + d];
                grads[i * MaxHeadDim + d] = dout[a.O(bh, i0 + i) + d];
            }
            for (int i = t; i < tileQueries; i += FlashRows)
            {
                rowLse[i] = lse[(long)bh * a.Tq + i0 + i];
                rowDots[i] = rowDot[(long)bh * a.Tq + i0 + i];
            }
            Group.Barrier();
            if (active)
            {
                for (int i = 0; i < tileQueries; i++)
                {
                    if (j >= a.VisibleKeys(i0 + i)) continue;
                    float s = 0, dp = 0;
                    for (int d = 0; d < D; d++)
                    {
                        s += queries[i * MaxHeadDim + d] * key[d];
                        dp += grads[i * MaxHeadDim + d] * value[d];
                    }
                    float p = MathF.Exp(s * a.Scale - rowLse[i]);
                    float ds = p * (dp - rowDots[i]) * a.Scale;
                    for (int d = 0; d < D; d++)
                    {
                        dValue[d] += p * grads[i * MaxHeadDim + d];
                        dKey[d] += ds * queries[i * MaxHeadDim + d];
                    }
                }
            }
            Group.Barrier();
        }
        if (!active) return;
        for (int d = 0; d < D; d++)
        {
            dk[kj + d] = dKey[d];
            dv[vj + d] = dValue[d];
        }
    }

    /// <summary>Grid (query tiles, B·H); group of <see cref="FlashRows"/> threads, thread = query i, owning dQ_i.</summary>
    public static void V2FlashQueryGradient(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse,
        ArrayView<float> dout, ArrayView<float> rowDot, ArrayView<float> dq, AttentionArgs a)
    {
        var keys = SharedMemory.Allocate<float>(FlashKeys * MaxHeadDim);
        var values = SharedMemory.Allocate<float>(FlashKeys * MaxHeadDim);
        var query = LocalMemory.Allocate<float>(MaxHeadDim);
        var grad = LocalMemory.Allocate<float>(MaxHeadDim);
        var dQuery = LocalMemory.Allocate<float>(MaxHeadDim);
        int t = Group.IdxX, bh = Grid.IdxY, first = Grid.IdxX * FlashRows, i = first + t, D = a.D;
        bool active = i < a.Tq;
        int visible = active ? a.VisibleKeys(i) : 0;
        int lastQuery = first + FlashRows - 1 < a.Tq ? first + FlashRows - 1 : a.Tq - 1;
        int groupKeys = a.VisibleKeys(lastQuery);
        long qi = active ? a.Q(bh, i) : 0, oi = active ? a.O(bh, i) : 0;
        for (int d = 0; d < D; d++)
        {
            query[d] = active ? q[qi + d] : 0f;
            grad[d] = active ? dout[oi + d] : 0f;
            dQuery[d] = 0;
        }
        float rowLse = active ? lse[(long)bh * a.Tq + i] : 0f, di = active ? rowDot[(long)bh * a.Tq + i] : 0f;
        for (int j0 = 0; j0 < groupKeys; j0 += FlashKeys)
        {
            int tileKeys = groupKeys - j0 < FlashKeys ? groupKeys - j0 : FlashKeys;
            for (int e = t; e < tileKeys * D; e += FlashRows)
            {
                int j = e / D, d = e % D;
                keys[j * MaxHeadDim + d] = k[a.K(bh, j0 + j) + d];
                values[j * MaxHeadDim + d] = v[a.V(bh, j0 + j) + d];
            }
            Group.Barrier();
            int mine = visible - j0 < tileKeys ? visible - j0 : tileKeys;
            for (int j = 0; j < mine; j++)
            {
                float s = 0, dp = 0;
                for (int d = 0; d < D; d++)
                {
                    s += query[d] * keys[j * MaxHeadDim + d];
                    dp += grad[d] * values[j * MaxHeadDim + d];
                }
                float ds = MathF.Exp(s * a.Scale - rowLse) * (dp - di) * a.Scale;
                for (int d = 0; d < D; d++) dQuery[d] += ds * keys[j * MaxHeadDim + d];
            }
            Group.Barrier();
        }
        if (!active) return;
        for (int d = 0; d < D; d++) dq[qi + d] = dQuery[d];
    }
}
