using Nabla.Data;

namespace Nabla.Text.Preprocessing;

/// <summary>Which end of a sequence truncation cuts, or padding fills.</summary>
public enum SequenceEnd { Start, End }

/// <summary>Truncation, padding and length bucketing of token-id sequences.</summary>
public static class SequenceBatching
{
    /// <summary>The sequence cut to at most <paramref name="maxLength"/> ids, dropping ids at <paramref name="cut"/>
    /// (the end keeps the beginning of a text, the start keeps its ending).</summary>
    public static int[] Truncate(int[] ids, int maxLength, SequenceEnd cut = SequenceEnd.End)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxLength);
        if (ids.Length <= maxLength) return ids;
        return cut == SequenceEnd.End ? ids[..maxLength] : ids[^maxLength..];
    }

    /// <summary>
    /// The sequences as one (B, T) int32 tensor, T the longest length, shorter rows filled with <paramref name="padId"/>
    /// at <paramref name="padAt"/>, and the length of every row.
    /// </summary>
    public static (Tensor Ids, int[] Lengths) Pad(IReadOnlyList<int[]> sequences, int padId = WordVocabulary.PadId, SequenceEnd padAt = SequenceEnd.End)
    {
        int b = sequences.Count;
        int t = sequences.Count == 0 ? 0 : sequences.Max(s => s.Length);
        var data = new int[b * t];
        Array.Fill(data, padId);
        var lengths = new int[b];
        for (int i = 0; i < b; i++)
        {
            var s = sequences[i];
            lengths[i] = s.Length;
            s.CopyTo(data, i * t + (padAt == SequenceEnd.End ? 0 : t - s.Length));
        }
        return (Tensor.FromArray(data, b, t), lengths);
    }

    /// <summary>
    /// Batches of sequence indices in which sequences of similar length go together, so padding is small: the indices
    /// are shuffled (by <paramref name="seed"/>), cut into pools of <paramref name="poolBatches"/> batches, each pool sorted
    /// by length (stable, so ties keep the shuffled order) and cut into batches of <paramref name="batchSize"/>; then the
    /// order of the batches is shuffled. Without a seed nothing is shuffled: one pool of everything, batches in length order.
    /// Every index appears in exactly one batch; only the last batch of a pool may be smaller.
    /// </summary>
    public static List<int[]> BucketByLength(IReadOnlyList<int> lengths, int batchSize, ulong? seed, int poolBatches = 50)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(poolBatches, 1);
        var order = Enumerable.Range(0, lengths.Count).ToArray();
        var random = seed is { } s ? new Random(unchecked((int)(s ^ (s >> 32)))) : null;
        random?.Shuffle(order);
        int pool = random == null ? Math.Max(1, order.Length) : batchSize * poolBatches;
        var batches = new List<int[]>();
        for (int start = 0; start < order.Length; start += pool)
        {
            var sorted = order.Skip(start).Take(pool).OrderBy(i => lengths[i]).ToArray();
            batches.AddRange(sorted.Chunk(batchSize));
        }
        if (random != null)
        {
            var shuffled = batches.ToArray();
            random.Shuffle(shuffled);
            return [.. shuffled];
        }
        return batches;
    }
}

/// <summary>
/// (token ids (B, T) int32, right-padded with <see cref="WordVocabulary.PadId"/>; labels (B) int32) batches of a labelled
/// text set, bucketed by length (<see cref="SequenceBatching.BucketByLength"/>) afresh every epoch when shuffled. Batch
/// number i is a pure function of (seed, i), so a resumed run sees the batches an uninterrupted one does. Without a
/// seed the batches come in length order, the same every epoch (for evaluation).
/// </summary>
public sealed class SequenceClassificationBatches : IBatchSource
{
    private readonly IReadOnlyList<int[]> sequences;
    private readonly IReadOnlyList<int> labels;
    private readonly int batchSize;
    private readonly ulong? seed;
    private int cachedEpoch = -1;
    private List<int[]> cachedBatches = [];

    /// <param name="sequences">Token ids of each text; an empty one is given a single &lt;unk&gt;, since a
    /// recurrent layer needs at least one step.</param>
    public SequenceClassificationBatches(IReadOnlyList<int[]> sequences, IReadOnlyList<int> labels, int batchSize, ulong? seed)
    {
        if (sequences.Count != labels.Count) throw new ArgumentException($"{sequences.Count} sequences but {labels.Count} labels.");
        if (sequences.Count == 0) throw new ArgumentException("no sequences to batch.");
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        this.sequences = sequences.Select(s => s.Length == 0 ? [WordVocabulary.UnknownId] : s).ToArray();
        this.labels = labels;
        this.batchSize = batchSize;
        this.seed = seed;
        BatchesPerEpoch = Batches(0).Count;
    }

    public int Count => sequences.Count;
    public int BatchesPerEpoch { get; }

    public (Tensor Inputs, Tensor Targets) Batch(long index)
    {
        var batch = Batches((int)(index / BatchesPerEpoch))[(int)(index % BatchesPerEpoch)];
        var (ids, _) = SequenceBatching.Pad(batch.Select(i => sequences[i]).ToArray());
        return (ids, Tensor.FromArray(batch.Select(i => labels[i]).ToArray(), batch.Length));
    }

    /// <summary>The indices of the texts in each batch of epoch <paramref name="epoch"/>.</summary>
    public IReadOnlyList<int[]> Batches(int epoch)
    {
        if (epoch != cachedEpoch)
        {
            var lengths = sequences.Select(s => s.Length).ToArray();
            cachedBatches = SequenceBatching.BucketByLength(lengths, batchSize, seed is { } s ? s + (ulong)epoch * 0x9E3779B97F4A7C15UL : null);
            cachedEpoch = epoch;
        }
        return cachedBatches;
    }
}
