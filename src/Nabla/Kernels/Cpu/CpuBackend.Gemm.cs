using Nabla.Kernels.Cpu.Gemm;

namespace Nabla.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Gemm(bool transA, bool transB, int m, int n, int k,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float* c, int ldc, long strideC,
        int batch, bool accumulate, float* bias) =>
        Sgemm.Run(transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, c, ldc, strideC, batch, accumulate, bias);
}
