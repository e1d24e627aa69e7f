using System.Runtime.CompilerServices;

namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// 4 × 4 scalar micro-kernel, the portable path: 16 float accumulators fit the 16 registers of a baseline x64
/// (or any) CPU, and each k step reuses every loaded A and B value four times.
/// </summary>
internal readonly unsafe struct ScalarMicroKernel : IMicroKernel
{
    public static int MR => 4;
    public static int NR => 4;
    public static GemmBlocking TunedBlocking => GemmBlocking.StreamedFromL2(MR, NR);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, float* a, float* b, float* c, long ldc, bool addC, float* bias)
    {
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0,
            c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (int p = 0; p < kc; p++)
        {
            float b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
            float x = a[0];
            c00 = MathF.FusedMultiplyAdd(x, b0, c00); c01 = MathF.FusedMultiplyAdd(x, b1, c01);
            c02 = MathF.FusedMultiplyAdd(x, b2, c02); c03 = MathF.FusedMultiplyAdd(x, b3, c03);
            x = a[1];
            c10 = MathF.FusedMultiplyAdd(x, b0, c10); c11 = MathF.FusedMultiplyAdd(x, b1, c11);
            c12 = MathF.FusedMultiplyAdd(x, b2, c12); c13 = MathF.FusedMultiplyAdd(x, b3, c13);
            x = a[2];
            c20 = MathF.FusedMultiplyAdd(x, b0, c20); c21 = MathF.FusedMultiplyAdd(x, b1, c21);
            c22 = MathF.FusedMultiplyAdd(x, b2, c22); c23 = MathF.FusedMultiplyAdd(x, b3, c23);
            x = a[3];
            c30 = MathF.FusedMultiplyAdd(x, b0, c30); c31 = MathF.FusedMultiplyAdd(x, b1, c31);
            c32 = MathF.FusedMultiplyAdd(x, b2, c32); c33 = MathF.FusedMultiplyAdd(x, b3, c33);
            a += 4;
            b += 4;
        }
        StoreRow(c, c00, c01, c02, c03, addC, bias);
        StoreRow(c + ldc, c10, c11, c12, c13, addC, bias);
        StoreRow(c + 2 * ldc, c20, c21, c22, c23, addC, bias);
        StoreRow(c + 3 * ldc, c30, c31, c32, c33, addC, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* row, float v0, float v1, float v2, float v3, bool addC, float* bias)
    {
        if (bias != null) { v0 += bias[0]; v1 += bias[1]; v2 += bias[2]; v3 += bias[3]; }
        if (addC) { v0 += row[0]; v1 += row[1]; v2 += row[2]; v3 += row[3]; }
        row[0] = v0; row[1] = v1; row[2] = v2; row[3] = v3;
    }
}
