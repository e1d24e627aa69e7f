using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Nabla.Distributed;

/// <summary>The MPI library could not be loaded or initialised.</summary>
public sealed class MpiUnavailableException(string message) : Exception(message);

/// <summary>
/// <see cref="ICommunicator"/> over Open MPI's C library (libmpi.so.40), called through function pointers resolved
/// at run time: no native code of our own. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM) are the
/// addresses of exported globals, so they are looked up like functions; MPI_IN_PLACE is the address 1.
/// <para>Every MPI call runs on one thread of this class's own, the one that initialised MPI (MPI_THREAD_FUNNELED,
/// which every MPI library supports). Synchronous collectives hand their buffer to it and wait;
/// <see cref="AllReduceAsync"/> queues the work and returns, so a data-parallel trainer's gradient all-reduce runs
/// while backward goes on computing the next gradients.</para>
/// </summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private const string DefaultLibrary = "libmpi.so.40";
    private const int ThreadFunneled = 1;
    // One MPI call moves at most int.MaxValue elements; larger buffers go in pieces of this many.
    private const int MaxElementsPerCall = 1 << 30;

    private readonly string _libraryName;
    private readonly nint _library;
    private readonly nint _world, _float, _sum;
    private readonly delegate* unmanaged<int*, int> _initialized;
    private readonly delegate* unmanaged<int*, nint, int, int*, int> _initThread;
    private readonly delegate* unmanaged<nint, int*, int> _commRank, _commSize;
    private readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, int> _allReduce;
    private readonly delegate* unmanaged<nint, nint, int, nint, nint, nint, int> _reduceScatterBlock;
    private readonly delegate* unmanaged<nint, int, nint, nint, int, nint, nint, int> _allGather;
    private readonly delegate* unmanaged<nint, int, nint, int, nint, int> _broadcast;
    private readonly delegate* unmanaged<nint, int> _barrier;
    private readonly delegate* unmanaged<nint, int, int> _abort;
    private readonly delegate* unmanaged<int> _finalize;

    private readonly BlockingCollection<MpiRequest> _queue = new();
    private readonly Thread _thread;
    private bool _disposed;

    /// <summary>Loads libmpi and initialises MPI (under mpirun, as one rank of its job; otherwise as a single rank).</summary>
    public MpiCommunicator() : this(DefaultLibrary) { }

    /// <param name="library">The MPI library to load (tests pass a missing one).</param>
    internal MpiCommunicator(string library)
    {
        _libraryName = library;
        if (!NativeLibrary.TryLoad(library, out _library))
            throw new MpiUnavailableException($"{library} could not be loaded: install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev).");
        _world = Export("ompi_mpi_comm_world");
        _float = Export("ompi_mpi_float");
        _sum = Export("ompi_mpi_op_sum");
        _initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        _initThread = (delegate* unmanaged<int*, nint, int, int*, int>)Export("MPI_Init_thread");
        _commRank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
        _commSize = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");
        _allReduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, int>)Export("MPI_Allreduce");
        _reduceScatterBlock = (delegate* unmanaged<nint, nint, int, nint, nint, nint, int>)Export("MPI_Reduce_scatter_block");
        _allGather = (delegate* unmanaged<nint, int, nint, nint, int, nint, nint, int>)Export("MPI_Allgather");
        _broadcast = (delegate* unmanaged<nint, int, nint, int, nint, int>)Export("MPI_Bcast");
        _barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
        _abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");

        _thread = new Thread(Serve) { IsBackground = true, Name = "MPI" };
        _thread.Start();
        Run("MPI_Init_thread", () =>
        {
            int already;
            Check(_initialized(&already), "MPI_Initialized");
            if (already != 0) throw new MpiUnavailableException("MPI is already initialised in this process; create one MpiCommunicator per process.");
            int provided;
            Check(_initThread(null, 0, ThreadFunneled, &provided), "MPI_Init_thread");
            int rank, size;
            Check(_commRank(_world, &rank), "MPI_Comm_rank");
            Check(_commSize(_world, &size), "MPI_Comm_size");
            Rank = rank;
            Size = size;
        });
    }

    public int Rank { get; private set; }
    public int Size { get; private set; }

    private nint Export(string name) =>
        NativeLibrary.TryGetExport(_library, name, out var address) ? address
            : throw new MpiUnavailableException($"{_libraryName} has no symbol {name}: Nabla needs Open MPI 4 or later (its handles are exported globals).");

    private static void Check(int code, string call)
    {
        // With MPI's default error handler (errors are fatal) an error aborts the job before returning; this is for any other.
        if (code != 0) throw new InvalidOperationException($"{call} failed with MPI error code {code}.");
    }

    public void AllReduce(Span<float> buffer, ReduceOp op)
    {
        fixed (float* p = buffer)
        {
            nint address = (nint)p;
            int length = buffer.Length;
            Run("MPI_Allreduce", () => AllReduceNow(address, length, op));
        }
    }

    public CollectiveRequest AllReduceAsync(Tensor buffer, ReduceOp op)
    {
        int length = CollectiveChecks.Contiguous(buffer, "AllReduceAsync").Length;
        // Tensor memory is native and does not move; the tensor is kept reachable by the request until it completes.
        nint address = buffer.Storage.Pointer + (nint)buffer.Offset * sizeof(float);
        var request = new MpiRequest("MPI_Allreduce", () => { GC.KeepAlive(buffer); AllReduceNow(address, length, op); });
        Enqueue(request);
        return request;
    }

    private void AllReduceNow(nint address, int length, ReduceOp op)
    {
        for (int start = 0; start < length; start += MaxElementsPerCall)
        {
            int count = Math.Min(MaxElementsPerCall, length - start);
            Check(_allReduce(1 /* MPI_IN_PLACE */, address + (nint)start * sizeof(float), count, _float, _sum, _world), "MPI_Allreduce");
        }
        if (op == ReduceOp.Average)
        {
            var values = new Span<float>((void*)address, length);
            System.Numerics.Tensors.TensorPrimitives.Divide(values, Size, values); // vectorised; the same IEEE quotients as x / Size
        }
    }

    public void ReduceScatter(ReadOnlySpan<float> send, Span<float> receive)
    {
        CollectiveChecks.ReduceScatterLengths(Size, send.Length, receive.Length);
        fixed (float* s = send)
        fixed (float* d = receive)
        {
            nint from = (nint)s, to = (nint)d;
            int n = receive.Length;
            Run("MPI_Reduce_scatter_block", () => Check(_reduceScatterBlock(from, to, n, _float, _sum, _world), "MPI_Reduce_scatter_block"));
        }
    }

    public void AllGather(ReadOnlySpan<float> send, Span<float> receive)
    {
        CollectiveChecks.AllGatherLengths(Size, send.Length, receive.Length);
        fixed (float* s = send)
        fixed (float* d = receive)
        {
            nint from = (nint)s, to = (nint)d;
            int n = send.Length;
            Run("MPI_Allgather", () => Check(_allGather(from, n, _float, to, n, _float, _world), "MPI_Allgather"));
        }
    }

    public void Broadcast(Span<float> buffer, int root)
    {
        CollectiveChecks.Root(Size, root);
        fixed (float* p = buffer)
        {
            nint address = (nint)p;
            int length = buffer.Length;
            Run("MPI_Bcast", () =>
            {
                for (int start = 0; start < length; start += MaxElementsPerCall)
                    Check(_broadcast(address + (nint)start * sizeof(float), Math.Min(MaxElementsPerCall, length - start), _float, root, _world), "MPI_Bcast");
            });
        }
    }

    public void Barrier() => Run("MPI_Barrier", () => Check(_barrier(_world), "MPI_Barrier"));

    /// <summary>Ends the whole job at once (every rank, through mpirun) with <paramref name="exitCode"/>: what a rank
    /// that failed must do, since the others would otherwise wait for it in their next collective forever.</summary>
    public void Abort(int exitCode)
    {
        // Called from any thread: the MPI thread may be blocked in a collective that will never complete.
        _abort(_world, exitCode);
    }

    private void Run(string call, Action action)
    {
        var request = new MpiRequest(call, action);
        Enqueue(request);
        request.Wait();
    }

    private void Enqueue(MpiRequest request)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _queue.Add(request);
    }

    private void Serve()
    {
        foreach (var request in _queue.GetConsumingEnumerable()) request.Execute();
        _finalize();
    }

    /// <summary>Finalises MPI (after the collectives already started). Every rank must do so before it exits.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _queue.CompleteAdding();
        _thread.Join();
    }

    private sealed class MpiRequest(string call, Action action) : CollectiveRequest
    {
        private readonly ManualResetEventSlim _done = new();
        private Exception? _failure;

        public void Execute()
        {
            try { action(); }
            catch (Exception e) { _failure = e; }
            _done.Set();
        }

        public override void Wait()
        {
            _done.Wait();
            if (_failure is MpiUnavailableException unavailable) throw new MpiUnavailableException(unavailable.Message);
            if (_failure != null) throw new InvalidOperationException($"{call}: {_failure.Message}", _failure);
        }
    }
}
