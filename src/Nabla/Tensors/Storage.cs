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
/// A block of 64-byte-aligned native memory that one or more tensors view. Users never dispose it. It goes back to
/// <see cref="BufferPool"/> at the first of: the autograd engine releasing it (a gradient it consumed, or working
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

    internal Storage(long byteLength)
    {
        if (byteLength < 0) throw new ArgumentOutOfRangeException(nameof(byteLength));
        ByteLength = byteLength;
        _pointer = BufferPool.Rent(Math.Max(byteLength, 1), out _capacity);
        MemoryScope.Track(this);
    }

    /// <summary>Address of the first byte. Throws if the block was already released.</summary>
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
            BufferPool.Return(p, _capacity);
            GC.SuppressFinalize(this);
        }
    }

    ~Storage()
    {
        var p = Interlocked.Exchange(ref _pointer, 0);
        if (p != 0) BufferPool.Return(p, _capacity);
    }
}
