namespace Nabla.Distributed;

/// <summary>How <see cref="ICommunicator.AllReduce"/> combines the ranks' values.</summary>
public enum ReduceOp
{
    Sum,
    /// <summary>The sum divided by the number of ranks.</summary>
    Average,
}

/// <summary>
/// The collective operations data-parallel training needs, over float buffers that the caller owns (tensor storage,
/// spans): nothing is copied on the way in or out. Every rank must call the same collectives in the same order with
/// the same lengths (as in MPI). <see cref="MpiCommunicator"/> runs them over Open MPI; <see cref="SingleProcessCommunicator"/>
/// and <see cref="ThreadCommunicator"/> stand in for it in one process (tests, a run without mpirun); a GPU
/// implementation (NCCL) would slot in here too.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's index, 0 to <see cref="Size"/> - 1. Rank 0 writes the run's files.</summary>
    int Rank { get; }

    /// <summary>Number of ranks taking part.</summary>
    int Size { get; }

    /// <summary>Replaces every rank's <paramref name="buffer"/> by the elementwise sum (or average) over the ranks.</summary>
    void AllReduce(Span<float> buffer, ReduceOp op);

    /// <summary>Starts <see cref="AllReduce"/> on a contiguous float32 tensor's memory and returns at once; the tensor
    /// must not be read or written until <see cref="CollectiveRequest.Wait"/> returns. Requests complete in the order
    /// they were started.</summary>
    CollectiveRequest AllReduceAsync(Tensor buffer, ReduceOp op);

    /// <summary>Sums <paramref name="send"/> (<see cref="Size"/> × n elements) over the ranks and gives rank r the
    /// r-th block of n elements of the sum in <paramref name="receive"/> (n elements).</summary>
    void ReduceScatter(ReadOnlySpan<float> send, Span<float> receive);

    /// <summary>Concatenates every rank's <paramref name="send"/> (n elements each) in rank order into every rank's
    /// <paramref name="receive"/> (<see cref="Size"/> × n elements).</summary>
    void AllGather(ReadOnlySpan<float> send, Span<float> receive);

    /// <summary>Copies rank <paramref name="root"/>'s <paramref name="buffer"/> into every other rank's.</summary>
    void Broadcast(Span<float> buffer, int root);

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();
}

/// <summary>A collective started by <see cref="ICommunicator.AllReduceAsync"/>.</summary>
public abstract class CollectiveRequest
{
    /// <summary>Blocks until the operation has completed (rethrowing its failure, if it failed).</summary>
    public abstract void Wait();

    /// <summary>A request that has already completed (communicators that run collectives synchronously).</summary>
    public static CollectiveRequest Completed { get; } = new CompletedRequest();

    private sealed class CompletedRequest : CollectiveRequest
    {
        public override void Wait() { }
    }
}

internal static class CollectiveChecks
{
    public static void ReduceScatterLengths(int size, int send, int receive)
    {
        if ((long)receive * size != send)
            throw new ArgumentException($"ReduceScatter: the send buffer holds {send} elements; it must hold ranks ({size}) × the receive buffer's {receive}.");
    }

    public static void AllGatherLengths(int size, int send, int receive)
    {
        if ((long)send * size != receive)
            throw new ArgumentException($"AllGather: the receive buffer holds {receive} elements; it must hold ranks ({size}) × the send buffer's {send}.");
    }

    public static void Root(int size, int root)
    {
        if (root < 0 || root >= size) throw new ArgumentOutOfRangeException(nameof(root), $"Broadcast: root rank {root} is not among the {size} ranks.");
    }

    public static Span<float> Contiguous(Tensor t, string op)
    {
        if (!t.IsContiguous || t.DType != DType.Float32) throw new ArgumentException($"{op}: needs a contiguous float32 tensor, got {t.DType} {t.ShapeString}.");
        t.RequireHost(op); // the communicators exchange host memory
        return t.AsSpan();
    }
}
