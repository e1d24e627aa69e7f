using ILGPU;

namespace Nabla.Gpu.Kernels;

/// <summary>Embedding lookup, one thread per output element (consecutive threads copy consecutive columns of one
/// row: coalesced), and its backward, which scatters with atomic adds because several positions may share a token.</summary>
internal static class Embedding
{
    /// <summary>An index outside [0, rows) records position + 1 in <paramref name="error"/> (the smallest wins) for the host to report.</summary>
    public static void Forward(Index1D index, ArrayView<float> table, ArrayView<int> idx, ArrayView<float> y, ArrayView<int> error, int dim, int rows)
    {
        int i = index / dim, d = index % dim;
        int row = idx[i];
        if ((uint)row >= (uint)rows)
        {
            Atomic.Min(ref error[0], i + 1);
            return;
        }
        y[index] = table[(long)row * dim + d];
    }

    public static void Backward(Index1D index, ArrayView<float> dy, ArrayView<int> idx, ArrayView<float> dtable, int dim)
    {
        int i = index / dim, d = index % dim;
        Atomic.Add(ref dtable[(long)idx[i] * dim + d], dy[index]);
    }
}
