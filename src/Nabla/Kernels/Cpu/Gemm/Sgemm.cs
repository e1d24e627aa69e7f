namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// One GEMM call, with every operand described by strides: element (i, p) of op(A) is at
/// A[i·LaneStrideA + p·KStrideA] (a transposed A just swaps the two strides), element (p, j) of op(B) at
/// B[j·LaneStrideB + p·KStrideB], and C is row-major with row stride Ldc.
/// </summary>
internal unsafe struct GemmProblem
{
    public int M, N, K, Batch;
    public float* A, B, C, Bias;
    public long LaneStrideA, KStrideA, BatchStrideA;
    public long LaneStrideB, KStrideB, BatchStrideB;
    public long Ldc, BatchStrideC;
    public bool Accumulate;
}

/// <summary>
/// Single-precision GEMM in the GotoBLAS/BLIS design: operands packed into cache-sized, kernel-ordered blocks
/// (<see cref="GemmPacking"/>, <see cref="GemmBlocking"/>), a register-blocked micro-kernel per instruction set
/// (<see cref="Avx512MicroKernel"/>, <see cref="Avx2MicroKernel"/>, <see cref="ScalarMicroKernel"/>), and the work
/// spread over <see cref="WorkerPool"/>. docs/optimization-log.md tells how each piece earns its place.
/// </summary>
internal static unsafe class Sgemm
{
    /// <summary>Same contract as <see cref="IKernelBackend.Gemm"/>.</summary>
    public static void Run(bool transA, bool transB, int m, int n, int k,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float* c, int ldc, long strideC,
        int batch, bool accumulate, float* bias)
    {
        if (m < 0 || n < 0 || k < 0 || batch < 0)
            throw new ArgumentOutOfRangeException(nameof(m), $"Gemm: sizes must not be negative (m={m}, n={n}, k={k}, batch={batch}).");
        if (m == 0 || n == 0 || batch == 0) return;
        var problem = new GemmProblem
        {
            M = m, N = n, K = k, Batch = batch,
            A = a, LaneStrideA = transA ? 1 : lda, KStrideA = transA ? lda : 1, BatchStrideA = strideA,
            B = b, LaneStrideB = transB ? ldb : 1, KStrideB = transB ? 1 : ldb, BatchStrideB = strideB,
            C = c, Ldc = ldc, BatchStrideC = strideC,
            Accumulate = accumulate, Bias = bias,
        };
        if (k == 0) ApplyEpilogueOnly(in problem);
        else if (SkinnyGemm.TryRun(in problem)) { }
        else if (CpuFeatures.UseAvx512) GemmDriver<Avx512MicroKernel>.Run(in problem);
        else if (CpuFeatures.UseAvx2) GemmDriver<Avx2MicroKernel>.Run(in problem);
        else GemmDriver<ScalarMicroKernel>.Run(in problem);
    }

    /// <summary>With k = 0 the product is empty: C = (C or 0) + bias.</summary>
    private static void ApplyEpilogueOnly(in GemmProblem p)
    {
        for (int batch = 0; batch < p.Batch; batch++)
            for (int i = 0; i < p.M; i++)
            {
                float* row = p.C + batch * p.BatchStrideC + i * p.Ldc;
                for (int j = 0; j < p.N; j++)
                    row[j] = (p.Accumulate ? row[j] : 0f) + (p.Bias == null ? 0f : p.Bias[j]);
            }
    }
}
