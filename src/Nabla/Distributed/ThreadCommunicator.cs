namespace Nabla.Distributed;

/// <summary>
/// Several ranks in one process, one thread each: the ranks of a group made by <see cref="CreateGroup"/> meet at a
/// barrier in every collective and read each other's buffers directly. For fast tests of code that runs on several
/// ranks. Sums run over the ranks in rank order, so results are deterministic. A rank that does not arrive within
/// <see cref="Timeout"/> makes the others throw instead of hanging.
/// </summary>
public sealed unsafe class ThreadCommunicator : ICommunicator
{
    private sealed class Group(int size)
    {
        public readonly Barrier Barrier = new(size);
        public readonly nint[] Send = new nint[size];
        public readonly nint[] Receive = new nint[size];
        public readonly int[] Lengths = new int[size];
    }

    private readonly Group _group;

    private ThreadCommunicator(Group group, int rank, int size, TimeSpan timeout)
    {
        _group = group;
        Rank = rank;
        Size = size;
        Timeout = timeout;
    }

    /// <summary>The ranks 0 to <paramref name="size"/> - 1 of a new group; give each to its own thread. A rank waits
    /// at most <paramref name="timeout"/> (default 30 s) at a collective for the others.</summary>
    public static ThreadCommunicator[] CreateGroup(int size, TimeSpan? timeout = null)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), $"A group needs at least one rank, got {size}.");
        var group = new Group(size);
        return Enumerable.Range(0, size).Select(r => new ThreadCommunicator(group, r, size, timeout ?? TimeSpan.FromSeconds(30))).ToArray();
    }

    public int Rank { get; }
    public int Size { get; }

    /// <summary>How long a rank waits at a collective for the others before giving up.</summary>
    public TimeSpan Timeout { get; }

    public void AllReduce(Span<float> buffer, ReduceOp op)
    {
        fixed (float* p = buffer)
        {
            Publish(p, null, buffer.Length, "AllReduce");
            // Each rank reduces its own slice of the elements (reading everybody's input), then, once all have
            // read, writes the result into every rank's buffer: in place, with no rank overwriting an input still needed.
            int n = buffer.Length;
            int start = (int)((long)n * Rank / Size), end = (int)((long)n * (Rank + 1) / Size);
            var result = new float[end - start];
            for (int i = start; i < end; i++)
            {
                float sum = 0;
                for (int r = 0; r < Size; r++) sum += ((float*)_group.Send[r])[i];
                result[i - start] = op == ReduceOp.Average ? sum / Size : sum;
            }
            Meet("AllReduce");
            for (int r = 0; r < Size; r++) result.CopyTo(new Span<float>((float*)_group.Send[r] + start, end - start));
            Meet("AllReduce");
        }
    }

    public CollectiveRequest AllReduceAsync(Tensor buffer, ReduceOp op)
    {
        AllReduce(CollectiveChecks.Contiguous(buffer, "AllReduceAsync"), op);
        return CollectiveRequest.Completed;
    }

    public void ReduceScatter(ReadOnlySpan<float> send, Span<float> receive)
    {
        CollectiveChecks.ReduceScatterLengths(Size, send.Length, receive.Length);
        fixed (float* s = send)
        fixed (float* d = receive)
        {
            Publish(s, d, receive.Length, "ReduceScatter");
            int n = receive.Length;
            for (int i = 0; i < n; i++)
            {
                float sum = 0;
                for (int r = 0; r < Size; r++) sum += ((float*)_group.Send[r])[Rank * n + i];
                d[i] = sum;
            }
            Meet("ReduceScatter");
        }
    }

    public void AllGather(ReadOnlySpan<float> send, Span<float> receive)
    {
        CollectiveChecks.AllGatherLengths(Size, send.Length, receive.Length);
        fixed (float* s = send)
        fixed (float* d = receive)
        {
            Publish(s, d, send.Length, "AllGather");
            int n = send.Length;
            for (int r = 0; r < Size; r++) new ReadOnlySpan<float>((float*)_group.Send[r], n).CopyTo(new Span<float>(d + r * n, n));
            Meet("AllGather");
        }
    }

    public void Broadcast(Span<float> buffer, int root)
    {
        CollectiveChecks.Root(Size, root);
        fixed (float* p = buffer)
        {
            Publish(p, null, buffer.Length, "Broadcast");
            if (Rank != root) new ReadOnlySpan<float>((float*)_group.Send[root], buffer.Length).CopyTo(buffer);
            Meet("Broadcast");
        }
    }

    public void Barrier() => Meet("Barrier");

    /// <summary>Makes this rank's buffers visible to the others and waits until every rank has done the same;
    /// checks that all passed the same length, as MPI requires.</summary>
    private void Publish(float* send, float* receive, int length, string op)
    {
        _group.Send[Rank] = (nint)send;
        _group.Receive[Rank] = (nint)receive;
        _group.Lengths[Rank] = length;
        Meet(op);
        for (int r = 0; r < Size; r++)
            if (_group.Lengths[r] != length)
                throw new InvalidOperationException($"{op}: rank {Rank} passed {length} elements, rank {r} passed {_group.Lengths[r]}.");
    }

    private void Meet(string op)
    {
        if (!_group.Barrier.SignalAndWait(Timeout))
            throw new TimeoutException($"{op}: rank {Rank} waited {Timeout.TotalSeconds:0} s for the other ranks; one of them failed or stopped calling collectives.");
    }

    public void Dispose() { }
}
