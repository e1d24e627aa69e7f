namespace Nabla;

/// <summary>
/// A block of 64-byte-aligned native memory that one or more tensors view. Users never dispose it: when the
/// last tensor viewing it becomes unreachable the finalizer hands the block back to <see cref="BufferPool"/>,
/// and the autograd engine releases the gradient buffers it owns as soon as backward is done with them.
/// </summary>
public sealed unsafe class Storage
{
    private nint _pointer;
    private readonly long _capacity;

    /// <summary>Size in bytes that was asked for (the block itself may be a little larger).</summary>
    public long ByteLength { get; }

    internal Storage(long byteLength)
    {
        if (byteLength < 0) throw new ArgumentOutOfRangeException(nameof(byteLength));
        ByteLength = byteLength;
        _pointer = BufferPool.Rent(Math.Max(byteLength, 1), out _capacity);
    }

    /// <summary>Address of the first byte. Throws if the engine already released the block.</summary>
    public nint Pointer
    {
        get
        {
            var p = _pointer;
            if (p == 0) throw new ObjectDisposedException(nameof(Storage), "This tensor's memory was released by the engine (it was an intermediate gradient); keep a Clone() if you need it.");
            return p;
        }
    }

    internal bool IsReleased => _pointer == 0;

    /// <summary>Returns the block to the pool now. Only the engine calls this, on buffers nobody else can see.</summary>
    internal void Release()
    {
        var p = Interlocked.Exchange(ref _pointer, 0);
        if (p != 0)
        {
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
