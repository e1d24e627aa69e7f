using ILGPU;
using ILGPU.Runtime;
using Nabla.Gpu.Kernels;
using K = Nabla.Gpu.Kernels;

namespace Nabla.Gpu;

public sealed unsafe partial class GpuBackend
{
    public void Gemm(bool transA, bool transB, int m, int n, int k,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float* c, int ldc, long strideC,
        int batch, bool accumulate, float* bias) =>
        Gemm(GemmKernel, transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, c, ldc, strideC, batch, accumulate, bias);

    /// <summary>GEMM with a chosen kernel version (tests and the benchmark compare them).</summary>
    public void Gemm(GemmVersion version, bool transA, bool transB, int m, int n, int k,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float* c, int ldc, long strideC,
        int batch, bool accumulate, float* bias)
    {
        if (m == 0 || n == 0 || batch == 0) return;
        var args = new GemmArgs
        {
            M = m, N = n, K = k, Lda = lda, Ldb = ldb, Ldc = ldc, StrideA = strideA, StrideB = strideB, StrideC = strideC,
            TransA = transA ? 1 : 0, TransB = transB ? 1 : 0, Accumulate = accumulate ? 1 : 0, HasBias = bias == null ? 0 : 1,
        };
        Action<GemmArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> kernel = version switch
        {
            GemmVersion.V1Naive => K.Gemm.V1Naive,
            GemmVersion.V2SharedTiles => K.Gemm.V2SharedTiles,
            GemmVersion.V3RegisterBlocking => K.Gemm.V3RegisterBlocking,
            GemmVersion.V4WideTiles => K.Gemm.V4WideTiles,
            _ => throw new ArgumentOutOfRangeException(nameof(version), $"Gemm: unknown kernel version {version}."),
        };
        var config = version switch
        {
            GemmVersion.V1Naive => Tiled(m, n, batch, K.Gemm.V1Tile, new Index3D(K.Gemm.V1Tile, K.Gemm.V1Tile, 1)),
            GemmVersion.V2SharedTiles => Tiled(m, n, batch, K.Gemm.V2Tile, new Index3D(K.Gemm.V2Tile, K.Gemm.V2Tile, 1)),
            GemmVersion.V3RegisterBlocking => Tiled(m, n, batch, K.Gemm.V3Tile, new Index3D(K.Gemm.V3Threads, 1, 1)),
            _ => Tiled(m, n, batch, K.Gemm.V4Tile, new Index3D(K.Gemm.V4Threads, 1, 1)),
        };
        // Null A or B with k = 0 is legal (C = bias or unchanged): the placeholder view stands in.
        Grouped<GemmArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(kernel)(config, args, F(a), F(b), F(c), F(bias));
    }

    private static KernelConfig Tiled(int m, int n, int batch, int tile, Index3D group) =>
        new(new Index3D((n + tile - 1) / tile, (m + tile - 1) / tile, batch), group);
}
