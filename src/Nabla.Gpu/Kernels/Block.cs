using ILGPU;

namespace Nabla.Gpu.Kernels;

/// <summary>Reductions across one thread group of <see cref="Size"/> threads through shared memory (a tree of
/// halving steps). Plain shared memory and barriers rather than warp shuffles, so the CPU accelerator runs the
/// same code path as a GPU.</summary>
internal static class Block
{
    public const int Size = 256;

    /// <summary>Σ over the group of each thread's <paramref name="value"/>; every thread gets the total.</summary>
    public static float Sum(float value, ArrayView<float> scratch)
    {
        int t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (int half = Size / 2; half > 0; half >>= 1)
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
        for (int half = Size / 2; half > 0; half >>= 1)
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
