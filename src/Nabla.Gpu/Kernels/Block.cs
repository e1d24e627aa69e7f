using ILGPU;

namespace Nabla.Gpu.Kernels;

/// <summary>Reductions across one thread group through shared memory (a tree of halving steps; the group size must be
/// a power of two, at most <see cref="MaxSize"/>). Plain shared memory and barriers rather than warp shuffles, so
/// the CPU accelerator runs the same code path as a GPU. Row kernels stride by the group size they were launched
/// with (<c>Group.DimX</c>): 256 threads on a GPU, fewer on the CPU accelerator, where every barrier synchronises
/// that many OS threads.</summary>
internal static class Block
{
    public const int MaxSize = 256;

    /// <summary>Σ over the group of each thread's <paramref name="value"/>; every thread gets the total.</summary>
    public static float Sum(float value, ArrayView<float> scratch)
    {
        int t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half >>= 1)
        {
            if (t < half) scratch[t] += scratch[t + half];
            Group.Barrier();
        }
        float total = scratch[0];
        Group.Barrier();
        return total;
    }

    /// <summary>Max over the group; NaN wins (as the reference's Math.Max does).</summary>
    public static float Max(float value, ArrayView<float> scratch)
    {
        int t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half >>= 1)
        {
            if (t < half) scratch[t] = NanMax(scratch[t], scratch[t + half]);
            Group.Barrier();
        }
        float total = scratch[0];
        Group.Barrier();
        return total;
    }

    public static float NanMax(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : a > b ? a : b;
}
