namespace Nabla.Kernels;

/// <summary>
/// Winograd's minimal filtering F(2×2, 3×3) (Lavin &amp; Gray, "Fast Algorithms for Convolutional Neural Networks",
/// 2016): a 2×2 block of a 3×3 convolution's output is Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, where d is the 4×4 input patch
/// the block reads and g the 3×3 kernel: 16 multiplications instead of 36. Summed over input channels, the 16
/// products become 16 independent matrix products (one per element ξ = 4a + b of the 4×4 tile), which is where the
/// time goes; the transforms around them are additions.
/// <para>
/// Tile buffers are (16, rows, tiles): ξ, then the channel, then the tile p = (n·TileRows + th)·TileCols + tw (see
/// <see cref="Conv2dGeometry.Tiles"/>), with the 16 slices <see cref="SliceStride"/> floats apart. The kernel transforms here are small (one 4×4 per channel pair) and shared by
/// every backend; the tile transforms are backend kernels (<see cref="IKernelBackend.WinogradInput"/> and its kin).
/// </para>
/// </summary>
public static unsafe class Winograd
{
    /// <summary>Number of elements of a transformed tile.</summary>
    public const int TileElements = 16;

    /// <summary>Floats from one ξ slice of a tile buffer of rows × tiles to the next: rows·tiles rounded up to 4 KiB plus
    /// one cache line. A transform writes (or reads) the same place in all 16 slices at once; at a stride that is a
    /// multiple of 4 KiB those 16 streams would all map to the same cache set and evict each other.</summary>
    public static long SliceStride(int rows, int tiles) => (((long)rows * tiles + 1023) & ~1023L) + 16;

    /// <summary>Bᵀ: the input transform (rows a, columns r).</summary>
    public static readonly float[,] InputMatrix = { { 1, 0, -1, 0 }, { 0, 1, 1, 0 }, { 0, -1, 1, 0 }, { 0, 1, 0, -1 } };

    /// <summary>G: the kernel transform (4 × 3).</summary>
    public static readonly float[,] KernelMatrix = { { 1, 0, 0 }, { 0.5f, 0.5f, 0.5f }, { 0.5f, -0.5f, 0.5f }, { 0, 0, 1 } };

    /// <summary>Aᵀ: the output transform (2 × 4).</summary>
    public static readonly float[,] OutputMatrix = { { 1, 1, 1, 0 }, { 0, 1, -1, -1 } };

    /// <summary>u[ξ, o, c] = (G w[o, c] Gᵀ)[ξ] for a weight (O, C, 3, 3); with <paramref name="transposeFlip"/>, the
    /// kernel of the input gradient instead: u[ξ, c, o] from w[o, c] rotated by 180°.</summary>
    public static void TransformKernels(float* w, int outChannels, int channels, float* u, bool transposeFlip)
    {
        var g = KernelMatrix;
        float* k = stackalloc float[9];
        for (int o = 0; o < outChannels; o++)
            for (int c = 0; c < channels; c++)
            {
                float* src = w + ((long)o * channels + c) * 9;
                for (int t = 0; t < 9; t++) k[t] = transposeFlip ? src[8 - t] : src[t];
                long at = transposeFlip ? (long)c * outChannels + o : (long)o * channels + c;
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++)
                    {
                        float sum = 0;
                        for (int r = 0; r < 3; r++)
                            for (int s = 0; s < 3; s++) sum += g[a, r] * k[r * 3 + s] * g[b, s];
                        u[(long)(a * 4 + b) * outChannels * channels + at] = sum;
                    }
            }
    }

    /// <summary>The weight gradient from the gradient of the transformed kernels: dw[o, c] = Gᵀ du[·, o, c] G
    /// (the adjoint of <see cref="TransformKernels"/> without flip). Writes dw (O, C, 3, 3).</summary>
    public static void KernelGradient(float* du, int outChannels, int channels, float* dw)
    {
        var g = KernelMatrix;
        long pairs = (long)outChannels * channels;
        for (long pair = 0; pair < pairs; pair++)
            for (int r = 0; r < 3; r++)
                for (int s = 0; s < 3; s++)
                {
                    float sum = 0;
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) sum += g[a, r] * du[(a * 4 + b) * pairs + pair] * g[b, s];
                    dw[pair * 9 + r * 3 + s] = sum;
                }
    }
}
