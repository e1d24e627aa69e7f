using System.Buffers;

namespace Nabla.Kernels.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Gemm(bool transA, bool transB, int m, int n, int k,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float* c, int ldc, long strideC,
        int batch, bool accumulate, float* bias)
    {
        for (int p = 0; p < batch; p++)
            SimpleGemm.Run(transA, transB, m, n, k, a + p * strideA, lda, b + p * strideB, ldb, c + p * strideC, ldc, accumulate, bias);
    }
}

/// <summary>
/// A register-blocked, vectorised, multithreaded GEMM: 4 rows × 2 vectors of C per inner loop, operands
/// transposed into contiguous scratch first when needed.
/// </summary>
internal static unsafe class SimpleGemm
{
    public static void Run(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb,
        float* c, int ldc, bool accumulate, float* bias)
    {
        if (m == 0 || n == 0) return;
        float[]? aBuf = null, bBuf = null;
        try
        {
            if (transA)
            {
                aBuf = ArrayPool<float>.Shared.Rent(Math.Max(1, m * k));
                fixed (float* ap = aBuf) Transpose(a, lda, ap, k, m);
            }
            if (transB)
            {
                bBuf = ArrayPool<float>.Shared.Rent(Math.Max(1, k * n));
                fixed (float* bp = bBuf) Transpose(b, ldb, bp, n, k);
            }
            fixed (float* ap0 = aBuf, bp0 = bBuf)
            {
                float* A = transA ? ap0 : a, B = transB ? bp0 : b;
                int la = transA ? k : lda, lb = transB ? n : ldb;
                int rowBlocks = (m + 3) / 4;
                long work = (long)m * n * k;
                int grain = work < 1 << 18 ? rowBlocks : Math.Max(1, rowBlocks / (WorkerPool.Threads * 4));
                WorkerPool.For(rowBlocks, grain, (r0, r1) =>
                {
                    if (CpuFeatures.UseAvx512) Rows<V512>(r0 * 4, Math.Min(m, r1 * 4), n, k, A, la, B, lb, c, ldc, accumulate, bias);
                    else if (CpuFeatures.UseAvx2) Rows<V256>(r0 * 4, Math.Min(m, r1 * 4), n, k, A, la, B, lb, c, ldc, accumulate, bias);
                    else Rows<V1>(r0 * 4, Math.Min(m, r1 * 4), n, k, A, la, B, lb, c, ldc, accumulate, bias);
                });
            }
        }
        finally
        {
            if (aBuf != null) ArrayPool<float>.Shared.Return(aBuf);
            if (bBuf != null) ArrayPool<float>.Shared.Return(bBuf);
        }
    }

    /// <summary>dst (cols × rows) = transpose of src (rows × cols, row stride ld).</summary>
    private static void Transpose(float* src, int ld, float* dst, int rows, int cols)
    {
        const int T = 32;
        for (int i0 = 0; i0 < rows; i0 += T)
            for (int j0 = 0; j0 < cols; j0 += T)
                for (int i = i0; i < Math.Min(rows, i0 + T); i++)
                    for (int j = j0; j < Math.Min(cols, j0 + T); j++)
                        dst[(long)j * rows + i] = src[(long)i * ld + j];
    }

    private static void Rows<V>(int i0, int i1, int n, int k, float* a, int lda, float* b, int ldb,
        float* c, int ldc, bool accumulate, float* bias) where V : struct, IVec<V>
    {
        int w = V.Count;
        for (int i = i0; i < i1; i += 4)
        {
            int rows = Math.Min(4, i1 - i);
            float* a0 = a + (long)i * lda;
            float* a1 = rows > 1 ? a0 + lda : a0, a2 = rows > 2 ? a0 + 2L * lda : a0, a3 = rows > 3 ? a0 + 3L * lda : a0;
            int j = 0;
            for (; j + 2 * w <= n; j += 2 * w)
            {
                V c00 = V.Splat(0f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
                float* bp = b + j;
                for (int q = 0; q < k; q++, bp += ldb)
                {
                    var b0 = V.Load(bp);
                    var b1 = V.Load(bp + w);
                    var x = V.Splat(a0[q]); c00 = V.Fma(x, b0, c00); c01 = V.Fma(x, b1, c01);
                    x = V.Splat(a1[q]); c10 = V.Fma(x, b0, c10); c11 = V.Fma(x, b1, c11);
                    x = V.Splat(a2[q]); c20 = V.Fma(x, b0, c20); c21 = V.Fma(x, b1, c21);
                    x = V.Splat(a3[q]); c30 = V.Fma(x, b0, c30); c31 = V.Fma(x, b1, c31);
                }
                StoreRow<V>(c + (long)i * ldc + j, c00, c01, accumulate, bias == null ? null : bias + j);
                if (rows > 1) StoreRow<V>(c + (long)(i + 1) * ldc + j, c10, c11, accumulate, bias == null ? null : bias + j);
                if (rows > 2) StoreRow<V>(c + (long)(i + 2) * ldc + j, c20, c21, accumulate, bias == null ? null : bias + j);
                if (rows > 3) StoreRow<V>(c + (long)(i + 3) * ldc + j, c30, c31, accumulate, bias == null ? null : bias + j);
            }
            for (; j < n; j++)
                for (int r = 0; r < rows; r++)
                {
                    float* ar = a + (long)(i + r) * lda;
                    float acc = 0;
                    for (int q = 0; q < k; q++) acc = MathF.FusedMultiplyAdd(ar[q], b[(long)q * ldb + j], acc);
                    if (bias != null) acc += bias[j];
                    float* cp = c + (long)(i + r) * ldc + j;
                    *cp = accumulate ? *cp + acc : acc;
                }
        }
    }

    private static void StoreRow<V>(float* c, V v0, V v1, bool accumulate, float* bias) where V : struct, IVec<V>
    {
        if (bias != null) { v0 += V.Load(bias); v1 += V.Load(bias + V.Count); }
        if (accumulate) { v0 += V.Load(c); v1 += V.Load(c + V.Count); }
        V.Store(c, v0);
        V.Store(c + V.Count, v1);
    }
}
