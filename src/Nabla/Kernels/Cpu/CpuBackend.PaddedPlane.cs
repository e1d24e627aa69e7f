using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Nabla.Kernels.Cpu;

// The layout the convolution and pooling kernels work in. Most of them work one input plane at a time. The plane is
// copied into per-thread scratch with its padding made explicit (zeros, or -∞ for max pooling) and its columns split
// by phase: padded column q goes to phase q mod stride, slot q / stride. Then, for every window tap, the inputs of
// consecutive outputs of a row are consecutive floats, whatever the stride and dilation, so every inner loop is a
// plain vector loop with no bounds checks. Backward kernels accumulate into such a padded plane — col2im adds each
// tap's rows in turn; the depthwise and average-pool backwards gather, for each padded row, the taps that land in
// it — and crop it at the end. Work is spread over planes (or channels), which never write to each other's memory.
public sealed unsafe partial class CpuBackend
{
    // ---------------------------------------------------------------- padded, phase-split planes

    /// <summary>Layout of a padded plane in scratch: PaddedHeight rows of RowStride floats; padded column q of a row
    /// sits at (q mod stride)·PhaseLength + q / stride. Phases are whole 64-byte lines, so a loop over a phase needs
    /// no tail (the slack after the last column is padding too).</summary>
    private readonly struct PaddedPlane
    {
        public readonly int Rows, RowStride, PhaseLength, Stride;

        public PaddedPlane(in Conv2dGeometry g)
        {
            Stride = g.StrideW;
            PhaseLength = ((g.PaddedWidth + Stride - 1) / Stride + 15) & ~15;
            RowStride = Stride * PhaseLength;
            Rows = g.PaddedHeight;
        }

        public long Floats => (long)Rows * RowStride;

        /// <summary>Offset of padded position (row r, column q).</summary>
        public int At(int r, int q) => r * RowStride + q % Stride * PhaseLength + q / Stride;
    }

    /// <summary>Offsets, from the start of output row 0, of each tap (i, j)'s input for output column 0: output row oh
    /// adds oh·StrideH·RowStride, output column ow adds ow.</summary>
    private static void TapOffsets(in Conv2dGeometry g, in PaddedPlane p, int* taps)
    {
        for (int i = 0; i < g.KernelH; i++)
            for (int j = 0; j < g.KernelW; j++)
                taps[i * g.KernelW + j] = p.At(i * g.DilationH, j * g.DilationW);
    }

    /// <summary>Copies input plane <paramref name="src"/> (Height × Width) into the padded layout, padding with <paramref name="fill"/>.</summary>
    private static void Pad(in Conv2dGeometry g, in PaddedPlane p, float* src, float* dst, float fill)
    {
        for (int r = 0; r < p.Rows; r++)
        {
            float* row = dst + (long)r * p.RowStride;
            int h = r - g.PadH;
            if (h < 0 || h >= g.Height) { new Span<float>(row, p.RowStride).Fill(fill); continue; }
            float* from = src + (long)h * g.Width;
            if (p.Stride == 1)
            {
                new Span<float>(row, g.PadW).Fill(fill);
                Buffer.MemoryCopy(from, row + g.PadW, g.Width * 4L, g.Width * 4L);
                new Span<float>(row + g.PadW + g.Width, p.RowStride - g.PadW - g.Width).Fill(fill);
            }
            else
            {
                new Span<float>(row, p.RowStride).Fill(fill);
                SplitPhases(from, g.Width, g.PadW, p.Stride, p.PhaseLength, row);
            }
        }
    }

    /// <summary>The inverse of <see cref="Pad"/> for gradients: the input positions of the padded plane, into dst.</summary>
    private static void Crop(in Conv2dGeometry g, in PaddedPlane p, float* src, float* dst)
    {
        for (int h = 0; h < g.Height; h++)
        {
            float* row = src + (long)(h + g.PadH) * p.RowStride;
            float* to = dst + (long)h * g.Width;
            if (p.Stride == 1) Buffer.MemoryCopy(row + g.PadW, to, g.Width * 4L, g.Width * 4L);
            else MergePhases(row, p.PhaseLength, g.PadW, p.Stride, g.Width, to);
        }
    }

    /// <summary>Splits a row of <paramref name="width"/> inputs, padded by <paramref name="pad"/> on the left, into its
    /// <paramref name="stride"/> phases: padded column q goes to dst[(q mod stride) · phaseStride + q / stride]. Stride 2 on
    /// an even width of at least 16 takes 16 inputs at a time with AVX2; otherwise phase by phase, with no division
    /// per element (what cost the strided im2col and pooling paths most).</summary>
    private static void SplitPhases(float* src, int width, int pad, int stride, long phaseStride, float* dst)
    {
        if (stride == 2 && width >= 16 && width % 2 == 0 && CpuFeatures.UseAvx2)
        {
            // Even input columns go to phase pad mod 2 from column pad / 2, odd ones to the other phase.
            DeinterleaveRow(src, width, dst + pad % 2 * phaseStride + pad / 2, dst + (pad + 1) % 2 * phaseStride + (pad + 1) / 2);
            return;
        }
        // Phase b takes every stride-th input from the first whose padded column is b mod stride.
        for (int b = 0; b < stride; b++)
        {
            int w = ((b - pad) % stride + stride) % stride;
            float* to = dst + b * phaseStride + (w + pad) / stride;
            for (; w < width; w += stride) *to++ = src[w];
        }
    }

    /// <summary>The inverse of <see cref="SplitPhases"/>: dst[w] = src[(q mod stride) · phaseStride + q / stride] for padded
    /// column q = w + pad.</summary>
    private static void MergePhases(float* src, long phaseStride, int pad, int stride, int width, float* dst)
    {
        if (stride == 2 && width >= 16 && width % 2 == 0 && CpuFeatures.UseAvx2)
        {
            InterleaveRow(src + pad % 2 * phaseStride + pad / 2, src + (pad + 1) % 2 * phaseStride + (pad + 1) / 2, width, dst);
            return;
        }
        for (int b = 0; b < stride; b++)
        {
            int w = ((b - pad) % stride + stride) % stride;
            float* from = src + b * phaseStride + (w + pad) / stride;
            for (; w < width; w += stride) dst[w] = *from++;
        }
    }

    /// <summary>even[k] = src[2k], odd[k] = src[2k + 1] for 2k &lt; n (n even, at least 16): 16 inputs at a time, two
    /// AVX2 shuffles per 8 outputs, the last 16 moved back to end at n (overlapping the block before).</summary>
    private static void DeinterleaveRow(float* src, int n, float* even, float* odd)
    {
        for (int k = 0; ; k += 16)
        {
            if (k + 16 > n) k = n - 16;
            var v0 = Avx.LoadVector256(src + k);
            var v1 = Avx.LoadVector256(src + k + 8);
            Avx.Store(even + k / 2, EvenLanes(v0, v1));
            Avx.Store(odd + k / 2, OddLanes(v0, v1));
            if (k + 16 >= n) return;
        }
    }

    /// <summary>(v0[0], v0[2], …, v0[6], v1[0], …, v1[6]): within each 128-bit lane (v0[0], v0[2], v1[0], v1[2]), then the
    /// 64-bit pairs put in order.</summary>
    private static Vector256<float> EvenLanes(Vector256<float> v0, Vector256<float> v1) =>
        Avx2.Permute4x64(Avx.Shuffle(v0, v1, 0x88).AsDouble(), 0xD8).AsSingle();

    /// <summary>(v0[1], v0[3], …, v1[7]), as <see cref="EvenLanes"/>.</summary>
    private static Vector256<float> OddLanes(Vector256<float> v0, Vector256<float> v1) =>
        Avx2.Permute4x64(Avx.Shuffle(v0, v1, 0xDD).AsDouble(), 0xD8).AsSingle();

    /// <summary>dst[2k] = even[k], dst[2k + 1] = odd[k] for 2k &lt; n (n even, at least 16), the inverse of
    /// <see cref="DeinterleaveRow"/>: 8 of each at a time, the last 16 outputs moved back to end at n.</summary>
    private static void InterleaveRow(float* even, float* odd, int n, float* dst)
    {
        for (int k = 0; ; k += 16)
        {
            if (k + 16 > n) k = n - 16;
            var e = Avx.LoadVector256(even + k / 2);
            var o = Avx.LoadVector256(odd + k / 2);
            // Within each 128-bit lane (e0, o0, e1, o1) and (e2, o2, e3, o3); then the lanes put in order.
            var low = Avx.UnpackLow(e, o);
            var high = Avx.UnpackHigh(e, o);
            Avx.Store(dst + k, Avx.Permute2x128(low, high, 0x20));
            Avx.Store(dst + k + 8, Avx.Permute2x128(low, high, 0x31));
            if (k + 16 >= n) return;
        }
    }

    /// <summary>Where the kernel columns' inputs lie in a phase-split row: tap column j reads phase (j·dw) mod sw, shifted by
    /// (j·dw) / sw. Lists the columns by phase (byPhase[phaseStart[φ] .. phaseStart[φ + 1]]) and returns the largest
    /// shift (how far a gather reads to the left of a row).</summary>
    private static int TapPhases(in Conv2dGeometry g, in PaddedPlane p, int* byPhase, int* phaseStart, int* shift)
    {
        int next = 0;
        for (int phase = 0; phase < p.Stride; phase++)
        {
            phaseStart[phase] = next;
            for (int j = 0; j < g.KernelW; j++)
                if (j * g.DilationW % p.Stride == phase) { byPhase[next++] = j; shift[j] = j * g.DilationW / p.Stride; }
        }
        phaseStart[p.Stride] = next;
        return (g.KernelW - 1) * g.DilationW / p.Stride;
    }

    /// <summary>For <paramref name="rows"/> (4 or 1) rows r, <paramref name="rowStep"/> apart in output and srcStep apart in
    /// src: out_r[k] += Σ over the listed taps j of w[j]·src_r[k - shift[j]], for k in [0, length) (a multiple of 16).</summary>
    private static void GatherRows<V>(int rows, float* output, long rowStep, int length, float* src, long srcStep, float* w,
        int* taps, int count, int* shift) where V : struct, IVec<V>
    {
        if (count == 0) return;
        for (int k = 0; k < length; k += V.Count)
        {
            float* o0 = output + k, s0 = src + k;
            if (rows == 1)
            {
                var acc = V.Load(o0);
                for (int t = 0; t < count; t++)
                {
                    int j = taps[t];
                    V.AddProduct(ref acc, V.Splat(w[j]), V.Load(s0 - shift[j]));
                }
                V.Store(o0, acc);
                continue;
            }
            float* o1 = o0 + rowStep, o2 = o1 + rowStep, o3 = o2 + rowStep;
            float* s1 = s0 + srcStep, s2 = s1 + srcStep, s3 = s2 + srcStep;
            V a0 = V.Load(o0), a1 = V.Load(o1), a2 = V.Load(o2), a3 = V.Load(o3);
            for (int t = 0; t < count; t++)
            {
                int j = taps[t], back = shift[j];
                var wj = V.Splat(w[j]);
                V.AddProduct(ref a0, wj, V.Load(s0 - back));
                V.AddProduct(ref a1, wj, V.Load(s1 - back));
                V.AddProduct(ref a2, wj, V.Load(s2 - back));
                V.AddProduct(ref a3, wj, V.Load(s3 - back));
            }
            V.Store(o0, a0); V.Store(o1, a1); V.Store(o2, a2); V.Store(o3, a3);
        }
    }
}
