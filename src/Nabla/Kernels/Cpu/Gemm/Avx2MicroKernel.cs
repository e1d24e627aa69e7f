using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// 6 × 16 AVX2 + FMA micro-kernel, the classic Haswell shape: 12 ymm accumulators, 2 for the B row and one for
/// the broadcast A value, 15 of the 16 ymm registers AVX2 has. 12 FMAs per k step against 2 loads and
/// 6 broadcasts.
/// </summary>
internal readonly unsafe struct Avx2MicroKernel : IMicroKernel
{
    public static int MR => 6;
    public static int NR => 16;
    public static GemmBlocking TunedBlocking => GemmBlocking.L1ResidentB(MR, NR);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, float* a, float* b, float* c, long ldc, bool addC, float* bias)
    {
        for (int r = 0; r < 6; r++) Sse.Prefetch0(c + r * ldc);
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var x = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            x = Vector256.Create(a[1]);
            c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            x = Vector256.Create(a[2]);
            c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            x = Vector256.Create(a[3]);
            c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            x = Vector256.Create(a[4]);
            c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41);
            x = Vector256.Create(a[5]);
            c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51);
            a += 6;
            b += 16;
        }

        var bias0 = bias == null ? default : Vector256.Load(bias);
        var bias1 = bias == null ? default : Vector256.Load(bias + 8);
        bool addBias = bias != null;
        StoreRow(c, c00, c01, addC, addBias, bias0, bias1);
        StoreRow(c + ldc, c10, c11, addC, addBias, bias0, bias1);
        StoreRow(c + 2 * ldc, c20, c21, addC, addBias, bias0, bias1);
        StoreRow(c + 3 * ldc, c30, c31, addC, addBias, bias0, bias1);
        StoreRow(c + 4 * ldc, c40, c41, addC, addBias, bias0, bias1);
        StoreRow(c + 5 * ldc, c50, c51, addC, addBias, bias0, bias1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* row, Vector256<float> lo, Vector256<float> hi, bool addC, bool addBias,
        Vector256<float> bias0, Vector256<float> bias1)
    {
        if (addBias) { lo += bias0; hi += bias1; }
        if (addC) { lo += Vector256.Load(row); hi += Vector256.Load(row + 8); }
        lo.Store(row);
        hi.Store(row + 8);
    }
}
