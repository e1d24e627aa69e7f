using System.Runtime.InteropServices;

namespace Nabla.Kernels.Cpu;

/// <summary>
/// Working memory for the convolution and attention kernels: one 64-byte-aligned native block per thread, grown
/// when a call needs more and then reused, so kernels in the steady state allocate nothing. A kernel takes it at
/// the start of a parallel task and owns it until the task ends (tasks never nest on one thread). The block is
/// freed by the finalizer once its thread has exited.
/// </summary>
internal sealed unsafe class ThreadScratch
{
    [ThreadStatic] private static ThreadScratch? _current;

    private float* _block;
    private long _capacity;

    /// <summary>This thread's block, with room for at least <paramref name="floats"/> floats (contents undefined).</summary>
    public static float* Floats(long floats)
    {
        var scratch = _current ??= new ThreadScratch();
        if (scratch._capacity < floats)
        {
            NativeMemory.AlignedFree(scratch._block);
            // Grow by half again, so sizes that creep up do not reallocate every call.
            long capacity = Math.Max(floats, scratch._capacity + scratch._capacity / 2);
            scratch._block = (float*)NativeMemory.AlignedAlloc((nuint)(capacity * sizeof(float)), 64);
            scratch._capacity = capacity;
        }
        return scratch._block;
    }

    /// <summary>Rounds a float count up to whole 64-byte lines, for carving aligned sub-buffers from one block.</summary>
    public static long Aligned(long floats) => (floats + 15) & ~15L;

    ~ThreadScratch() => NativeMemory.AlignedFree(_block);
}
