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

    private float* _packedA, _packedB, _edgeTile;
    private long _capacityA, _capacityB, _capacityTile;

    /// <summary>The packed block of A (MC × kc).</summary>
    public float* PackedA => _packedA;

    /// <summary>The packed block of B (kc × NC).</summary>
    public float* PackedB => _packedB;

    /// <summary>One full MR × NR kernel tile, written instead of C for the partial tiles at the matrix edges.</summary>
    public float* EdgeTile => _edgeTile;

    /// <summary>This thread's buffers, with room for at least the given number of floats.</summary>
    public static GemmScratch ForCurrentThread(long floatsA, long floatsB, int floatsTile)
    {
        var scratch = _current ??= new GemmScratch();
        Grow(ref scratch._packedA, ref scratch._capacityA, floatsA);
        Grow(ref scratch._packedB, ref scratch._capacityB, floatsB);
        Grow(ref scratch._edgeTile, ref scratch._capacityTile, floatsTile);
        return scratch;
    }

    private static void Grow(ref float* buffer, ref long capacity, long floats)
    {
        if (capacity >= floats) return;
        NativeMemory.AlignedFree(buffer);
        buffer = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
        capacity = floats;
    }

    ~GemmScratch()
    {
        NativeMemory.AlignedFree(_packedA);
        NativeMemory.AlignedFree(_packedB);
        NativeMemory.AlignedFree(_edgeTile);
    }
}
