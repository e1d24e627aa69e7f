using ILGPU;
using Nabla.Kernels;

namespace Nabla.Gpu.Kernels;

/// <summary>The Winograd F(2×2, 3×3) transforms (see <see cref="Winograd"/>), naive: one thread per tile (input,
/// output and its adjoint) or per (out, in) channel pair (kernels), with the transform matrices as constants (a
/// kernel cannot read the managed arrays of <see cref="Winograd"/>). The 16 products between them are Gemm calls.</summary>
internal static class WinogradTransforms
{
    /// <summary>Bᵀ[a, r].</summary>
    private static float Bt(int a, int r)
    {
        switch (a * 4 + r)
        {
            case 0: case 5: case 6: case 10: case 13: return 1f;
            case 2: case 9: case 15: return -1f;
            default: return 0f;
        }
    }

    /// <summary>G[a, r] (4 × 3).</summary>
    private static float G(int a, int r)
    {
        switch (a * 3 + r)
        {
            case 0: case 11: return 1f;
            case 3: case 4: case 5: case 6: case 8: return 0.5f;
            case 7: return -0.5f;
            default: return 0f;
        }
    }

    /// <summary>Aᵀ[i, a] (2 × 4).</summary>
    private static float At(int i, int a)
    {
        switch (i * 4 + a)
        {
            case 0: case 1: case 2: case 5: return 1f;
            case 6: case 7: return -1f;
            default: return 0f;
        }
    }

    /// <summary>Thread per (n, c, tile row, tile column).</summary>
    public static void Input(Index1D index, ArrayView<float> x, ArrayView<float> v, Conv2dGeometry g, long slice)
    {
        int tw = index % g.TileCols, th = index / g.TileCols % g.TileRows, c = index / g.TileCols / g.TileRows % g.Channels;
        int n = index / g.TileCols / g.TileRows / g.Channels;
        var d = LocalMemory.Allocate<float>(16);
        for (int r = 0; r < 4; r++)
            for (int s = 0; s < 4; s++)
            {
                int ih = 2 * th - g.PadH + r, iw = 2 * tw - g.PadW + s;
                bool inside = ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width;
                d[r * 4 + s] = inside ? x[(((long)n * g.Channels + c) * g.Height + ih) * g.Width + iw] : 0f;
            }
        long p = ((long)n * g.TileRows + th) * g.TileCols + tw;
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++)
            {
                float sum = 0;
                for (int r = 0; r < 4; r++)
                    for (int s = 0; s < 4; s++) sum += Bt(a, r) * d[r * 4 + s] * Bt(b, s);
                v[(a * 4 + b) * slice + (long)c * g.Tiles + p] = sum;
            }
    }

    /// <summary>Thread per (n, o, tile row, tile column).</summary>
    public static void Output(Index1D index, ArrayView<float> m, ArrayView<float> bias, ArrayView<float> y, Conv2dGeometry g, long slice, int hasBias)
    {
        int tw = index % g.TileCols, th = index / g.TileCols % g.TileRows, o = index / g.TileCols / g.TileRows % g.OutChannels;
        int n = index / g.TileCols / g.TileRows / g.OutChannels;
        int OH = g.OutHeight, OW = g.OutWidth;
        long p = ((long)n * g.TileRows + th) * g.TileCols + tw;
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
            {
                int oh = 2 * th + i, ow = 2 * tw + j;
                if (oh >= OH || ow >= OW) continue;
                float sum = hasBias != 0 ? bias[o] : 0f;
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++) sum += At(i, a) * m[(a * 4 + b) * slice + (long)o * g.Tiles + p] * At(j, b);
                y[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow] = sum;
            }
    }

    /// <summary>Thread per (n, o, tile row, tile column).</summary>
    public static void OutputAdjoint(Index1D index, ArrayView<float> dy, ArrayView<float> dm, Conv2dGeometry g, long slice)
    {
        int tw = index % g.TileCols, th = index / g.TileCols % g.TileRows, o = index / g.TileCols / g.TileRows % g.OutChannels;
        int n = index / g.TileCols / g.TileRows / g.OutChannels;
        int OH = g.OutHeight, OW = g.OutWidth;
        long p = ((long)n * g.TileRows + th) * g.TileCols + tw;
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++)
            {
                float sum = 0;
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++)
                    {
                        int oh = 2 * th + i, ow = 2 * tw + j;
                        if (oh < OH && ow < OW) sum += At(i, a) * dy[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow] * At(j, b);
                    }
                dm[(a * 4 + b) * slice + (long)o * g.Tiles + p] = sum;
            }
    }

    /// <summary>Thread per (o, c): u[ξ, o, c] = (G w Gᵀ)[ξ], or for the input gradient u[ξ, c, o] from w rotated by 180°.</summary>
    public static void Kernels(Index1D index, ArrayView<float> w, ArrayView<float> u, int outChannels, int channels, int inputGradient)
    {
        int o = index / channels, c = index % channels;
        long k = (long)index.X * 9, pairs = (long)outChannels * channels;
        long at = inputGradient != 0 ? (long)c * outChannels + o : index;
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++)
            {
                float sum = 0;
                for (int r = 0; r < 3; r++)
                    for (int s = 0; s < 3; s++) sum += G(a, r) * w[k + (inputGradient != 0 ? 8 - (r * 3 + s) : r * 3 + s)] * G(b, s);
                u[(a * 4 + b) * pairs + at] = sum;
            }
    }

    /// <summary>Thread per (o, c) pair: dw = Gᵀ du G.</summary>
    public static void KernelGradient(Index1D pair, ArrayView<float> du, ArrayView<float> dw, int pairs)
    {
        for (int r = 0; r < 3; r++)
            for (int s = 0; s < 3; s++)
            {
                float sum = 0;
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++) sum += G(a, r) * du[(a * 4 + b) * (long)pairs + pair] * G(b, s);
                dw[(long)pair.X * 9 + r * 3 + s] = sum;
            }
    }
}
