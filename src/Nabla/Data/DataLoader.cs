namespace Nabla.Data;

/// <summary>
/// Batches of (inputs, targets) from two tensors with the same first dimension. With shuffling, every epoch
/// (every enumeration) uses a new permutation drawn from a generator seeded once, so runs are reproducible.
/// </summary>
public sealed class DataLoader : IEnumerable<(Tensor Inputs, Tensor Targets)>
{
    private readonly Tensor _inputs, _targets;
    private readonly int[]? _intTargets; // index tensors are picked on the managed side (IndexSelect is for floats)
    private readonly Generator _generator;

    public DataLoader(Tensor inputs, Tensor targets, int batchSize, bool shuffle = true, bool dropLast = false, ulong seed = 0)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), "The batch size must be positive.");
        if (inputs.Size(0) != targets.Size(0))
            throw new ArgumentException($"DataLoader: {inputs.Size(0)} inputs but {targets.Size(0)} targets.");
        _inputs = inputs;
        _targets = targets;
        if (targets.DType == DType.Int32) _intTargets = targets.ToIntArray();
        BatchSize = batchSize;
        Shuffle = shuffle;
        DropLast = dropLast;
        _generator = new Generator(seed);
    }

    public int BatchSize { get; }
    public bool Shuffle { get; }
    public bool DropLast { get; }
    public int Count => _inputs.Size(0);
    /// <summary>Batches per epoch.</summary>
    public int BatchCount => DropLast ? Count / BatchSize : (Count + BatchSize - 1) / BatchSize;

    public IEnumerator<(Tensor Inputs, Tensor Targets)> GetEnumerator()
    {
        var order = Enumerable.Range(0, Count).ToArray();
        if (Shuffle) _generator.Shuffle(order.AsSpan());
        for (int b = 0; b < BatchCount; b++)
        {
            int start = b * BatchSize, size = Math.Min(BatchSize, Count - start);
            yield return TensorBatchSource.Rows(_inputs, _targets, _intTargets, order[start..(start + size)]);
        }
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
