using System.Runtime.InteropServices;

namespace Nabla;

/// <summary>
/// Recycles 64-byte-aligned native buffers so that training loops, which allocate tensors of the same
/// sizes every step, do not go back to the operating system (or make the GC work) for each of them.
/// Sizes are rounded up to size classes of at most 12.5 % slack, so a buffer released by one step is found
/// by the next. Thread-safe: buffers come back from the finalizer thread as well as from the engine.
/// </summary>
public static unsafe class BufferPool
{
    public const int Alignment = 64;
    private static readonly object Gate = new();
    private static readonly Dictionary<long, Stack<nint>> Free = new();
    private static long _pooledBytes;
    private static long _liveBytes;
    private static long _peakLiveBytes;
    private static long _osAllocations;

    /// <summary>Upper bound on bytes kept idle in the pool; beyond it, returned buffers are freed.
    /// Defaults to 8 GiB or the NABLA_POOL_MB environment variable.</summary>
    public static long MaxPooledBytes { get; set; } =
        long.TryParse(Environment.GetEnvironmentVariable("NABLA_POOL_MB"), out var mb) ? mb << 20 : 8L << 30;

    /// <summary>Bytes currently handed out to live storages.</summary>
    public static long LiveBytes => Interlocked.Read(ref _liveBytes);
    /// <summary>Largest value <see cref="LiveBytes"/> reached since the last <see cref="ResetPeak"/>.</summary>
    public static long PeakLiveBytes => Interlocked.Read(ref _peakLiveBytes);
    /// <summary>Bytes idle in the pool, waiting to be reused.</summary>
    public static long PooledBytes => Interlocked.Read(ref _pooledBytes);
    /// <summary>How many times the pool had to ask the operating system for memory.</summary>
    public static long OsAllocations => Interlocked.Read(ref _osAllocations);

    public static void ResetPeak() => Interlocked.Exchange(ref _peakLiveBytes, LiveBytes);

    /// <summary>Rounds a request to its size class: multiples of 64 bytes below 4 KiB, then 8 classes per power of two.</summary>
    internal static long SizeClass(long bytes)
    {
        if (bytes <= 4096) return Math.Max(Alignment, (bytes + Alignment - 1) & ~(long)(Alignment - 1));
        int log = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)(bytes - 1));
        long step = 1L << (log - 3);
        return (bytes + step - 1) & ~(step - 1);
    }

    internal static nint Rent(long bytes, out long capacity)
    {
        capacity = SizeClass(bytes);
        nint p = 0;
        lock (Gate)
        {
            if (Free.TryGetValue(capacity, out var stack) && stack.Count > 0)
            {
                p = stack.Pop();
                _pooledBytes -= capacity;
            }
        }
        if (p == 0)
        {
            p = (nint)NativeMemory.AlignedAlloc((nuint)capacity, Alignment);
            if (p == 0) throw new OutOfMemoryException($"Nabla could not allocate {capacity:N0} bytes for a tensor.");
            GC.AddMemoryPressure(capacity);
            Interlocked.Increment(ref _osAllocations);
        }
        long live = Interlocked.Add(ref _liveBytes, capacity);
        long peak;
        while (live > (peak = Interlocked.Read(ref _peakLiveBytes)) &&
               Interlocked.CompareExchange(ref _peakLiveBytes, live, peak) != peak) { }
        return p;
    }

    internal static void Return(nint p, long capacity)
    {
        Interlocked.Add(ref _liveBytes, -capacity);
        lock (Gate)
        {
            if (_pooledBytes + capacity <= MaxPooledBytes)
            {
                if (!Free.TryGetValue(capacity, out var stack)) Free[capacity] = stack = new Stack<nint>();
                stack.Push(p);
                _pooledBytes += capacity;
                return;
            }
        }
        NativeMemory.AlignedFree((void*)p);
        GC.RemoveMemoryPressure(capacity);
    }

    /// <summary>Frees every idle buffer back to the operating system.</summary>
    public static void Trim()
    {
        List<(nint, long)> toFree = new();
        lock (Gate)
        {
            foreach (var (cap, stack) in Free)
                while (stack.Count > 0) toFree.Add((stack.Pop(), cap));
            _pooledBytes = 0;
        }
        foreach (var (p, cap) in toFree)
        {
            NativeMemory.AlignedFree((void*)p);
            GC.RemoveMemoryPressure(cap);
        }
    }
}
