using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// 8 × 32 AVX-512 micro-kernel: 16 zmm accumulators (8 rows × 2 vectors of 16 floats), 2 zmm for the B row and one
/// for the broadcast A value. Each k step issues 16 FMAs against 2 vector loads and 8 broadcasts; Zen 4 sustains
/// that at its FMA limit (its 512-bit FMAs run as two 256-bit halves, one per cycle, 4 cycles latency, so 16
/// independent accumulators cover latency × throughput four times). Larger tiles (12 × 32, 14 × 32, 8 × 48) fill
/// more of the 32 registers but measured no faster, and 8 rows divide the row counts that matter (B·T, 64, 768…)
/// where 12 or 14 leave a mostly empty last sliver; see docs/optimization-log.md.
/// </summary>
internal readonly unsafe struct Avx512MicroKernel : IMicroKernel
{
    public static int MR => 8;
    public static int NR => 32;
    public static GemmBlocking TunedBlocking => GemmBlocking.StreamedFromL2(MR, NR);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, float* a, float* b, float* c, long ldc, bool addC, float* bias)
    {
        // Pull the C tile towards L1 while the k loop runs; it is read at the end.
        for (int r = 0; r < 8; r++)
        {
            Sse.Prefetch0(c + r * ldc);
            Sse.Prefetch0(c + r * ldc + 16);
        }
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var x = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a[1]);
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a[2]);
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a[3]);
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a[4]);
            c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a[5]);
            c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a[6]);
            c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a[7]);
            c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
            a += 8;
            b += 32;
        }

        var bias0 = bias == null ? default : Vector512.Load(bias);
        var bias1 = bias == null ? default : Vector512.Load(bias + 16);
        bool addBias = bias != null;
        StoreRow(c, c00, c01, addC, addBias, bias0, bias1);
        StoreRow(c + ldc, c10, c11, addC, addBias, bias0, bias1);
        StoreRow(c + 2 * ldc, c20, c21, addC, addBias, bias0, bias1);
        StoreRow(c + 3 * ldc, c30, c31, addC, addBias, bias0, bias1);
        StoreRow(c + 4 * ldc, c40, c41, addC, addBias, bias0, bias1);
        StoreRow(c + 5 * ldc, c50, c51, addC, addBias, bias0, bias1);
        StoreRow(c + 6 * ldc, c60, c61, addC, addBias, bias0, bias1);
        StoreRow(c + 7 * ldc, c70, c71, addC, addBias, bias0, bias1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* row, Vector512<float> lo, Vector512<float> hi, bool addC, bool addBias,
        Vector512<float> bias0, Vector512<float> bias1)
    {
        if (addBias) { lo += bias0; hi += bias1; }
        if (addC) { lo += Vector512.Load(row); hi += Vector512.Load(row + 16); }
        lo.Store(row);
        hi.Store(row + 16);
    }
}
