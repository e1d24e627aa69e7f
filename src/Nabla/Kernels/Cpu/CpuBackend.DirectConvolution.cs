using System.Runtime.InteropServices;

namespace Nabla.Kernels.Cpu;

// Direct convolution (stride 1, no dilation, one group) without an im2col matrix. A chunk of images is copied,
// zero-padded, into a "grid": one row per channel holding the images' padded planes (Hp × Wp) side by side. Output
// (n, oh, ow) is then grid position q = n·Hp·Wp + oh·Wp + ow, and tap (i, j) reads the input grid at q + i·Wp + j for
// every channel: the same shift for all outputs, so a vector of consecutive q is one contiguous load per tap and
// channel, whatever the image width. The positions of q that are no output (the padding columns and rows) are
// computed and dropped; they cost Hp·Wp / (OH·OW) - 1 extra work (15% at 28×28, 65% at 7×7).
//
// The product runs as a register tile of 4 output channels × P vectors of q (P = 4 with Vector512, 2 below), the
// weights packed so that the 4 output channels of one (channel, tap) are adjacent and broadcast one by one. The input
// gradient is the same product on the padded dy with the kernel flipped and transposed; the weight gradient is a
// tile of 4 output channels × P (channel, tap) pairs, each a dot product of a dy grid row with a shifted input row.
public sealed unsafe partial class CpuBackend
{
    /// <summary>Output channels per register tile (the weights are packed and zero-padded to a multiple of it).</summary>
    private const int DirectRows = 4;

    /// <summary>Floats of a chunk's grids kept at about the size of L2, so each chunk is read from cache by all its tiles.</summary>
    private const long DirectChunkFloats = 96 * 1024;

    public void DirectConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y) =>
        DirectCorrelation(Correlation.Forward(g), x, w, bias, y);

    public void DirectConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx) =>
        DirectCorrelation(Correlation.InputGradient(g), dy, w, null, dx);

    public void DirectConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw)
    {
        var shape = Correlation.Forward(g);
        int pairs = shape.In * shape.Taps;
        // Images are split into one contiguous range per thread, each summing into its own partial weight gradient;
        // the partials are added in a fixed order, so the result does not depend on which thread ran what.
        int ranges = Math.Min(WorkerPool.ConcurrentThreads, g.Batch);
        int chunk = ChunkImages(shape, (g.Batch + ranges - 1) / ranges);
        long weights = (long)shape.Out * pairs;
        float* partials = (float*)NativeMemory.AlignedAlloc((nuint)(ranges * weights * sizeof(float)), 64);
        try
        {
            ParallelKernel.Items(ranges, new DirectWeightGradientRanges(shape, chunk, ranges, dy, x, partials));
            for (long i = 0; i < weights; i++)
            {
                float sum = 0;
                for (int r = 0; r < ranges; r++) sum += partials[r * weights + i];
                dw[i] = sum;
            }
        }
        finally { NativeMemory.AlignedFree(partials); }
    }

    /// <summary>A stride-1 correlation of In-channel images (H × W, padded by PadH, PadW) with Out × In kernels of
    /// KH × KW: the forward of a convolution, or, with <see cref="Flipped"/>, its input gradient (the weight read as
    /// w[in, out] rotated by 180°).</summary>
    private readonly record struct Correlation(int Batch, int In, int H, int W, int Out, int KH, int KW, int PadH, int PadW, bool Flipped)
    {
        public static Correlation Forward(in Conv2dGeometry g) =>
            new(g.Batch, g.Channels, g.Height, g.Width, g.OutChannels, g.KernelH, g.KernelW, g.PadH, g.PadW, false);

        // dx = dy padded by (k - 1 - pad) correlated with the flipped kernel: an output of dy at oh reaches input rows
        // oh - pad .. oh - pad + k - 1.
        public static Correlation InputGradient(in Conv2dGeometry g) =>
            new(g.Batch, g.OutChannels, g.OutHeight, g.OutWidth, g.Channels, g.KernelH, g.KernelW,
                g.KernelH - 1 - g.PadH, g.KernelW - 1 - g.PadW, true);

        public int Hp => H + 2 * PadH;
        public int Wp => W + 2 * PadW;
        public int Plane => Hp * Wp;
        public int OH => Hp - KH + 1;
        public int OW => Wp - KW + 1;
        public int Taps => KH * KW;
        public int OutPadded => (Out + DirectRows - 1) / DirectRows * DirectRows;

        /// <summary>The kernel weight from input channel i to output channel o at tap t, from the convolution's weight
        /// (OutChannels, Channels, KH, KW).</summary>
        public float Weight(float* w, int o, int i, int t) =>
            Flipped ? w[((long)i * Out + o) * Taps + Taps - 1 - t] : w[((long)o * In + i) * Taps + t];
    }

    /// <summary>Pixels per register tile: P vectors.</summary>
    private static int TileColumns<V>() where V : struct, IVec<V> => V.Count >= 16 ? 4 : 2;

    /// <summary>Grid positions of a chunk of images, rounded up to whole tiles.</summary>
    private static long GridSpan<V>(in Correlation s, int images) where V : struct, IVec<V>
    {
        long tile = TileColumns<V>() * V.Count;
        return ((long)images * s.Plane + tile - 1) / tile * tile;
    }

    /// <summary>Floats of an input grid row: the span plus the furthest tap's reach, in whole cache lines.</summary>
    private static long InputRow(in Correlation s, long span) => ThreadScratch.Aligned(span + (long)(s.KH - 1) * s.Wp + s.KW - 1);

    /// <summary>Images per chunk: as many as keep its grids near <see cref="DirectChunkFloats"/>, at most <paramref name="limit"/>.</summary>
    private static int ChunkImages(in Correlation s, int limit) =>
        (int)Math.Clamp(DirectChunkFloats / Math.Max(1L, (long)(s.In + s.OutPadded) * s.Plane), 1, Math.Max(1, limit));

    private static void DirectCorrelation(in Correlation s, float* x, float* w, float* bias, float* y)
    {
        // Packed weights: [output block][input channel][tap][4 outputs of the block], zero past Out.
        long packedCount = (long)s.OutPadded * s.In * s.Taps;
        float* packed = (float*)NativeMemory.AlignedAlloc((nuint)(packedCount * sizeof(float)), 64);
        try
        {
            for (int block = 0; block < s.OutPadded / DirectRows; block++)
                for (int i = 0; i < s.In; i++)
                    for (int t = 0; t < s.Taps; t++)
                        for (int k = 0; k < DirectRows; k++)
                        {
                            int o = block * DirectRows + k;
                            packed[((((long)block * s.In + i) * s.Taps + t) * DirectRows) + k] = o < s.Out ? s.Weight(w, o, i, t) : 0f;
                        }
            // Enough chunks to keep every thread busy twice over, where the batch allows.
            int chunk = ChunkImages(s, (s.Batch + 2 * WorkerPool.ConcurrentThreads - 1) / (2 * WorkerPool.ConcurrentThreads));
            ParallelKernel.Items((s.Batch + chunk - 1) / chunk, new DirectChunks(s, chunk, x, packed, bias, y));
        }
        finally { NativeMemory.AlignedFree(packed); }
    }

    private readonly struct DirectChunks(Correlation s, int chunk, float* x, float* packed, float* bias, float* y) : IKernelItems
    {
        public void Execute<V>(int item) where V : struct, IVec<V>
        {
            int n0 = item * chunk, images = Math.Min(chunk, s.Batch - n0);
            long span = GridSpan<V>(s, images), row = InputRow(s, span);
            float* grid = ThreadScratch.Floats(s.In * row + s.OutPadded * span);
            float* output = grid + s.In * row;
            FillGrid(s, x, n0, images, grid, row);
            int* tap = stackalloc int[s.Taps];
            for (int t = 0; t < s.Taps; t++) tap[t] = t / s.KW * s.Wp + t % s.KW;
            for (int block = 0; block < s.OutPadded / DirectRows; block++)
                DirectTiles<V>(packed + (long)block * s.In * s.Taps * DirectRows, s.In, s.Taps, tap, grid, row,
                    output + (long)block * DirectRows * span, span);
            // Crop the grid to the outputs, adding the bias.
            int OH = s.OH, OW = s.OW;
            for (int n = 0; n < images; n++)
                for (int o = 0; o < s.Out; o++)
                {
                    float b = bias == null ? 0f : bias[o];
                    float* src = output + (long)o * span + (long)n * s.Plane;
                    float* dst = y + ((long)(n0 + n) * s.Out + o) * OH * OW;
                    for (int oh = 0; oh < OH; oh++)
                        AddBiasRow<V>(src + (long)oh * s.Wp, dst + (long)oh * OW, OW, b);
                }
        }
    }

    /// <summary>dst[k] = src[k] + b over [0, n).</summary>
    private static void AddBiasRow<V>(float* src, float* dst, int n, float b) where V : struct, IVec<V>
    {
        int k = 0;
        var bv = V.Splat(b);
        for (; k + V.Count <= n; k += V.Count) V.Store(dst + k, V.Load(src + k) + bv);
        for (; k < n; k++) dst[k] = src[k] + b;
    }

    /// <summary>Copies images [n0, n0 + images) of x (Batch, In, H, W) into the zero-padded grid (In rows of
    /// <paramref name="row"/> floats).</summary>
    private static void FillGrid(in Correlation s, float* x, int n0, int images, float* grid, long row)
    {
        new Span<float>(grid, (int)(s.In * row)).Clear();
        for (int i = 0; i < s.In; i++)
            for (int n = 0; n < images; n++)
            {
                float* src = x + ((long)(n0 + n) * s.In + i) * s.H * s.W;
                float* dst = grid + i * row + (long)n * s.Plane + (long)s.PadH * s.Wp + s.PadW;
                for (int h = 0; h < s.H; h++)
                    Buffer.MemoryCopy(src + (long)h * s.W, dst + (long)h * s.Wp, s.W * 4L, s.W * 4L);
            }
    }

    /// <summary>out[k][q] = Σ_i Σ_t packed[i][t][k] · grid[i][q + tap[t]] for the 4 output rows k of one block and all q
    /// in [0, span), a tile of 4 rows × P vectors at a time.</summary>
    private static void DirectTiles<V>(float* packed, int channels, int taps, int* tap, float* grid, long row, float* output, long span)
        where V : struct, IVec<V>
    {
        bool wide = TileColumns<V>() == 4;
        int n = V.Count;
        for (long q = 0; q < span; q += TileColumns<V>() * n)
        {
            V a00 = V.Splat(0f), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00,
              a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            float* wp = packed;
            for (int i = 0; i < channels; i++)
            {
                float* xr = grid + i * row + q;
                for (int t = 0; t < taps; t++, wp += DirectRows)
                {
                    float* at = xr + tap[t];
                    V x0 = V.Load(at), x1 = V.Load(at + n);
                    V w0 = V.Splat(wp[0]), w1 = V.Splat(wp[1]), w2 = V.Splat(wp[2]), w3 = V.Splat(wp[3]);
                    a00 = V.Fma(w0, x0, a00); a01 = V.Fma(w0, x1, a01);
                    a10 = V.Fma(w1, x0, a10); a11 = V.Fma(w1, x1, a11);
                    a20 = V.Fma(w2, x0, a20); a21 = V.Fma(w2, x1, a21);
                    a30 = V.Fma(w3, x0, a30); a31 = V.Fma(w3, x1, a31);
                    if (wide)
                    {
                        V x2 = V.Load(at + 2 * n), x3 = V.Load(at + 3 * n);
                        a02 = V.Fma(w0, x2, a02); a03 = V.Fma(w0, x3, a03);
                        a12 = V.Fma(w1, x2, a12); a13 = V.Fma(w1, x3, a13);
                        a22 = V.Fma(w2, x2, a22); a23 = V.Fma(w2, x3, a23);
                        a32 = V.Fma(w3, x2, a32); a33 = V.Fma(w3, x3, a33);
                    }
                }
            }
            float* o0 = output + q, o1 = o0 + span, o2 = o1 + span, o3 = o2 + span;
            V.Store(o0, a00); V.Store(o0 + n, a01);
            V.Store(o1, a10); V.Store(o1 + n, a11);
            V.Store(o2, a20); V.Store(o2 + n, a21);
            V.Store(o3, a30); V.Store(o3 + n, a31);
            if (wide)
            {
                V.Store(o0 + 2 * n, a02); V.Store(o0 + 3 * n, a03);
                V.Store(o1 + 2 * n, a12); V.Store(o1 + 3 * n, a13);
                V.Store(o2 + 2 * n, a22); V.Store(o2 + 3 * n, a23);
                V.Store(o3 + 2 * n, a32); V.Store(o3 + 3 * n, a33);
            }
        }
    }

    private readonly struct DirectWeightGradientRanges(Correlation s, int chunk, int ranges, float* dy, float* x, float* partials) : IKernelItems
    {
        public void Execute<V>(int range) where V : struct, IVec<V>
        {
            int pairs = s.In * s.Taps, columns = TileColumns<V>();
            int pairsPadded = (pairs + columns - 1) / columns * columns;
            float* partial = partials + (long)range * s.Out * pairs;
            new Span<float>(partial, s.Out * pairs).Clear();
            int first = (int)((long)s.Batch * range / ranges), end = (int)((long)s.Batch * (range + 1) / ranges);
            long maxSpan = GridSpan<V>(s, chunk), maxRow = InputRow(s, maxSpan);
            float* grid = ThreadScratch.Floats(s.In * maxRow + s.OutPadded * maxSpan + pairsPadded);
            float* dyGrid = grid + s.In * maxRow;
            int* pairAt = (int*)(dyGrid + s.OutPadded * maxSpan);
            for (int n0 = first; n0 < end; n0 += chunk)
            {
                int images = Math.Min(chunk, end - n0);
                long span = GridSpan<V>(s, images), row = InputRow(s, span);
                FillGrid(s, x, n0, images, grid, row);
                // dy on the output grid, zero wherever the grid position is no output.
                new Span<float>(dyGrid, (int)(s.OutPadded * span)).Clear();
                int OH = s.OH, OW = s.OW;
                for (int o = 0; o < s.Out; o++)
                    for (int n = 0; n < images; n++)
                        for (int oh = 0; oh < OH; oh++)
                            Buffer.MemoryCopy(dy + (((long)(n0 + n) * s.Out + o) * OH + oh) * OW,
                                dyGrid + o * span + (long)n * s.Plane + (long)oh * s.Wp, OW * 4L, OW * 4L);
                // Pair p = (input channel, tap) reads the input grid from here; the padding pairs repeat the last one.
                for (int p = 0; p < pairsPadded; p++)
                {
                    int pp = Math.Min(p, pairs - 1), t = pp % s.Taps;
                    pairAt[p] = (int)(pp / s.Taps * row + t / s.KW * s.Wp + t % s.KW);
                }
                for (int block = 0; block < s.OutPadded / DirectRows; block++)
                    for (int p = 0; p < pairs; p += columns)
                        WeightGradientTile<V>(dyGrid + (long)block * DirectRows * span, span, grid, pairAt + p,
                            partial, block * DirectRows, s.Out, p, Math.Min(columns, pairs - p), pairs);
            }
        }
    }

    /// <summary>partial[o][p] += Σ_q dyGrid[o][q] · grid[pairAt[p] + q] for 4 output rows × P pairs (only the
    /// <paramref name="validPairs"/> first and the rows below <paramref name="outChannels"/> are stored).</summary>
    private static void WeightGradientTile<V>(float* dyRows, long span, float* grid, int* pairAt, float* partial, int o0, int outChannels,
        int p0, int validPairs, int pairs) where V : struct, IVec<V>
    {
        bool wide = TileColumns<V>() == 4;
        V a00 = V.Splat(0f), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00,
          a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        float* x0p = grid + pairAt[0], x1p = grid + pairAt[1];
        float* x2p = wide ? grid + pairAt[2] : null, x3p = wide ? grid + pairAt[3] : null;
        float* d0p = dyRows, d1p = d0p + span, d2p = d1p + span, d3p = d2p + span;
        for (long q = 0; q < span; q += V.Count)
        {
            V d0 = V.Load(d0p + q), d1 = V.Load(d1p + q), d2 = V.Load(d2p + q), d3 = V.Load(d3p + q);
            V x0 = V.Load(x0p + q), x1 = V.Load(x1p + q);
            a00 = V.Fma(d0, x0, a00); a01 = V.Fma(d0, x1, a01);
            a10 = V.Fma(d1, x0, a10); a11 = V.Fma(d1, x1, a11);
            a20 = V.Fma(d2, x0, a20); a21 = V.Fma(d2, x1, a21);
            a30 = V.Fma(d3, x0, a30); a31 = V.Fma(d3, x1, a31);
            if (wide)
            {
                V x2 = V.Load(x2p + q), x3 = V.Load(x3p + q);
                a02 = V.Fma(d0, x2, a02); a03 = V.Fma(d0, x3, a03);
                a12 = V.Fma(d1, x2, a12); a13 = V.Fma(d1, x3, a13);
                a22 = V.Fma(d2, x2, a22); a23 = V.Fma(d2, x3, a23);
                a32 = V.Fma(d3, x2, a32); a33 = V.Fma(d3, x3, a33);
            }
        }
        float* sums = stackalloc float[16];
        sums[0] = V.SumAcross(a00); sums[1] = V.SumAcross(a01); sums[2] = V.SumAcross(a02); sums[3] = V.SumAcross(a03);
        sums[4] = V.SumAcross(a10); sums[5] = V.SumAcross(a11); sums[6] = V.SumAcross(a12); sums[7] = V.SumAcross(a13);
        sums[8] = V.SumAcross(a20); sums[9] = V.SumAcross(a21); sums[10] = V.SumAcross(a22); sums[11] = V.SumAcross(a23);
        sums[12] = V.SumAcross(a30); sums[13] = V.SumAcross(a31); sums[14] = V.SumAcross(a32); sums[15] = V.SumAcross(a33);
        for (int k = 0; k < DirectRows && o0 + k < outChannels; k++)
            for (int j = 0; j < validPairs; j++)
                partial[(long)(o0 + k) * pairs + p0 + j] += sums[k * 4 + j];
    }
}
