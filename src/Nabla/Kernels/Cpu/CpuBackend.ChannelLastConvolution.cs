using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Nabla.Kernels.Cpu;

// The weight gradient of the direct path where the channels fill its tiles (ChannelLastPays),
// dw[o, c, i, j] = Σ over images and output positions (oh, ow) of dy[n, o, oh, ow] · xpad[n, c, s·oh + i, s·ow + j],
// as one matrix product per kernel row i with the output positions as the reduction: a chunk of images is copied
// channel-last, x zero-padded to (Hp, Wp, C) and dy to (OH, OW, O), so that for a fixed kernel row the KW·C values
// (j, c) an output position multiplies are contiguous in x (the row of C channels at its leftmost tap and the KW - 1
// rows after it), at any stride. A register tile of R output channels × P vectors of (j, c) then takes P loads of x
// and R broadcasts of dy per output position for R·P multiply-adds, the accumulators being the weights themselves
// (no horizontal sums: the grid-position tiles keep vectors over positions, summed across at the end, and stream
// their rows from L2 at 2 multiply-adds per load). The tiles take a few output rows at a time, loading and storing
// their accumulators in the thread's partial gradient.
public sealed unsafe partial class CpuBackend
{
    /// <summary>Whether the channel-last kernels suit <paramref name="g"/>: a kernel row's KW·C values fill at least
    /// two thirds of the tile columns they take (48 with AVX-512, 16 with AVX2). With fewer (1–6 channels: LeNet, the
    /// stems) most of each tile multiplies padding, and the grid kernels were measured faster: LeNet's first layer
    /// (1 channel, 5×5) 5.5× on the weight gradient, ResNet-18's stem (3 channels, 7×7, stride 2) 1.2× on the weight
    /// gradient and 1.7× on the input gradient (loaded, 1 thread CPU time).</summary>
    private static bool ChannelLastPays(in Conv2dGeometry g)
    {
        int columns = g.KernelW * g.Channels, tile = (ForwardRows == 8 ? 3 * 16 : 2 * 8);
        int rounded = (columns + tile - 1) / tile * tile;
        return 3 * columns >= 2 * rounded;
    }

    private void ChannelLastWeightGradient(in Conv2dGeometry g, float* dy, float* x, float* dw)
    {
        var shape = new ChannelLastShape(g, ForwardRows);
        // Images are split into one contiguous range per thread, each summing into its own partial weight gradient;
        // the partials are added in a fixed order, so the result does not depend on which thread ran what.
        int ranges = Math.Min(WorkerPool.ConcurrentThreads, g.Batch);
        long partialFloats = shape.PartialFloats;
        float* partials = (float*)NativeMemory.AlignedAlloc((nuint)(ranges * partialFloats * sizeof(float)), 64);
        try
        {
            ParallelKernel.Items(ranges, new WeightGradientRanges(shape, ranges, dy, x, partials));
            int C = g.Channels, KH = g.KernelH, KW = g.KernelW;
            for (int o = 0; o < g.OutChannels; o++)
                for (int c = 0; c < C; c++)
                    for (int i = 0; i < KH; i++)
                        for (int j = 0; j < KW; j++)
                        {
                            long at = ((long)i * shape.OutPadded + o) * shape.ColumnsPadded + j * C + c;
                            float sum = 0;
                            for (int r = 0; r < ranges; r++) sum += partials[r * partialFloats + at];
                            dw[(((long)o * C + c) * KH + i) * KW + j] = sum;
                        }
        }
        finally { NativeMemory.AlignedFree(partials); }
    }

    /// <summary>The sizes of the channel-last products for tiles of <paramref name="Rows"/> rows (output channels in the
    /// weight gradient, positions in the input gradient) × 3 vectors with Vector512, 4 × 2 below (<see cref="ForwardRows"/>).</summary>
    private readonly record struct ChannelLastShape(Conv2dGeometry G, int Rows)
    {
        public int Hp => G.Height + 2 * G.PadH;
        public int Wp => G.Width + 2 * G.PadW;
        /// <summary>(j, c) pairs of one kernel row: the columns of the product.</summary>
        public int Columns => G.KernelW * G.Channels;
        public int OutPadded => (G.OutChannels + Rows - 1) / Rows * Rows;
        /// <summary>Columns rounded up to whole tiles of the widest vector (the padding columns are computed and dropped).</summary>
        public int ColumnsPadded => (Columns + 3 * 16 - 1) / (3 * 16) * (3 * 16);
        /// <summary>Floats of one thread's partial weight gradient, [kernel row][output channel][(j, c)].</summary>
        public long PartialFloats => (long)G.KernelH * OutPadded * ColumnsPadded;
        public long XFloats(int images) => (long)images * Hp * Wp * G.Channels;
        public long DyFloats(int images) => (long)images * G.OutHeight * G.OutWidth * OutPadded;

        /// <summary>Images per chunk: as many as keep its channel-last copies near <see cref="DirectChunkFloats"/>, at most <paramref name="limit"/>.</summary>
        public int ChunkImages(int limit) =>
            (int)Math.Clamp(DirectChunkFloats / Math.Max(1L, XFloats(1) + DyFloats(1)), 1, Math.Max(1, limit));
    }

    private readonly struct WeightGradientRanges(ChannelLastShape shape, int ranges, float* dy, float* x, float* partials) : IKernelItems
    {
        public void Execute<V>(int range) where V : struct, IVec<V>
        {
            var g = shape.G;
            int first = (int)((long)g.Batch * range / ranges), end = (int)((long)g.Batch * (range + 1) / ranges);
            int chunk = shape.ChunkImages(end - first);
            float* partial = partials + range * shape.PartialFloats;
            new Span<float>(partial, checked((int)shape.PartialFloats)).Clear();
            // A tile's last vectors may read past the last position's columns: slack at the end of x.
            long xFloats = ThreadScratch.Aligned(shape.XFloats(chunk) + shape.ColumnsPadded);
            float* xT = ThreadScratch.Floats(xFloats + shape.DyFloats(chunk));
            float* dyT = xT + xFloats;
            for (int n0 = first; n0 < end; n0 += chunk)
            {
                int images = Math.Min(chunk, end - n0);
                FillChannelLast(shape, x, dy, n0, images, xT, dyT);
                WeightGradientChunk<V>(shape, images, xT, dyT, partial);
            }
        }
    }

    /// <summary>Images [n0, n0 + images) of x into xT (images, Hp, Wp, C), zero-padded, and of dy into dyT (images,
    /// OH, OW, OutPadded), the padding channels zero.</summary>
    private static void FillChannelLast(in ChannelLastShape shape, float* x, float* dy, int n0, int images, float* xT, float* dyT)
    {
        var g = shape.G;
        int C = g.Channels, H = g.Height, W = g.Width, Wp = shape.Wp, O = g.OutChannels, OP = shape.OutPadded;
        int OH = g.OutHeight, OW = g.OutWidth;
        // The slack past the last image too: tiles read it into columns they drop, and garbage could hold denormals.
        new Span<float>(xT, checked((int)(shape.XFloats(images) + shape.ColumnsPadded))).Clear();
        long plane = (long)H * W, outPlane = (long)OH * OW;
        for (int n = 0; n < images; n++)
            TransposeChannels(x + (long)(n0 + n) * C * plane, C, H, W, xT + (((long)n * shape.Hp + g.PadH) * Wp + g.PadW) * C, (long)Wp * C, C, true);
        for (int n = 0; n < images; n++)
        {
            float* dst = dyT + (long)n * outPlane * OP;
            TransposeChannels(dy + (long)(n0 + n) * O * outPlane, O, OH, OW, dst, (long)OW * OP, OP, true);
            if (OP > O)
                for (long m = 0; m < outPlane; m++)
                    for (int o = O; o < OP; o++) dst[m * OP + o] = 0f;
        }
    }

    /// <summary>Copies channels (C, H, W) between a channel-first layout, element (c, h, w) at
    /// first[c · H · W + h · W + w], and a channel-last one at last[h · lastRow + w · lastStride + c], in the direction
    /// <paramref name="toChannelLast"/> says. Where AVX2 is in effect, blocks of 8 channels × 8 positions are
    /// transposed in registers (Transpose8x8, CpuBackend.Attention.cs), row by row so that a channel-last row stays in
    /// L1 while its channels pass; the rest goes one by one.</summary>
    private static void TransposeChannels(float* first, int channels, int H, int W, float* last, long lastRow, int lastStride, bool toChannelLast)
    {
        long plane = (long)H * W;
        const int Block = 8;
        int whole = CpuFeatures.UseAvx2 ? channels / Block * Block : 0;
        for (int h = 0; h < H; h++)
        {
            float* firstRow = first + (long)h * W, lastRowStart = last + h * lastRow;
            for (int c0 = 0; c0 < whole; c0 += Block)
            {
                float* f = firstRow + c0 * plane, l = lastRowStart + c0;
                int w = 0;
                for (; w + Block <= W; w += Block)
                {
                    if (toChannelLast) Transpose8x8(f + w, plane, l + (long)w * lastStride, lastStride);
                    else Transpose8x8(l + (long)w * lastStride, lastStride, f + w, plane);
                }
                for (; w < W; w++)
                    for (int c = 0; c < Block; c++) CopyOne(f + c * plane + w, l + (long)w * lastStride + c, toChannelLast);
            }
            for (int c = whole; c < channels; c++)
            {
                float* f = firstRow + c * plane, l = lastRowStart + c;
                for (int w = 0; w < W; w++, l += lastStride) CopyOne(f + w, l, toChannelLast);
            }
        }
    }

    private static void CopyOne(float* first, float* last, bool toChannelLast)
    {
        if (toChannelLast) *last = *first;
        else *first = *last;
    }

    /// <summary>Output positions per block of the reduction: every tile of the product takes a block before the next
    /// block starts, so that the block's rows of x and dy are read from L1 or L2 by all the tiles, not streamed from
    /// further out once per tile; the accumulators' load and store per block cost a few percent.</summary>
    private const int WeightGradientBlockPositions = 64;

    /// <summary>partial[i][o][col] += Σ over the chunk's output positions of dyT[position][o] · (the KW·C values of
    /// kernel row i at that position)[col], tile by tile, a block of whole output rows at a time.</summary>
    private static void WeightGradientChunk<V>(in ChannelLastShape shape, int images, float* xT, float* dyT, float* partial)
        where V : struct, IVec<V>
    {
        var g = shape.G;
        int C = g.Channels, OH = g.OutHeight, OW = g.OutWidth, S = g.StrideH, rows = shape.Rows;
        int tileColumns = (rows == 8 ? 3 : 2) * V.Count, blockRows = (WeightGradientBlockPositions + OW - 1) / OW;
        for (int first = 0; first < images * OH; first += blockRows)
        {
            var walk = new ChunkRows(first, Math.Min(blockRows, images * OH - first), OH, OW, (long)S * shape.Wp * C,
                (long)shape.Hp * shape.Wp * C, (long)S * C, shape.OutPadded);
            for (int i = 0; i < g.KernelH; i++)
                for (int o0 = 0; o0 < shape.OutPadded; o0 += rows)
                    for (int col = 0; col < shape.Columns; col += tileColumns)
                    {
                        float* acc = partial + ((long)i * shape.OutPadded + o0) * shape.ColumnsPadded + col;
                        float* xBase = xT + (long)i * shape.Wp * C + col;
                        // Eight rows only where the vectors are 512-bit (ForwardRows); the generic instance for narrower ones never runs.
                        if (rows == 8) WeightGradientTile8x3<V>(walk, dyT + o0, xBase, acc, shape.ColumnsPadded);
                        else WeightGradientTile4x2<V>(walk, dyT + o0, xBase, acc, shape.ColumnsPadded);
                    }
        }
    }

    /// <summary>The output rows a tile walks: <see cref="Rows"/> rows from <see cref="First"/> (counting image by image,
    /// OH rows of OW positions each). dy advances by DyStep per position (its rows are contiguous), x by XRow per
    /// output row, XImage per image and XStep per position.</summary>
    private readonly record struct ChunkRows(int First, int Rows, int OH, int OW, long XRow, long XImage, long XStep, long DyStep);

    /// <summary>acc[r][v·n + k] += Σ_positions dy[position][r] · x[position][v·n + k] for 8 output channels r × 3 vectors
    /// v (acc rows <paramref name="accStride"/> apart).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightGradientTile8x3<V>(in ChunkRows walk, float* dy, float* x, float* acc, long accStride) where V : struct, IVec<V>
    {
        int n = V.Count;
        float* a = acc;
        V a00 = V.Load(a), a01 = V.Load(a + n), a02 = V.Load(a + 2 * n); a += accStride;
        V a10 = V.Load(a), a11 = V.Load(a + n), a12 = V.Load(a + 2 * n); a += accStride;
        V a20 = V.Load(a), a21 = V.Load(a + n), a22 = V.Load(a + 2 * n); a += accStride;
        V a30 = V.Load(a), a31 = V.Load(a + n), a32 = V.Load(a + 2 * n); a += accStride;
        V a40 = V.Load(a), a41 = V.Load(a + n), a42 = V.Load(a + 2 * n); a += accStride;
        V a50 = V.Load(a), a51 = V.Load(a + n), a52 = V.Load(a + 2 * n); a += accStride;
        V a60 = V.Load(a), a61 = V.Load(a + n), a62 = V.Load(a + 2 * n); a += accStride;
        V a70 = V.Load(a), a71 = V.Load(a + n), a72 = V.Load(a + 2 * n);
        long xStep = walk.XStep, dyStep = walk.DyStep;
        float* d = dy + (long)walk.First * walk.OW * dyStep;
        for (int row = walk.First; row < walk.First + walk.Rows; row++)
        {
            int image = row / walk.OH;
            float* xp = x + image * walk.XImage + (row - image * walk.OH) * walk.XRow;
            for (int ow = 0; ow < walk.OW; ow++, xp += xStep, d += dyStep)
            {
                V x0 = V.Load(xp), x1 = V.Load(xp + n), x2 = V.Load(xp + 2 * n);
                V w = V.Splat(d[0]);
                V.AddProduct(ref a00, w, x0); V.AddProduct(ref a01, w, x1); V.AddProduct(ref a02, w, x2);
                w = V.Splat(d[1]);
                V.AddProduct(ref a10, w, x0); V.AddProduct(ref a11, w, x1); V.AddProduct(ref a12, w, x2);
                w = V.Splat(d[2]);
                V.AddProduct(ref a20, w, x0); V.AddProduct(ref a21, w, x1); V.AddProduct(ref a22, w, x2);
                w = V.Splat(d[3]);
                V.AddProduct(ref a30, w, x0); V.AddProduct(ref a31, w, x1); V.AddProduct(ref a32, w, x2);
                w = V.Splat(d[4]);
                V.AddProduct(ref a40, w, x0); V.AddProduct(ref a41, w, x1); V.AddProduct(ref a42, w, x2);
                w = V.Splat(d[5]);
                V.AddProduct(ref a50, w, x0); V.AddProduct(ref a51, w, x1); V.AddProduct(ref a52, w, x2);
                w = V.Splat(d[6]);
                V.AddProduct(ref a60, w, x0); V.AddProduct(ref a61, w, x1); V.AddProduct(ref a62, w, x2);
                w = V.Splat(d[7]);
                V.AddProduct(ref a70, w, x0); V.AddProduct(ref a71, w, x1); V.AddProduct(ref a72, w, x2);
            }
        }
        a = acc;
        V.Store(a, a00); V.Store(a + n, a01); V.Store(a + 2 * n, a02); a += accStride;
        V.Store(a, a10); V.Store(a + n, a11); V.Store(a + 2 * n, a12); a += accStride;
        V.Store(a, a20); V.Store(a + n, a21); V.Store(a + 2 * n, a22); a += accStride;
        V.Store(a, a30); V.Store(a + n, a31); V.Store(a + 2 * n, a32); a += accStride;
        V.Store(a, a40); V.Store(a + n, a41); V.Store(a + 2 * n, a42); a += accStride;
        V.Store(a, a50); V.Store(a + n, a51); V.Store(a + 2 * n, a52); a += accStride;
        V.Store(a, a60); V.Store(a + n, a61); V.Store(a + 2 * n, a62); a += accStride;
        V.Store(a, a70); V.Store(a + n, a71); V.Store(a + 2 * n, a72);
    }

    /// <summary>As <see cref="WeightGradientTile8x3"/> for 4 output channels × 2 vectors (16 registers suffice).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightGradientTile4x2<V>(in ChunkRows walk, float* dy, float* x, float* acc, long accStride) where V : struct, IVec<V>
    {
        int n = V.Count;
        float* a = acc;
        V a00 = V.Load(a), a01 = V.Load(a + n); a += accStride;
        V a10 = V.Load(a), a11 = V.Load(a + n); a += accStride;
        V a20 = V.Load(a), a21 = V.Load(a + n); a += accStride;
        V a30 = V.Load(a), a31 = V.Load(a + n);
        long xStep = walk.XStep, dyStep = walk.DyStep;
        float* d = dy + (long)walk.First * walk.OW * dyStep;
        for (int row = walk.First; row < walk.First + walk.Rows; row++)
        {
            int image = row / walk.OH;
            float* xp = x + image * walk.XImage + (row - image * walk.OH) * walk.XRow;
            for (int ow = 0; ow < walk.OW; ow++, xp += xStep, d += dyStep)
            {
                V x0 = V.Load(xp), x1 = V.Load(xp + n);
                V w = V.Splat(d[0]);
                V.AddProduct(ref a00, w, x0); V.AddProduct(ref a01, w, x1);
                w = V.Splat(d[1]);
                V.AddProduct(ref a10, w, x0); V.AddProduct(ref a11, w, x1);
                w = V.Splat(d[2]);
                V.AddProduct(ref a20, w, x0); V.AddProduct(ref a21, w, x1);
                w = V.Splat(d[3]);
                V.AddProduct(ref a30, w, x0); V.AddProduct(ref a31, w, x1);
            }
        }
        a = acc;
        V.Store(a, a00); V.Store(a + n, a01); a += accStride;
        V.Store(a, a10); V.Store(a + n, a11); a += accStride;
        V.Store(a, a20); V.Store(a + n, a21); a += accStride;
        V.Store(a, a30); V.Store(a + n, a31);
    }
}

// The input gradient of a strided direct convolution in the same channel-last layout (on the AVX-512 path, where
// ChannelLastPays), as a scatter: each output position (n, oh, ow) adds, for each kernel row i,
// Σ_o dy[n, o, oh, ow] · w[o, c, i, j] to the KW·C contiguous values (j, c) of dx at padded row s·oh + i, column s·ow.
// A register tile of 8 consecutive positions × 3 vectors of (j, c) runs the reduction over the output channels (3
// loads of packed weights and 8 broadcasts of dy per output channel), then adds its 8 rows into dx in position
// order, so overlapping windows accumulate correctly. Every multiply-add is
// an output's, where the phase-by-phase correlations compute s² small products, each with its own padded grid.
public sealed unsafe partial class CpuBackend
{
    private void StridedInputGradient(in Conv2dGeometry g, float* dy, float* w, float* dx)
    {
        var shape = new ChannelLastShape(g, ForwardRows);
        int C = g.Channels, O = g.OutChannels, KH = g.KernelH, KW = g.KernelW;
        // packed[i][o][(j, c)] = w[o, c, i, j], zero in the padding columns.
        long packedFloats = (long)KH * O * shape.ColumnsPadded;
        float* packed = (float*)NativeMemory.AlignedAlloc((nuint)(packedFloats * sizeof(float)), 64);
        try
        {
            new Span<float>(packed, checked((int)packedFloats)).Clear();
            for (int o = 0; o < O; o++)
                for (int c = 0; c < C; c++)
                    for (int i = 0; i < KH; i++)
                        for (int j = 0; j < KW; j++)
                            packed[((long)i * O + o) * shape.ColumnsPadded + j * C + c] = w[(((long)o * C + c) * KH + i) * KW + j];
            // Enough chunks to keep every thread busy twice over, where the batch allows; each writes its own images of dx.
            int threads = WorkerPool.ConcurrentThreads;
            int chunk = shape.ChunkImages((g.Batch + 2 * threads - 1) / (2 * threads));
            ParallelKernel.Items((g.Batch + chunk - 1) / chunk, new StridedInputGradientChunks(shape, chunk, dy, packed, dx));
        }
        finally { NativeMemory.AlignedFree(packed); }
    }

    private readonly struct StridedInputGradientChunks(ChannelLastShape shape, int chunk, float* dy, float* packed, float* dx) : IKernelItems
    {
        public void Execute<V>(int item) where V : struct, IVec<V>
        {
            var g = shape.G;
            int n0 = item * chunk, images = Math.Min(chunk, g.Batch - n0), rows = shape.Rows;
            int C = g.Channels, O = g.OutChannels, OH = g.OutHeight, OW = g.OutWidth, S = g.StrideH, Wp = shape.Wp;
            long outPlane = (long)OH * OW;
            int positions = checked((int)(images * outPlane)), padded = (positions + rows - 1) / rows * rows;
            // dx padded and channel-last, then a slack region: the target of the padding positions of the last tile
            // (their dy is zero) and of the columns a tile computes past KW·C (their weights are zero).
            long imageFloats = shape.XFloats(images), slack = (long)g.KernelH * Wp * C + shape.ColumnsPadded;
            long dxFloats = ThreadScratch.Aligned(imageFloats + slack), dyFloats = ThreadScratch.Aligned((long)padded * O);
            float* dxT = ThreadScratch.Floats(dxFloats + dyFloats + 2L * padded);
            float* dyT = dxT + dxFloats;
            long* at = (long*)(dyT + dyFloats);
            new Span<float>(dxT, checked((int)dxFloats)).Clear();
            for (int n = 0; n < images; n++)
                TransposeChannels(dy + (long)(n0 + n) * O * outPlane, O, OH, OW, dyT + n * outPlane * O, (long)OW * O, O, true);
            new Span<float>(dyT + (long)positions * O, (padded - positions) * O).Clear();
            for (int p = 0; p < padded; p++)
            {
                int n = (int)(p / outPlane), m = (int)(p % outPlane), oh = m / OW, ow = m % OW;
                at[p] = p < positions ? (((long)n * shape.Hp + (long)S * oh) * Wp + (long)S * ow) * C : imageFloats;
            }
            int tileColumns = 3 * V.Count;
            for (int i = 0; i < g.KernelH; i++)
                for (int col = 0; col < shape.Columns; col += tileColumns)
                {
                    float* weights = packed + (long)i * O * shape.ColumnsPadded + col, target = dxT + (long)i * Wp * C + col;
                    for (int p0 = 0; p0 < padded; p0 += rows)
                        InputGradientTile8x3<V>(dyT + (long)p0 * O, O, weights, shape.ColumnsPadded, target, at + p0);
                }
            for (int n = 0; n < images; n++)
                TransposeChannels(dx + (long)(n0 + n) * C * g.Height * g.Width, C, g.Height, g.Width,
                    dxT + (((long)n * shape.Hp + g.PadH) * Wp + g.PadW) * C, (long)Wp * C, C, false);
        }
    }

    /// <summary>For 8 positions r (dy rows <paramref name="O"/> apart) × 3 vectors: dx[at[r] + v·n ..] += Σ_o dy[r][o] ·
    /// weights[o][v·n ..] (weight rows <paramref name="weightStride"/> apart), added position by position.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientTile8x3<V>(float* dy, int O, float* weights, long weightStride, float* dx, long* at) where V : struct, IVec<V>
    {
        int n = V.Count;
        V a00 = V.Splat(0f), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00, a21 = a00, a22 = a00,
          a30 = a00, a31 = a00, a32 = a00, a40 = a00, a41 = a00, a42 = a00, a50 = a00, a51 = a00, a52 = a00,
          a60 = a00, a61 = a00, a62 = a00, a70 = a00, a71 = a00, a72 = a00;
        float* wp = weights;
        for (int o = 0; o < O; o++, wp += weightStride)
        {
            V x0 = V.Load(wp), x1 = V.Load(wp + n), x2 = V.Load(wp + 2 * n);
            float* d = dy + o;
            V b = V.Splat(d[0]);
            V.AddProduct(ref a00, b, x0); V.AddProduct(ref a01, b, x1); V.AddProduct(ref a02, b, x2);
            b = V.Splat(d[O]);
            V.AddProduct(ref a10, b, x0); V.AddProduct(ref a11, b, x1); V.AddProduct(ref a12, b, x2);
            b = V.Splat(d[2 * O]);
            V.AddProduct(ref a20, b, x0); V.AddProduct(ref a21, b, x1); V.AddProduct(ref a22, b, x2);
            b = V.Splat(d[3 * O]);
            V.AddProduct(ref a30, b, x0); V.AddProduct(ref a31, b, x1); V.AddProduct(ref a32, b, x2);
            b = V.Splat(d[4 * O]);
            V.AddProduct(ref a40, b, x0); V.AddProduct(ref a41, b, x1); V.AddProduct(ref a42, b, x2);
            b = V.Splat(d[5 * O]);
            V.AddProduct(ref a50, b, x0); V.AddProduct(ref a51, b, x1); V.AddProduct(ref a52, b, x2);
            b = V.Splat(d[6 * O]);
            V.AddProduct(ref a60, b, x0); V.AddProduct(ref a61, b, x1); V.AddProduct(ref a62, b, x2);
            b = V.Splat(d[7 * O]);
            V.AddProduct(ref a70, b, x0); V.AddProduct(ref a71, b, x1); V.AddProduct(ref a72, b, x2);
        }
        AddRow(dx + at[0], n, a00, a01, a02);
        AddRow(dx + at[1], n, a10, a11, a12);
        AddRow(dx + at[2], n, a20, a21, a22);
        AddRow(dx + at[3], n, a30, a31, a32);
        AddRow(dx + at[4], n, a40, a41, a42);
        AddRow(dx + at[5], n, a50, a51, a52);
        AddRow(dx + at[6], n, a60, a61, a62);
        AddRow(dx + at[7], n, a70, a71, a72);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void AddRow(float* p, int n, V v0, V v1, V v2)
        {
            V.Store(p, V.Load(p) + v0);
            V.Store(p + n, V.Load(p + n) + v1);
            V.Store(p + 2 * n, V.Load(p + 2 * n) + v2);
        }
    }
}
