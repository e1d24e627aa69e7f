using Nabla.Data;

namespace Nabla.Distributed;

/// <summary>
/// Rank r's share of every batch of another source: rows [r·B/N, (r+1)·B/N) of the global batch of B rows. Since batch
/// i is a pure function of i, N ranks together see exactly the batches one rank would, and the average of their
/// mean-reduced losses' gradients is the gradient of the global batch's mean loss.
/// </summary>
public sealed class ShardedBatchSource : IBatchSource
{
    private readonly IBatchSource _global;

    public ShardedBatchSource(IBatchSource global, int rank, int ranks)
    {
        if (ranks < 1 || rank < 0 || rank >= ranks) throw new ArgumentOutOfRangeException(nameof(rank), $"Rank {rank} of {ranks} ranks.");
        _global = global;
        Rank = rank;
        Ranks = ranks;
    }

    public int Rank { get; }
    public int Ranks { get; }

    public (Tensor Inputs, Tensor Targets) Batch(long index)
    {
        var (x, y) = _global.Batch(index);
        int rows = x.Size(0);
        if (rows % Ranks != 0)
            throw new ArgumentException($"batch {index} has {rows} rows, which the {Ranks} ranks cannot share equally; choose a batch size divisible by the number of ranks.");
        int share = rows / Ranks;
        return (x.Narrow(0, Rank * share, share), y.Narrow(0, Rank * share, share));
    }
}
