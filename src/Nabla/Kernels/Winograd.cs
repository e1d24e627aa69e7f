namespace Nabla.Kernels;

/// <summary>
/// Winograd's minimal filtering F(2×2, 3×3) (Lavin &amp; Gray, "Fast Algorithms for Convolutional Neural Networks",
/// 2016): a 2×2 block of a 3×3 convolution's output is Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, where d is the 4×4 input patch
/// the block reads and g the 3×3 kernel: 16 multiplications instead of 36. Summed over input channels, the 16
/// products become 16 independent matrix products (one per element ξ = 4a + b of the 4×4 tile), which is where the
/// time goes; the transforms around them are additions.
/// <para>
/// Tile buffers are (16, rows, tiles): ξ, then the channel, then the tile p = (n·TileRows + th)·TileCols + tw (see
/// <see cref="Conv2dGeometry.Tiles"/>), with the 16 slices <see cref="SliceStride"/> floats apart. The transforms are
/// backend kernels (<see cref="IKernelBackend.WinogradInput"/> and its kin).
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
}
