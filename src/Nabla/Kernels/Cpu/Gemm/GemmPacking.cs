using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// Copies a block of an operand into the layout the micro-kernel streams: slivers of <c>width</c> lanes (MR rows of
/// A, or NR columns of B), each stored k-major so that one k step is <c>width</c> consecutive floats. Lanes past the
/// edge of the matrix are zero, so the kernel never needs a partial variant. The source is addressed through two
/// strides, which is how transposed operands are read without ever being transposed as a whole: element
/// (lane l, step p) is at <c>src[l·laneStride + p·kStride]</c>.
/// </summary>
internal static unsafe class GemmPacking
{
    /// <summary>Packs <paramref name="lanes"/> lanes × <paramref name="kc"/> steps into ⌈lanes/width⌉ slivers at
    /// <paramref name="dst"/>, sliver s starting at dst + s·width·kc.</summary>
    public static void PackBlock(float* src, long laneStride, long kStride, int lanes, int kc, int width, float* dst, bool useSimd)
    {
        for (int l0 = 0; l0 < lanes; l0 += width)
        {
            int valid = Math.Min(width, lanes - l0);
            float* from = src + l0 * laneStride;
            float* to = dst + (long)l0 * kc;
            if (laneStride == 1) CopySteps(from, kStride, valid, kc, width, to, useSimd);
            else if (kStride == 1 && useSimd && Avx.IsSupported) TransposeLanes(from, laneStride, valid, kc, width, to);
            else PackScalar(from, laneStride, kStride, valid, kc, width, to);
            if (valid < width)
                for (int p = 0; p < kc; p++)
                    new Span<float>(to + (long)p * width + valid, width - valid).Clear();
        }
    }

    /// <summary>Lanes contiguous in the source (B, or a transposed A): each k step is a straight copy.</summary>
    private static void CopySteps(float* src, long kStride, int lanes, int kc, int width, float* dst, bool useSimd)
    {
        for (int p = 0; p < kc; p++, src += kStride, dst += width)
        {
            int l = 0;
            if (useSimd)
                for (; l + 8 <= lanes; l += 8) Vector256.Store(Vector256.Load(src + l), dst + l);
            for (; l < lanes; l++) dst[l] = src[l];
        }
    }

    /// <summary>
    /// Steps contiguous in the source (A, or a transposed B): read 4 lanes × 8 steps as four 8-float rows and
    /// transpose them in registers (unpack, then shuffle within 128-bit halves), writing 8 steps of 4 lanes.
    /// </summary>
    private static void TransposeLanes(float* src, long laneStride, int lanes, int kc, int width, float* dst)
    {
        int l = 0;
        for (; l + 4 <= lanes; l += 4)
        {
            float* s0 = src + l * laneStride, s1 = s0 + laneStride, s2 = s1 + laneStride, s3 = s2 + laneStride;
            float* d = dst + l;
            int p = 0;
            for (; p + 8 <= kc; p += 8, d += 8 * width)
            {
                var r0 = Avx.LoadVector256(s0 + p);
                var r1 = Avx.LoadVector256(s1 + p);
                var r2 = Avx.LoadVector256(s2 + p);
                var r3 = Avx.LoadVector256(s3 + p);
                var t0 = Avx.UnpackLow(r0, r1);   // r0p0 r1p0 r0p1 r1p1 | r0p4 r1p4 r0p5 r1p5
                var t1 = Avx.UnpackHigh(r0, r1);  // r0p2 r1p2 r0p3 r1p3 | r0p6 r1p6 r0p7 r1p7
                var t2 = Avx.UnpackLow(r2, r3);
                var t3 = Avx.UnpackHigh(r2, r3);
                var p04 = Avx.Shuffle(t0, t2, 0x44);  // lanes 0-3 at step 0 | at step 4
                var p15 = Avx.Shuffle(t0, t2, 0xEE);
                var p26 = Avx.Shuffle(t1, t3, 0x44);
                var p37 = Avx.Shuffle(t1, t3, 0xEE);
                p04.GetLower().Store(d);
                p15.GetLower().Store(d + width);
                p26.GetLower().Store(d + 2 * width);
                p37.GetLower().Store(d + 3 * width);
                p04.GetUpper().Store(d + 4 * width);
                p15.GetUpper().Store(d + 5 * width);
                p26.GetUpper().Store(d + 6 * width);
                p37.GetUpper().Store(d + 7 * width);
            }
            for (; p < kc; p++, d += width)
            {
                d[0] = s0[p];
                d[1] = s1[p];
                d[2] = s2[p];
                d[3] = s3[p];
            }
        }
        if (l < lanes) PackScalar(src + l * laneStride, laneStride, 1, lanes - l, kc, width, dst + l);
    }

    private static void PackScalar(float* src, long laneStride, long kStride, int lanes, int kc, int width, float* dst)
    {
        for (int p = 0; p < kc; p++)
            for (int l = 0; l < lanes; l++)
                dst[(long)p * width + l] = src[l * laneStride + p * kStride];
    }
}
