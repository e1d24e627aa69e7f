using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// Copies a block of an operand into the layout the micro-kernel streams: slivers of <c>width</c> lanes (MR rows of
/// A, or NR columns of B), each stored k-major so that one k step is <c>width</c> consecutive floats. Lanes past the
/// edge of the matrix are zero: the kernel always computes full tiles, and what those lanes produce lands in the
/// part of an edge tile that is thrown away; zeros keep it finite and fast. The source is addressed through two
/// strides, which is how transposed operands are read without ever being transposed as a whole: element
/// (lane l, step p) is at <c>src[l·laneStride + p·kStride]</c>.
/// The block usually comes from DRAM (a weight matrix is read once per call), so both paths read the source in
/// long contiguous runs that the hardware prefetcher can follow.
/// </summary>
internal static unsafe class GemmPacking
{
    /// <summary>Packs <paramref name="lanes"/> lanes × <paramref name="kc"/> steps into ⌈lanes/width⌉ slivers at
    /// <paramref name="dst"/>, sliver s starting at dst + s·width·kc.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackBlock(float* src, long laneStride, long kStride, int lanes, int kc, int width, float* dst, bool useSimd)
    {
        if (laneStride == 1) CopyRows(src, kStride, lanes, kc, width, dst, useSimd);
        else if (kStride == 1 && useSimd && Avx.IsSupported) TransposeRows(src, laneStride, lanes, kc, width, dst);
        else PackScalar(src, laneStride, kStride, lanes, kc, width, dst);
    }

    /// <summary>
    /// Lanes contiguous in the source (B, or a transposed A): every k step is a row of the source, cut into
    /// <c>width</c>-float pieces, one per sliver. Four rows are walked side by side so each sliver receives four
    /// consecutive steps (a contiguous run) per visit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CopyRows(float* src, long kStride, int lanes, int kc, int width, float* dst, bool useSimd)
    {
        const int StepsPerVisit = 4;
        for (int p0 = 0; p0 < kc; p0 += StepsPerVisit)
        {
            int steps = Math.Min(StepsPerVisit, kc - p0);
            for (int l0 = 0; l0 < lanes; l0 += width)
            {
                int valid = Math.Min(width, lanes - l0);
                float* from = src + l0 + p0 * kStride;
                float* to = dst + (long)l0 * kc + (long)p0 * width;
                for (int p = 0; p < steps; p++, from += kStride, to += width)
                {
                    int l = 0;
                    if (useSimd)
                    {
                        for (; l + 8 <= valid; l += 8) Vector256.Store(Vector256.Load(from + l), to + l);
                        // The AVX2 kernel's 6-lane A slivers: 4 floats, then 2 as one 8-byte move.
                        if (l + 4 <= valid) { Vector128.Store(Vector128.Load(from + l), to + l); l += 4; }
                        if (l + 2 <= valid) { *(double*)(to + l) = *(double*)(from + l); l += 2; }
                    }
                    for (; l < valid; l++) to[l] = from[l];
                    for (; l < width; l++) to[l] = 0f;
                }
            }
        }
    }

    /// <summary>
    /// Steps contiguous in the source (A, or a transposed B): each lane is a row segment of kc floats. Four rows at a
    /// time are read 8 floats each and transposed in registers (unpack, then shuffle within 128-bit halves) into 8
    /// steps of 4 lanes; two remaining rows (a 6-lane sliver) are interleaved by one unpack into 8 steps of 2. The segments are short (a few cache lines) and far apart, too short for the hardware
    /// prefetcher to ramp up, so the rows 8 lanes ahead are prefetched explicitly.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransposeRows(float* src, long laneStride, int lanes, int kc, int width, float* dst)
    {
        for (int l0 = 0; l0 < lanes; l0 += width, dst += (long)width * kc)
        {
            int valid = Math.Min(width, lanes - l0);
            int l = 0;
            for (; l + 4 <= valid; l += 4)
            {
                float* s0 = src + (l0 + l) * laneStride, s1 = s0 + laneStride, s2 = s1 + laneStride, s3 = s2 + laneStride;
                float* ahead = src + Math.Min(l0 + l + 8, lanes - 4) * laneStride;
                float* d = dst + l;
                int p = 0;
                for (; p + 8 <= kc; p += 8, d += 8 * width)
                {
                    if ((p & 15) == 0)
                    {
                        Sse.Prefetch0(ahead + p);
                        Sse.Prefetch0(ahead + laneStride + p);
                        Sse.Prefetch0(ahead + 2 * laneStride + p);
                        Sse.Prefetch0(ahead + 3 * laneStride + p);
                    }
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
            if (l + 2 <= valid)
            {
                // Two lanes left (the AVX2 kernel's 6 = 4 + 2): pairs of rows interleaved, 8 bytes per step.
                float* s0 = src + (l0 + l) * laneStride, s1 = s0 + laneStride;
                float* d = dst + l;
                int p = 0;
                for (; p + 8 <= kc; p += 8, d += 8 * width)
                {
                    var r0 = Avx.LoadVector256(s0 + p);
                    var r1 = Avx.LoadVector256(s1 + p);
                    var t0 = Avx.UnpackLow(r0, r1).AsDouble();   // (p0) (p1) | (p4) (p5), each pair r0 r1
                    var t1 = Avx.UnpackHigh(r0, r1).AsDouble();  // (p2) (p3) | (p6) (p7)
                    *(double*)d = t0.GetElement(0);
                    *(double*)(d + width) = t0.GetElement(1);
                    *(double*)(d + 2 * width) = t1.GetElement(0);
                    *(double*)(d + 3 * width) = t1.GetElement(1);
                    *(double*)(d + 4 * width) = t0.GetElement(2);
                    *(double*)(d + 5 * width) = t0.GetElement(3);
                    *(double*)(d + 6 * width) = t1.GetElement(2);
                    *(double*)(d + 7 * width) = t1.GetElement(3);
                }
                for (; p < kc; p++, d += width)
                {
                    d[0] = s0[p];
                    d[1] = s1[p];
                }
                l += 2;
            }
            for (; l < width; l++)
            {
                float* s = src + (l0 + l) * laneStride;
                for (int p = 0; p < kc; p++) dst[(long)p * width + l] = l < valid ? s[p] : 0f;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackScalar(float* src, long laneStride, long kStride, int lanes, int kc, int width, float* dst)
    {
        for (int l0 = 0; l0 < lanes; l0 += width, dst += (long)width * kc)
        {
            int valid = Math.Min(width, lanes - l0);
            for (int p = 0; p < kc; p++)
                for (int l = 0; l < width; l++)
                    dst[(long)p * width + l] = l < valid ? src[(l0 + l) * laneStride + p * kStride] : 0f;
        }
    }
}
