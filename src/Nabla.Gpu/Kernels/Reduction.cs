using ILGPU;

namespace Nabla.Gpu.Kernels;

/// <summary>Reductions over the middle dimension of (outer, r, inner): one thread per output (o, i), whose reads of
/// consecutive i are coalesced across the threads of a warp. A sum accumulates in double like the reference, so
/// long reductions (r in the tens of thousands) stay accurate.</summary>
internal static class Reduction
{
    public static void Sum(Index1D index, ArrayView<float> x, ArrayView<float> y, int r, int inner)
    {
        long o = index / inner, i = index % inner;
        double acc = 0;
        for (int k = 0; k < r; k++) acc += x[(o * r + k) * inner + i];
        y[index] = (float)acc;
    }

    /// <summary>The first maximum, a NaN winning and ending the scan (as the reference does).</summary>
    public static void Max(Index1D index, ArrayView<float> x, ArrayView<float> y, ArrayView<int> argmax, int r, int inner, int hasArgmax)
    {
        long o = index / inner, i = index % inner;
        float best = float.NegativeInfinity;
        int at = 0;
        for (int k = 0; k < r; k++)
        {
            float v = x[(o * r + k) * inner + i];
            if (k == 0 || v > best || float.IsNaN(v)) { best = v; at = k; }
            if (float.IsNaN(best)) break;
        }
        y[index] = best;
        if (hasArgmax != 0) argmax[index] = at;
    }
}
