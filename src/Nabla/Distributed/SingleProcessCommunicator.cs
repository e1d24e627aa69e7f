namespace Nabla.Distributed;

/// <summary>One rank alone: every collective leaves the data as it is (what training without mpirun uses).</summary>
public sealed class SingleProcessCommunicator : ICommunicator
{
    public int Rank => 0;
    public int Size => 1;

    public void AllReduce(Span<float> buffer, ReduceOp op) { }

    public CollectiveRequest AllReduceAsync(Tensor buffer, ReduceOp op)
    {
        CollectiveChecks.Contiguous(buffer, "AllReduceAsync");
        return CollectiveRequest.Completed;
    }

    public void ReduceScatter(ReadOnlySpan<float> send, Span<float> receive)
    {
        CollectiveChecks.ReduceScatterLengths(1, send.Length, receive.Length);
        send.CopyTo(receive);
    }

    public void AllGather(ReadOnlySpan<float> send, Span<float> receive)
    {
        CollectiveChecks.AllGatherLengths(1, send.Length, receive.Length);
        send.CopyTo(receive);
    }

    public void Broadcast(Span<float> buffer, int root) => CollectiveChecks.Root(1, root);

    public void Barrier() { }

    public void Dispose() { }
}
