namespace Nabla.Kernels;

/// <summary>Where one (batch, head, time) row of an attention operand lies: element d of row (b, h, t) is at
/// b·B + h·H + t·T + d (the head dimension is contiguous).</summary>
public readonly record struct RowStrides(long B, long H, long T)
{
    public long Of(int b, int h, int t) => b * B + h * H + t * T;
}

/// <summary>
/// Shape and memory layout of a scaled-dot-product attention: queries (B, H, Tq, D), keys and values
/// (B, H, Tk, D), output (B, H, Tq, D), each with its own strides so that views of a packed QKV buffer or of
/// a KV cache need no copy. With <see cref="Causal"/>, query i sees keys j ≤ i + (Tk - Tq): the queries are
/// the last Tq positions of a sequence of Tk (Tq = Tk in training, Tq = 1 when decoding with a cache).
/// The log-sum-exp of each query's scores is laid out (B, H, Tq), contiguous.
/// </summary>
public readonly record struct AttentionLayout(int Batch, int Heads, int Tq, int Tk, int HeadDim, float Scale, bool Causal,
    RowStrides Q, RowStrides K, RowStrides V, RowStrides O)
{
    /// <summary>Number of keys query <paramref name="i"/> attends to.</summary>
    public int VisibleKeys(int i) => Causal ? Math.Clamp(i + Tk - Tq + 1, 0, Tk) : Tk;
}
