namespace Nabla;

/// <summary>Why a storage's memory went back to the pool before the storage itself became unreachable: the
/// message a later access gives.</summary>
internal enum ReleaseReason
{
    None,
    /// <summary>An intermediate gradient the autograd engine had consumed.</summary>
    ConsumedGradient,
    /// <summary>Working memory an op saved for its backward (or made inside its backward), done with.</summary>
    BackwardWorkingMemory,
    /// <summary>A parameter's gradient, dropped by ZeroGrad().</summary>
    ClearedGradient,
    /// <summary>Created inside a <see cref="MemoryScope"/> that has ended.</summary>
    ScopeEnded,
}

/// <summary>
/// A block of memory on a <see cref="Nabla.Device"/> that one or more tensors view: 64-byte-aligned host memory from
/// <see cref="BufferPool"/> for the CPU, otherwise memory of the device's <see cref="IDeviceRuntime"/> (whose
/// <see cref="Pointer"/> is a device address that host code must not dereference). Users never dispose it. It goes
/// back to its pool at the first of: the autograd engine releasing it (a gradient it consumed, or working
/// memory an op saved for its backward — storage no user code can see); <c>ZeroGrad()</c> dropping a gradient the
/// engine made; the end of the <see cref="MemoryScope"/> it was created in (unless it was kept); or, failing all of
/// those, the finalizer once no tensor views it. Reading a released storage is an error naming why it was released,
/// never stale data.
/// </summary>
public sealed unsafe class Storage
{
    private nint _pointer;
    private readonly long _capacity;
    private ReleaseReason _releasedBecause;

    /// <summary>Size in bytes that was asked for (the block itself may be a little larger).</summary>
    public long ByteLength { get; }

    /// <summary>True once something outside any <see cref="MemoryScope"/> owns this storage (a parameter, a module
    /// buffer, optimizer state, a parameter's gradient, a tensor passed to <see cref="MemoryScope.Keep"/>): scopes
    /// leave it alone.</summary>
    internal bool OutlivesScopes { get; set; }

    /// <summary>Where the memory lives.</summary>
    public Device Device { get; }

    internal Storage(long byteLength, Device device)
    {
        if (byteLength < 0) throw new ArgumentOutOfRangeException(nameof(byteLength));
        ByteLength = byteLength;
        Device = device;
        if (device.Runtime is { } runtime)
        {
            FreeDeferred();
            _pointer = runtime.Allocate(Math.Max(byteLength, 1), out _capacity);
        }
        else _pointer = BufferPool.Rent(Math.Max(byteLength, 1), out _capacity);
        MemoryScope.Track(this);
    }

    /// <summary>Address of the first byte (on the device, for a device storage). Throws if the block was already released.</summary>
    public nint Pointer
    {
        get
        {
            var p = _pointer;
            if (p == 0) throw new ObjectDisposedException(null, ReleasedMessage());
            return p;
        }
    }

    internal bool IsReleased => _pointer == 0;

    /// <summary>A new storage on <paramref name="device"/> holding a copy of all of this one's bytes (host↔device
    /// directly, between two devices through host memory), owned like this one.</summary>
    internal Storage CopyTo(Device device)
    {
        var copy = new Storage(ByteLength, device) { OutlivesScopes = OutlivesScopes };
        if (ByteLength == 0) return copy;
        var (from, to) = (Pointer, copy.Pointer);
        if (Device.Runtime is not { } source) device.Runtime!.CopyFromHost((void*)from, to, ByteLength);
        else if (device.Runtime is not { } target) source.CopyToHost(from, (void*)to, ByteLength);
        else
        {
            var staging = CopyTo(Nabla.Device.Cpu);
            target.CopyFromHost((void*)staging.Pointer, to, ByteLength);
            staging.Release(ReleaseReason.None);
        }
        GC.KeepAlive(this);
        return copy;
    }

    private string ReleasedMessage() => _releasedBecause switch
    {
        ReleaseReason.ConsumedGradient =>
            "This tensor's memory was released by the autograd engine: it was an intermediate gradient, used up by backward; keep a Clone() if you need it.",
        ReleaseReason.BackwardWorkingMemory =>
            "This tensor's memory was released by the autograd engine: it was working memory of an op's backward, which has run.",
        ReleaseReason.ClearedGradient =>
            "This tensor was a parameter's gradient and ZeroGrad() released it; read or Clone() gradients before zeroing them.",
        ReleaseReason.ScopeEnded =>
            "This tensor was created inside a MemoryScope that has ended, which returned its memory to the pool; pass it to MemoryScope.Keep() inside the scope to use it afterwards.",
        _ => "This tensor's memory was released.",
    };

    /// <summary>Returns the block to the pool now. Only for storage nobody else can see (or has been told is gone).</summary>
    internal void Release(ReleaseReason reason)
    {
        var p = Interlocked.Exchange(ref _pointer, 0);
        if (p != 0)
        {
            _releasedBecause = reason;
            if (Device.Runtime is { } runtime) runtime.Free(p, _capacity);
            else BufferPool.Return(p, _capacity);
            GC.SuppressFinalize(this);
        }
    }

    ~Storage()
    {
        var p = Interlocked.Exchange(ref _pointer, 0);
        if (p == 0) return;
        // A device runtime may only be driven from the threads that compute on it (a CUDA context is bound to its
        // thread), so the finalizer thread queues device memory for the next device allocation to free.
        if (Device.Runtime is { } runtime) DeferredFrees.Enqueue((runtime, p, _capacity));
        else BufferPool.Return(p, _capacity);
    }

    private static readonly System.Collections.Concurrent.ConcurrentQueue<(IDeviceRuntime Runtime, nint Address, long Capacity)> DeferredFrees = new();

    /// <summary>Frees the device memory the finalizer queued. Runs before each device allocation, and from
    /// <see cref="Device.Synchronize"/>.</summary>
    internal static void FreeDeferred()
    {
        while (DeferredFrees.TryDequeue(out var block)) block.Runtime.Free(block.Address, block.Capacity);
    }
}
