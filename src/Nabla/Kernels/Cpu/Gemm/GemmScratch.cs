using System.Runtime.InteropServices;

namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// One thread's packing buffers: 64-byte aligned native memory, allocated on the thread's first GEMM and grown only
/// when a larger blocking asks for it, so steady-state calls allocate nothing. The buffers are freed by the
/// finalizer once the thread has exited and its thread-static reference is gone.
/// </summary>
internal sealed unsafe class GemmScratch
{
    [ThreadStatic] private static GemmScratch? _current;

    private long _capacityA, _capacityB;

    public float* PackedA { get; private set; }
    public float* PackedB { get; private set; }

    /// <summary>A full MR × NR tile for the partial tiles at the matrix edges (the widest kernel is 12 × 32).</summary>
    public float* EdgeTile { get; } = Allocate(16 * 32);

    /// <summary>This thread's buffers, with room for at least the given number of floats.</summary>
    public static GemmScratch ForCurrentThread(long floatsA, long floatsB)
    {
        var scratch = _current ??= new GemmScratch();
        if (scratch._capacityA < floatsA)
        {
            NativeMemory.AlignedFree(scratch.PackedA);
            scratch.PackedA = Allocate(floatsA);
            scratch._capacityA = floatsA;
        }
        if (scratch._capacityB < floatsB)
        {
            NativeMemory.AlignedFree(scratch.PackedB);
            scratch.PackedB = Allocate(floatsB);
            scratch._capacityB = floatsB;
        }
        return scratch;
    }

    private static float* Allocate(long floats) => (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);

    ~GemmScratch()
    {
        NativeMemory.AlignedFree(PackedA);
        NativeMemory.AlignedFree(PackedB);
        NativeMemory.AlignedFree(EdgeTile);
    }
}
