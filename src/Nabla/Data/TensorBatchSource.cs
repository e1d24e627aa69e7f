using Nabla.Autograd;

namespace Nabla.Data;

/// <summary>
/// Batches of rows of two tensors with the same first dimension, as an <see cref="IBatchSource"/>: batch i is
/// batch i mod <see cref="BatchesPerEpoch"/> of epoch i / <see cref="BatchesPerEpoch"/>, and with a seed each
/// epoch visits the rows in its own shuffled order, drawn from (seed, epoch) alone. So batch i is a pure
/// function of i, and a resumed run sees the batches an uninterrupted one does. The last batch of an epoch
/// holds the remaining rows.
/// </summary>
public sealed class TensorBatchSource : IBatchSource
{
    private readonly Tensor _inputs, _targets;
    private readonly int[]? _intTargets; // index tensors are picked on the managed side (IndexSelect is for floats)
    private readonly ulong? _seed;
    private int _cachedEpoch = -1;
    private int[] _order = [];

    public TensorBatchSource(Tensor inputs, Tensor targets, int batchSize, ulong? shuffleSeed = null)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), "The batch size must be positive.");
        if (inputs.Size(0) != targets.Size(0)) throw new ArgumentException($"{inputs.Size(0)} inputs but {targets.Size(0)} targets.");
        if (inputs.Size(0) == 0) throw new ArgumentException("There are no rows to make batches of.");
        _inputs = inputs;
        _targets = targets;
        if (targets.DType == DType.Int32) _intTargets = targets.ToIntArray();
        BatchSize = batchSize;
        _seed = shuffleSeed;
    }

    public int BatchSize { get; }
    public int Count => _inputs.Size(0);
    public int BatchesPerEpoch => (Count + BatchSize - 1) / BatchSize;

    public (Tensor Inputs, Tensor Targets) Batch(long index)
    {
        int epoch = (int)(index / BatchesPerEpoch), start = (int)(index % BatchesPerEpoch) * BatchSize;
        var order = EpochOrder(epoch);
        int size = Math.Min(BatchSize, Count - start);
        return Rows(_inputs, _targets, _intTargets, order.AsSpan(start, size).ToArray());
    }

    private int[] EpochOrder(int epoch)
    {
        if (epoch == _cachedEpoch) return _order;
        _order = Enumerable.Range(0, Count).ToArray();
        if (_seed is { } seed) new Generator(seed + (ulong)epoch).Shuffle(_order.AsSpan());
        _cachedEpoch = epoch;
        return _order;
    }

    /// <summary>The given rows of inputs and targets (<paramref name="intTargets"/>: the targets' values when they are indices).</summary>
    internal static (Tensor, Tensor) Rows(Tensor inputs, Tensor targets, int[]? intTargets, int[] rows)
    {
        using var _ = GradMode.NoGrad();
        var index = Tensor.FromArray(rows);
        var x = inputs.IndexSelect(0, index).Contiguous();
        if (intTargets == null) return (x, targets.IndexSelect(0, index).Contiguous());
        int width = targets.Count / Math.Max(1, targets.Size(0));
        var picked = new int[rows.Length * width];
        for (int i = 0; i < rows.Length; i++) Array.Copy(intTargets, rows[i] * width, picked, i * width, width);
        var shape = targets.Shape.ToArray();
        shape[0] = rows.Length;
        return (x, Tensor.FromArray(picked, shape));
    }
}
