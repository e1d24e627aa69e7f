using System.Runtime.InteropServices;

namespace Nabla.Bench;

/// <summary>Benchmark operands: aligned native memory filled with seeded uniform values in [-1, 1).</summary>
internal static unsafe class RandomMatrix
{
    public static float* Allocate(long count, int seed)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(float)), 64);
        var random = new Random(seed);
        for (long i = 0; i < count; i++) p[i] = (float)(random.NextDouble() * 2 - 1);
        return p;
    }
}
