using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Nabla.Kernels.Cpu;

// Direct convolution (no dilation, one group) without an im2col matrix. A chunk of images is copied, zero-padded,
// into a "grid": one row per channel holding the images' padded planes (Hp × Wp) side by side. With stride 1, output
// (n, oh, ow) is then grid position q = n·Hp·Wp + oh·Wp + ow, and tap (i, j) reads the input grid at q + i·Wp + j for
// every channel: the same shift for all outputs, so a vector of consecutive q is one contiguous load per tap and
// channel, whatever the image width. With stride s each channel takes s² rows, one per phase (a, b) holding the padded
// positions (s·u + a, s·v + b) as planes of Hq × Wq = ⌈Hp/s⌉ × ⌈Wp/s⌉; output (n, oh, ow) is q = n·Hq·Wq + oh·Wq + ow
// and tap (i, j) reads phase (i mod s, j mod s) at q + ⌊i/s⌋·Wq + ⌊j/s⌋: contiguous again. The positions of q that
// are no output (the padding columns and rows) are computed and dropped; they cost Hq·Wq / (OH·OW) - 1 extra work
// (15% at 28×28, 65% at 7×7).
//
// The product runs as a register tile of R output channels × P vectors of q (8 × 3 with Vector512's 32 registers,
// 4 × 2 below), the weights packed so that the R output channels of one (channel, tap) are adjacent and broadcast one
// by one: per (channel, tap), P loads (most of them unaligned) and R broadcasts feed R·P multiply-adds. The input
// gradient is the same product on the padded dy with the kernel flipped and transposed (at stride s, one such product
// per phase of the input, each with the sub-kernel of the taps that reach that phase); the weight gradient is a
// tile of 4 output channels × P (channel, tap) pairs, each a dot product of a dy grid row with a shifted input row.
// On the AVX-512 path, rows of 7 to 14 outputs with whole pairs of 16-channel vectors run tiles over output channels
// instead (UsesChannelTiles), which compute the outputs alone. Both kinds of tile take the input channels in blocks,
// one pass over the chunk per block adding into the outputs, so that a block's weights and inputs stay in L1.
// Where a kernel row's KW·C values fill the channel-last tiles well (ChannelLastPays), the weight gradient and, on the
// AVX-512 path, the strided input gradient run on channel-last copies instead (CpuBackend.ChannelLastConvolution.cs).
// The tile kernels here and there are compiled optimised at once (AggressiveOptimization): the tiered JIT's first
// version of a tile does not inline its multiply-adds, and it ran for the first tens of training steps.
public sealed unsafe partial class CpuBackend
{
    /// <summary>Output channels per register tile of the weight gradient (dy is zero-padded to a multiple of it).</summary>
    private const int WeightGradientRows = 4;

    /// <summary>Floats of a chunk's grids kept at about the size of L2, so each chunk is read from cache by all its tiles.</summary>
    private const long DirectChunkFloats = 96 * 1024;

    public void DirectConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y)
    {
        var s = Correlation.Forward(g);
        DirectCorrelation(s, x, w, bias, y, Placement.Dense(s));
    }

    public void DirectConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx)
    {
        if (g.StrideH == 1)
        {
            var s = Correlation.InputGradient(g);
            DirectCorrelation(s, dy, w, null, dx, Placement.Dense(s));
            return;
        }
        // The scatter's tile with AVX2 (4 positions × 2 vectors) ran 1.3–1.7× slower than the phases (ResNet-20's
        // 16→32 stride-2 layer, NABLA_ISA=avx2 on the Xeon, loaded, 1 thread CPU time): AVX-512 only.
        if (CpuFeatures.Effective == Isa.Avx512 && ChannelLastPays(g))
        {
            StridedInputGradient(g, dy, w, dx);
            return;
        }
        // Stride s: the input positions of phase (a, b) — padded row s·u + a, column s·v + b — receive dy[u - i', v - j']
        // through the taps (a + s·i', b + s·j') only: a full stride-1 correlation of dy with that sub-kernel, flipped.
        // Each input position is in one phase; positions no tap reaches stay zero.
        new Span<float>(dx, checked((int)((long)g.Planes * g.Height * g.Width))).Clear();
        for (int a = 0; a < g.StrideH; a++)
            for (int b = 0; b < g.StrideW; b++)
            {
                int ka = (g.KernelH - a + g.StrideH - 1) / g.StrideH, kb = (g.KernelW - b + g.StrideW - 1) / g.StrideW;
                if (ka == 0 || kb == 0) continue;
                var s = new Correlation(g.Batch, g.OutChannels, g.OutHeight, g.OutWidth, g.Channels, ka, kb, ka - 1, kb - 1, 1, true,
                    g.StrideH, a, b, g.KernelH, g.KernelW);
                DirectCorrelation(s, dy, w, null, dx, new Placement(g.StrideH, a - g.PadH, b - g.PadW, g.Height, g.Width));
            }
    }

    public void DirectConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw)
    {
        if (ChannelLastPays(g))
        {
            ChannelLastWeightGradient(g, dy, x, dw);
            return;
        }
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

    /// <summary>A correlation of In-channel images (H × W, padded by PadH, PadW) with Out × In kernels of KH × KW at
    /// stride S: the forward of a convolution, or, with <see cref="Flipped"/>, the input gradient of a stride-1 one (the
    /// weight read as w[in, out] rotated by 180°). A flipped correlation can also run one phase of a strided
    /// convolution's input gradient: its kernel is then the sub-kernel of taps (PhaseA + KernelStride·r,
    /// PhaseB + KernelStride·c) of the FullKH × FullKW weight.</summary>
    private readonly record struct Correlation(int Batch, int In, int H, int W, int Out, int KH, int KW, int PadH, int PadW, int S, bool Flipped,
        int KernelStride = 1, int PhaseA = 0, int PhaseB = 0, int FullKH = 0, int FullKW = 0)
    {
        public static Correlation Forward(in Conv2dGeometry g) =>
            new(g.Batch, g.Channels, g.Height, g.Width, g.OutChannels, g.KernelH, g.KernelW, g.PadH, g.PadW, g.StrideH, false);

        // Stride 1: dx = dy padded by (k - 1 - pad) correlated with the flipped kernel (an output of dy at oh reaches
        // input rows oh - pad .. oh - pad + k - 1).
        public static Correlation InputGradient(in Conv2dGeometry g) =>
            new(g.Batch, g.OutChannels, g.OutHeight, g.OutWidth, g.Channels, g.KernelH, g.KernelW,
                g.KernelH - 1 - g.PadH, g.KernelW - 1 - g.PadW, 1, true);

        public int Hp => H + 2 * PadH;
        public int Wp => W + 2 * PadW;
        /// <summary>Rows and columns of one phase plane, and its size.</summary>
        public int Hq => (Hp + S - 1) / S;
        public int Wq => (Wp + S - 1) / S;
        public int Plane => Hq * Wq;
        public int OH => (Hp - KH) / S + 1;
        public int OW => (Wp - KW) / S + 1;
        public int Taps => KH * KW;
        /// <summary>Grid rows per input channel: one per phase.</summary>
        public int Phases => S * S;

        /// <summary>Where tap t reads, relative to grid position q of its channel's first phase row.</summary>
        public long TapOffset(int t, long row)
        {
            int i = t / KW, j = t % KW;
            return (i % S * S + j % S) * row + (long)(i / S) * Wq + j / S;
        }
        /// <summary>Out rounded up to whole tiles of <paramref name="rows"/> output channels.</summary>
        public int OutPadded(int rows) => (Out + rows - 1) / rows * rows;

        /// <summary>The kernel weight from input channel i to output channel o at tap t, from the convolution's weight
        /// (OutChannels, Channels, KH, KW).</summary>
        public float Weight(float* w, int o, int i, int t)
        {
            if (!Flipped) return w[((long)o * In + i) * Taps + t];
            int kh = FullKH == 0 ? KH : FullKH, kw = FullKW == 0 ? KW : FullKW;
            int r = PhaseA + KernelStride * (KH - 1 - t / KW), c = PhaseB + KernelStride * (KW - 1 - t % KW);
            return w[(((long)i * Out + o) * kh + r) * kw + c];
        }
    }

    /// <summary>Where a correlation's output (oh, ow) goes: row Stride·oh + OffsetH, column Stride·ow + OffsetW of planes
    /// of Height × Width (outputs that fall outside are dropped).</summary>
    private readonly record struct Placement(int Stride, int OffsetH, int OffsetW, int Height, int Width)
    {
        public static Placement Dense(in Correlation s) => new(1, 0, 0, s.OH, s.OW);
    }

    /// <summary>Output channels per register tile of the forward product, for the instruction set in effect (the
    /// kernels' vector width follows it too): the weights are packed and zero-padded to a multiple of it.</summary>
    private static int ForwardRows => CpuFeatures.Effective == Isa.Avx512 ? 8 : 4;

    /// <summary>Vectors of grid positions per forward tile, with <see cref="ForwardRows"/> rows.</summary>
    private static int ForwardColumns(int rows) => rows == 8 ? 3 : 2;

    /// <summary>(channel, tap) pairs per weight-gradient tile.</summary>
    private static int PairColumns<V>() where V : struct, IVec<V> => V.Count >= 16 ? 4 : 2;

    /// <summary>Grid positions of a chunk of images, rounded up to whole tiles of <paramref name="vectors"/> vectors.</summary>
    private static long GridSpan<V>(in Correlation s, int images, int vectors) where V : struct, IVec<V>
    {
        long tile = vectors * V.Count;
        return ((long)images * s.Plane + tile - 1) / tile * tile;
    }

    /// <summary>Floats of an input grid row: the span plus the furthest tap's reach, in whole cache lines.</summary>
    private static long InputRow(in Correlation s, long span) => ThreadScratch.Aligned(span + (long)((s.KH - 1) / s.S) * s.Wq + (s.KW - 1) / s.S);

    /// <summary>Images per chunk: as many as keep its grids near <see cref="DirectChunkFloats"/>, at most <paramref name="limit"/>.</summary>
    private static int ChunkImages(in Correlation s, int limit) =>
        (int)Math.Clamp(DirectChunkFloats / Math.Max(1L, (long)(s.In * s.Phases + s.OutPadded(8)) * s.Plane), 1, Math.Max(1, limit));

    /// <summary>Broadcast operands per tile over output channels: consecutive positions of one output row in
    /// <see cref="DirectChannelTiles{V, TTile}"/>, (channel, tap) pairs in <see cref="WeightGradientChannelTiles{V}"/>.</summary>
    private const int ChannelTileColumns = 7;

    /// <summary>
    /// Whether a correlation runs as <see cref="DirectChannelTiles{V, TTile}"/> (vectors over output channels) rather than
    /// the tiles over grid positions: on the AVX-512 path, stride 1, whole pairs of 16-channel vectors, and rows of 7
    /// to 14 outputs. There the position tiles pay for the padding columns and rows of the grid (31 % extra work at
    /// 14×14, 65 % at 7×7; ResNet-20's second and third stages), while channel tiles compute the outputs alone.
    /// </summary>
    private static bool UsesChannelTiles(in Correlation s) =>
        CpuFeatures.Effective == Isa.Avx512 && s.S == 1 && s.Out % 32 == 0 && s.OW is >= ChannelTileColumns and <= 14;

    private static void DirectCorrelation(in Correlation s, float* x, float* w, float* bias, float* y, Placement place)
    {
        // Packed weights for position tiles: [output block][input channel][tap][the rows outputs of the block], zero
        // past Out; for channel tiles: [input channel][tap][output channel].
        int rows = ForwardRows;
        // Channel tiles write the outputs themselves, channel-last, and place them densely (stride 1, no offset).
        bool channelTiles = UsesChannelTiles(s) && place == Placement.Dense(s);
        long packedCount = (long)s.OutPadded(rows) * s.In * s.Taps;
        float* packed = (float*)NativeMemory.AlignedAlloc((nuint)(packedCount * sizeof(float)), 64);
        try
        {
            if (channelTiles)
            {
                for (int i = 0; i < s.In; i++)
                    for (int t = 0; t < s.Taps; t++)
                        for (int o = 0; o < s.Out; o++)
                            packed[((long)i * s.Taps + t) * s.Out + o] = s.Weight(w, o, i, t);
            }
            else
                for (int block = 0; block < s.OutPadded(rows) / rows; block++)
                    for (int i = 0; i < s.In; i++)
                        for (int t = 0; t < s.Taps; t++)
                            for (int k = 0; k < rows; k++)
                            {
                                int o = block * rows + k;
                                packed[((((long)block * s.In + i) * s.Taps + t) * rows) + k] = o < s.Out ? s.Weight(w, o, i, t) : 0f;
                            }
            // Enough chunks to keep every thread busy twice over, where the batch allows.
            int chunk = ChunkImages(s, (s.Batch + 2 * WorkerPool.ConcurrentThreads - 1) / (2 * WorkerPool.ConcurrentThreads));
            ParallelKernel.Items((s.Batch + chunk - 1) / chunk, new DirectChunks(s, place, chunk, rows, channelTiles, x, packed, bias, y));
        }
        finally { NativeMemory.AlignedFree(packed); }
    }

    private readonly struct DirectChunks(Correlation s, Placement place, int chunk, int rows, bool channelTiles, float* x, float* packed, float* bias, float* y)
        : IKernelItems
    {
        public void Execute<V>(int item) where V : struct, IVec<V>
        {
            int n0 = item * chunk, images = Math.Min(chunk, s.Batch - n0);
            long span = GridSpan<V>(s, images, ForwardColumns(rows)), row = InputRow(s, span);
            long channelStride = s.Phases * row;
            float* grid = ThreadScratch.Floats(s.In * channelStride + s.OutPadded(rows) * span);
            float* output = grid + s.In * channelStride;
            FillGrid<V>(s, x, n0, images, grid, row);
            int* tap = stackalloc int[s.Taps];
            for (int t = 0; t < s.Taps; t++) tap[t] = (int)s.TapOffset(t, row);
            if (channelTiles)
            {
                if (V.Count == 16 && s.Out % (4 * V.Count) == 0) DirectChannelTiles<V, FourVectorTile>(s, images, packed, tap, grid, channelStride, output);
                else DirectChannelTiles<V, TwoVectorTile>(s, images, packed, tap, grid, channelStride, output);
                PlaceChannelLast(s, output, images, bias, y + (long)n0 * s.Out * s.OH * s.OW);
                return;
            }
            for (int i0 = 0; i0 < s.In; i0 += PositionTileBlock)
                for (int block = 0; block < s.OutPadded(rows) / rows; block++)
                {
                    float* blockWeights = packed + ((long)block * s.In + i0) * s.Taps * rows, blockOutput = output + (long)block * rows * span;
                    float* blockGrid = grid + i0 * channelStride;
                    int channels = Math.Min(PositionTileBlock, s.In - i0);
                    // Eight rows only where the vectors are 512-bit (ForwardRows); the generic instance for narrower ones never runs.
                    if (rows == 8) DirectTiles8x3<V>(blockWeights, channels, s.Taps, tap, blockGrid, channelStride, blockOutput, span, i0 > 0);
                    else DirectTiles4x2<V>(blockWeights, channels, s.Taps, tap, blockGrid, channelStride, blockOutput, span, i0 > 0);
                }
            // Crop the grid to the outputs, adding the bias, and place them.
            int OH = s.OH, OW = s.OW;
            for (int n = 0; n < images; n++)
                for (int o = 0; o < s.Out; o++)
                {
                    float b = bias == null ? 0f : bias[o];
                    float* src = output + (long)o * span + (long)n * s.Plane;
                    float* dst = y + ((long)(n0 + n) * s.Out + o) * place.Height * place.Width;
                    if (place.Stride == 1)
                    {
                        for (int oh = 0; oh < OH; oh++)
                            AddBiasRow<V>(src + (long)oh * s.Wq, dst + (long)oh * OW, OW, b);
                        continue;
                    }
                    for (int oh = 0; oh < OH; oh++)
                    {
                        int h = place.Stride * oh + place.OffsetH;
                        if (h < 0 || h >= place.Height) continue;
                        for (int ow = 0; ow < OW; ow++)
                        {
                            int w = place.Stride * ow + place.OffsetW;
                            if (w >= 0 && w < place.Width) dst[(long)h * place.Width + w] = src[(long)oh * s.Wq + ow] + b;
                        }
                    }
                }
        }
    }

    /// <summary>
    /// Input channels per pass of the position tiles (<see cref="DirectTiles8x3{V}"/>, <see cref="DirectTiles4x2{V}"/>)
    /// over a chunk: each pass adds a block's products into the output rows, so the block's weights and input rows are
    /// what the tiles read again and again, rather than all the channels' (at 64 channels the inputs under one 8 × 48
    /// tile are 38 KiB with 18 KiB of weights, more than L1 holds). ResNet-18 layer1's forward, in one process against
    /// one pass over all 64 channels: 9.68 → 8.97 ms on 2 threads (16-channel blocks: 9.10; conv 10).
    /// </summary>
    private const int PositionTileBlock = 32;

    /// <summary>Input channels per pass of <see cref="DirectChannelTiles{V, TTile}"/> over a chunk's tiles.</summary>
    private const int ChannelTileBlock = 16;

    /// <summary>
    /// out[m][o] = Σ_i Σ_t packed[i][t][o] · grid[i][q(m) + tap[t]] for the chunk's output positions m = (image, oh, ow)
    /// alone (none of the grid's padding), channel-last, as tiles of <typeparamref name="TTile"/>'s vectors of output
    /// channels × 7 consecutive positions of a row. The input channels go in blocks of <see cref="ChannelTileBlock"/>,
    /// each a pass over all the tiles that adds into their sums in <paramref name="output"/>: a block's weights for a
    /// tile's channels (16 × 9 taps × 32 floats, 18 KiB, for two vectors) stay in L1 for the whole pass, where all the
    /// channels' weights (73 KiB at 64 × 64) streamed from L2 for every tile: ResNet-20's 14×14 and 7×7 forward 1.43×
    /// and 1.45× faster with the blocks (1 thread, docs/optimization-log.md, conv 10). The sums stay channel-last, so a
    /// tile stores whole vectors, and <see cref="PlaceChannelLast"/> moves them into the output once (the tiles wrote
    /// them transposed, element by element, into a grid that was then cropped). A row whose width is not a multiple
    /// of 7 ends with a tile moved back to overlap the one before; the overlap is computed twice, which only a single
    /// pass over all the channels may do (it writes the same values again).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DirectChannelTiles<V, TTile>(in Correlation s, int images, float* packed, int* tap, float* grid, long channelStride, float* output)
        where V : struct, IVec<V> where TTile : struct, IChannelTile
    {
        int OH = s.OH, OW = s.OW, taps = s.Taps, channels = s.In, outChannels = s.Out;
        int block = OW % ChannelTileColumns == 0 ? ChannelTileBlock : channels;
        for (int o0 = 0; o0 < outChannels; o0 += TTile.Vectors * V.Count)
            for (int i0 = 0; i0 < channels; i0 += block)
                for (int image = 0; image < images; image++)
                    for (int oh = 0; oh < OH; oh++)
                        for (int ow = 0; ow < OW; ow += ChannelTileColumns)
                        {
                            int first = Math.Min(ow, OW - ChannelTileColumns);
                            long q = (long)image * s.Plane + (long)oh * s.Wq + first;
                            // The first block starts from zero (and so may overlap a tile already stored); the others add.
                            TTile.Run<V>(output + (((long)image * OH + oh) * OW + first) * outChannels + o0, outChannels, i0 > 0,
                                packed + (long)i0 * taps * outChannels + o0, grid + i0 * channelStride + q, Math.Min(block, channels - i0),
                                channelStride, tap, taps);
                        }
    }

    /// <summary>A register tile of <see cref="DirectChannelTiles{V, TTile}"/>: <see cref="Vectors"/> vectors of output
    /// channels × 7 positions, its sums at sums[position · outChannels + channel] (added to when <c>add</c>), over
    /// <c>channels</c> input channels whose grid rows start at xr and whose packed weights start at wp.</summary>
    private interface IChannelTile
    {
        static abstract int Vectors { get; }

        static abstract void Run<V>(float* sums, int outChannels, bool add, float* wp, float* xr, int channels, long channelStride, int* tap, int taps)
            where V : struct, IVec<V>;
    }

    /// <summary>Two vectors of output channels: per (channel, tap) two weight loads and 7 broadcast inputs feed 14
    /// multiply-adds.</summary>
    private readonly struct TwoVectorTile : IChannelTile
    {
        public static int Vectors => 2;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run<V>(float* sums, int outChannels, bool add, float* wp, float* xr, int channels, long channelStride, int* tap, int taps)
            where V : struct, IVec<V>
        {
            int n = V.Count;
            V a00 = V.Splat(0f), a01 = a00, a02 = a00, a03 = a00, a04 = a00, a05 = a00, a06 = a00,
              a10 = a00, a11 = a00, a12 = a00, a13 = a00, a14 = a00, a15 = a00, a16 = a00;
            if (add)
            {
                float* r = sums;
                a00 = V.Load(r); a10 = V.Load(r + n); r += outChannels;
                a01 = V.Load(r); a11 = V.Load(r + n); r += outChannels;
                a02 = V.Load(r); a12 = V.Load(r + n); r += outChannels;
                a03 = V.Load(r); a13 = V.Load(r + n); r += outChannels;
                a04 = V.Load(r); a14 = V.Load(r + n); r += outChannels;
                a05 = V.Load(r); a15 = V.Load(r + n); r += outChannels;
                a06 = V.Load(r); a16 = V.Load(r + n);
            }
            for (int i = 0; i < channels; i++, xr += channelStride)
                for (int t = 0; t < taps; t++, wp += outChannels)
                {
                    float* at = xr + tap[t];
                    V w0 = V.Load(wp), w1 = V.Load(wp + n);
                    V b = V.Splat(at[0]); V.AddProduct(ref a00, w0, b); V.AddProduct(ref a10, w1, b);
                    b = V.Splat(at[1]); V.AddProduct(ref a01, w0, b); V.AddProduct(ref a11, w1, b);
                    b = V.Splat(at[2]); V.AddProduct(ref a02, w0, b); V.AddProduct(ref a12, w1, b);
                    b = V.Splat(at[3]); V.AddProduct(ref a03, w0, b); V.AddProduct(ref a13, w1, b);
                    b = V.Splat(at[4]); V.AddProduct(ref a04, w0, b); V.AddProduct(ref a14, w1, b);
                    b = V.Splat(at[5]); V.AddProduct(ref a05, w0, b); V.AddProduct(ref a15, w1, b);
                    b = V.Splat(at[6]); V.AddProduct(ref a06, w0, b); V.AddProduct(ref a16, w1, b);
                }
            V.Store(sums, a00); V.Store(sums + n, a10); sums += outChannels;
            V.Store(sums, a01); V.Store(sums + n, a11); sums += outChannels;
            V.Store(sums, a02); V.Store(sums + n, a12); sums += outChannels;
            V.Store(sums, a03); V.Store(sums + n, a13); sums += outChannels;
            V.Store(sums, a04); V.Store(sums + n, a14); sums += outChannels;
            V.Store(sums, a05); V.Store(sums + n, a15); sums += outChannels;
            V.Store(sums, a06); V.Store(sums + n, a16);
        }
    }

    /// <summary>Four vectors of output channels (64 with Vector512): 4 weight loads and 7 broadcasts per 28
    /// multiply-adds. The 28 sums, the 4 weights and the broadcast need 33 registers of 32, so the JIT keeps one sum on
    /// the stack (a load and a store per 28 multiply-adds; it does not fold the broadcast into the FMA). ResNet-20's
    /// 7×7 stage, forward + backward, in one process against the two-vector tile: 8.71 → 7.88 ms on 1 thread, 4.76 →
    /// 4.17 ms on 2 (conv 10).</summary>
    private readonly struct FourVectorTile : IChannelTile
    {
        public static int Vectors => 4;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run<V>(float* sums, int outChannels, bool add, float* wp, float* xr, int channels, long channelStride, int* tap, int taps)
            where V : struct, IVec<V>
        {
            int n = V.Count;
            V a00 = V.Splat(0f), a01 = a00, a02 = a00, a03 = a00, a04 = a00, a05 = a00, a06 = a00,
              a10 = a00, a11 = a00, a12 = a00, a13 = a00, a14 = a00, a15 = a00, a16 = a00,
              a20 = a00, a21 = a00, a22 = a00, a23 = a00, a24 = a00, a25 = a00, a26 = a00,
              a30 = a00, a31 = a00, a32 = a00, a33 = a00, a34 = a00, a35 = a00, a36 = a00;
            if (add)
            {
                float* r = sums;
                a00 = V.Load(r); a10 = V.Load(r + n); a20 = V.Load(r + 2 * n); a30 = V.Load(r + 3 * n); r += outChannels;
                a01 = V.Load(r); a11 = V.Load(r + n); a21 = V.Load(r + 2 * n); a31 = V.Load(r + 3 * n); r += outChannels;
                a02 = V.Load(r); a12 = V.Load(r + n); a22 = V.Load(r + 2 * n); a32 = V.Load(r + 3 * n); r += outChannels;
                a03 = V.Load(r); a13 = V.Load(r + n); a23 = V.Load(r + 2 * n); a33 = V.Load(r + 3 * n); r += outChannels;
                a04 = V.Load(r); a14 = V.Load(r + n); a24 = V.Load(r + 2 * n); a34 = V.Load(r + 3 * n); r += outChannels;
                a05 = V.Load(r); a15 = V.Load(r + n); a25 = V.Load(r + 2 * n); a35 = V.Load(r + 3 * n); r += outChannels;
                a06 = V.Load(r); a16 = V.Load(r + n); a26 = V.Load(r + 2 * n); a36 = V.Load(r + 3 * n);
            }
            for (int i = 0; i < channels; i++, xr += channelStride)
                for (int t = 0; t < taps; t++, wp += outChannels)
                {
                    float* at = xr + tap[t];
                    V w0 = V.Load(wp), w1 = V.Load(wp + n), w2 = V.Load(wp + 2 * n), w3 = V.Load(wp + 3 * n);
                    V b = V.Splat(at[0]); V.AddProduct(ref a00, w0, b); V.AddProduct(ref a10, w1, b);
                    V.AddProduct(ref a20, w2, b); V.AddProduct(ref a30, w3, b);
                    b = V.Splat(at[1]); V.AddProduct(ref a01, w0, b); V.AddProduct(ref a11, w1, b);
                    V.AddProduct(ref a21, w2, b); V.AddProduct(ref a31, w3, b);
                    b = V.Splat(at[2]); V.AddProduct(ref a02, w0, b); V.AddProduct(ref a12, w1, b);
                    V.AddProduct(ref a22, w2, b); V.AddProduct(ref a32, w3, b);
                    b = V.Splat(at[3]); V.AddProduct(ref a03, w0, b); V.AddProduct(ref a13, w1, b);
                    V.AddProduct(ref a23, w2, b); V.AddProduct(ref a33, w3, b);
                    b = V.Splat(at[4]); V.AddProduct(ref a04, w0, b); V.AddProduct(ref a14, w1, b);
                    V.AddProduct(ref a24, w2, b); V.AddProduct(ref a34, w3, b);
                    b = V.Splat(at[5]); V.AddProduct(ref a05, w0, b); V.AddProduct(ref a15, w1, b);
                    V.AddProduct(ref a25, w2, b); V.AddProduct(ref a35, w3, b);
                    b = V.Splat(at[6]); V.AddProduct(ref a06, w0, b); V.AddProduct(ref a16, w1, b);
                    V.AddProduct(ref a26, w2, b); V.AddProduct(ref a36, w3, b);
                }
            V.Store(sums, a00); V.Store(sums + n, a10); V.Store(sums + 2 * n, a20); V.Store(sums + 3 * n, a30); sums += outChannels;
            V.Store(sums, a01); V.Store(sums + n, a11); V.Store(sums + 2 * n, a21); V.Store(sums + 3 * n, a31); sums += outChannels;
            V.Store(sums, a02); V.Store(sums + n, a12); V.Store(sums + 2 * n, a22); V.Store(sums + 3 * n, a32); sums += outChannels;
            V.Store(sums, a03); V.Store(sums + n, a13); V.Store(sums + 2 * n, a23); V.Store(sums + 3 * n, a33); sums += outChannels;
            V.Store(sums, a04); V.Store(sums + n, a14); V.Store(sums + 2 * n, a24); V.Store(sums + 3 * n, a34); sums += outChannels;
            V.Store(sums, a05); V.Store(sums + n, a15); V.Store(sums + 2 * n, a25); V.Store(sums + 3 * n, a35); sums += outChannels;
            V.Store(sums, a06); V.Store(sums + n, a16); V.Store(sums + 2 * n, a26); V.Store(sums + 3 * n, a36);
        }
    }

    /// <summary>y[image][o][m] = out[image][m][o] + bias[o] for the chunk's images: the channel tiles' channel-last
    /// sums moved into the (images, Out, OH·OW) output.</summary>
    private static void PlaceChannelLast(in Correlation s, float* output, int images, float* bias, float* y)
    {
        int outChannels = s.Out, positions = s.OH * s.OW;
        for (int image = 0; image < images; image++)
            for (int o = 0; o < outChannels; o++)
            {
                float b = bias == null ? 0f : bias[o];
                float* src = output + (long)image * positions * outChannels + o, dst = y + ((long)image * outChannels + o) * positions;
                for (int m = 0; m < positions; m++) dst[m] = src[(long)m * outChannels] + b;
            }
    }

    /// <summary>dst[k] = src[k] + b over [0, n), in whole vectors where n reaches one: the last is moved back to end at n
    /// (overlapping the one before, whose values it writes again), so a 28-wide row takes two 16-wide vectors rather
    /// than one and 12 scalars.</summary>
    private static void AddBiasRow<V>(float* src, float* dst, int n, float b) where V : struct, IVec<V>
    {
        var bv = V.Splat(b);
        if (n < V.Count)
        {
            for (int k = 0; k < n; k++) dst[k] = src[k] + b;
            return;
        }
        for (int k = 0; k + V.Count < n; k += V.Count) V.Store(dst + k, V.Load(src + k) + bv);
        V.Store(dst + n - V.Count, V.Load(src + n - V.Count) + bv);
    }

    /// <summary>dst[k] = src[k] over [0, n) as <see cref="AddBiasRow"/> writes (src and dst must not overlap).</summary>
    private static void CopyRow<V>(float* src, float* dst, int n) where V : struct, IVec<V>
    {
        if (n < V.Count)
        {
            for (int k = 0; k < n; k++) dst[k] = src[k];
            return;
        }
        for (int k = 0; k + V.Count < n; k += V.Count) V.Store(dst + k, V.Load(src + k));
        V.Store(dst + n - V.Count, V.Load(src + n - V.Count));
    }

    /// <summary>Copies images [n0, n0 + images) of x (Batch, In, H, W) into the zero-padded grid (In · Phases rows of
    /// <paramref name="row"/> floats).</summary>
    private static void FillGrid<V>(in Correlation s, float* x, int n0, int images, float* grid, long row) where V : struct, IVec<V>
    {
        new Span<float>(grid, checked((int)(s.In * s.Phases * row))).Clear();
        for (int i = 0; i < s.In; i++)
            for (int n = 0; n < images; n++)
            {
                float* src = x + ((long)(n0 + n) * s.In + i) * s.H * s.W;
                float* plane = grid + i * s.Phases * row + (long)n * s.Plane;
                if (s.S == 1)
                {
                    float* dst = plane + (long)s.PadH * s.Wp + s.PadW;
                    for (int h = 0; h < s.H; h++)
                        CopyRow<V>(src + (long)h * s.W, dst + (long)h * s.Wp, s.W);
                    continue;
                }
                for (int h = 0; h < s.H; h++)
                {
                    int ph = h + s.PadH;
                    SplitPhases(src + (long)h * s.W, s.W, s.PadW, s.S, row, plane + (ph % s.S) * s.S * row + (long)(ph / s.S) * s.Wq);
                }
            }
    }

    /// <summary>out[k][q] = Σ_i Σ_t packed[i][t][k] · grid[i][q + tap[t]] for the 4 output rows k of one block and all q
    /// in [0, span), a tile of 4 rows × 2 vectors at a time, over <paramref name="channels"/> input channels (one
    /// <see cref="PositionTileBlock"/>), added to out when <paramref name="add"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DirectTiles4x2<V>(float* packed, int channels, int taps, int* tap, float* grid, long channelStride, float* output, long span,
        bool add) where V : struct, IVec<V>
    {
        int n = V.Count;
        for (long q = 0; q < span; q += 2 * n)
        {
            V a00 = V.Splat(0f), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            if (add)
            {
                float* r = output + q;
                a00 = V.Load(r); a01 = V.Load(r + n); r += span;
                a10 = V.Load(r); a11 = V.Load(r + n); r += span;
                a20 = V.Load(r); a21 = V.Load(r + n); r += span;
                a30 = V.Load(r); a31 = V.Load(r + n);
            }
            float* wp = packed;
            for (int i = 0; i < channels; i++)
            {
                float* xr = grid + i * channelStride + q;
                for (int t = 0; t < taps; t++, wp += 4)
                {
                    float* at = xr + tap[t];
                    V x0 = V.Load(at), x1 = V.Load(at + n);
                    V w = V.Splat(wp[0]);
                    V.AddProduct(ref a00, w, x0); V.AddProduct(ref a01, w, x1);
                    w = V.Splat(wp[1]);
                    V.AddProduct(ref a10, w, x0); V.AddProduct(ref a11, w, x1);
                    w = V.Splat(wp[2]);
                    V.AddProduct(ref a20, w, x0); V.AddProduct(ref a21, w, x1);
                    w = V.Splat(wp[3]);
                    V.AddProduct(ref a30, w, x0); V.AddProduct(ref a31, w, x1);
                }
            }
            float* o = output + q;
            V.Store(o, a00); V.Store(o + n, a01); o += span;
            V.Store(o, a10); V.Store(o + n, a11); o += span;
            V.Store(o, a20); V.Store(o + n, a21); o += span;
            V.Store(o, a30); V.Store(o + n, a31);
        }
    }

    /// <summary>As <see cref="DirectTiles4x2"/> for 8 output rows, 3 vectors at a time: 24 accumulators, 3 loads and 8
    /// broadcasts per 24 multiply-adds (Vector512 has the 32 registers it needs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DirectTiles8x3<V>(float* packed, int channels, int taps, int* tap, float* grid, long channelStride, float* output, long span,
        bool add) where V : struct, IVec<V>
    {
        int n = V.Count;
        for (long q = 0; q < span; q += 3 * n)
        {
            V a00 = V.Splat(0f), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00, a21 = a00, a22 = a00,
              a30 = a00, a31 = a00, a32 = a00, a40 = a00, a41 = a00, a42 = a00, a50 = a00, a51 = a00, a52 = a00,
              a60 = a00, a61 = a00, a62 = a00, a70 = a00, a71 = a00, a72 = a00;
            if (add)
            {
                float* r = output + q;
                a00 = V.Load(r); a01 = V.Load(r + n); a02 = V.Load(r + 2 * n); r += span;
                a10 = V.Load(r); a11 = V.Load(r + n); a12 = V.Load(r + 2 * n); r += span;
                a20 = V.Load(r); a21 = V.Load(r + n); a22 = V.Load(r + 2 * n); r += span;
                a30 = V.Load(r); a31 = V.Load(r + n); a32 = V.Load(r + 2 * n); r += span;
                a40 = V.Load(r); a41 = V.Load(r + n); a42 = V.Load(r + 2 * n); r += span;
                a50 = V.Load(r); a51 = V.Load(r + n); a52 = V.Load(r + 2 * n); r += span;
                a60 = V.Load(r); a61 = V.Load(r + n); a62 = V.Load(r + 2 * n); r += span;
                a70 = V.Load(r); a71 = V.Load(r + n); a72 = V.Load(r + 2 * n);
            }
            float* wp = packed;
            for (int i = 0; i < channels; i++)
            {
                float* xr = grid + i * channelStride + q;
                for (int t = 0; t < taps; t++, wp += 8)
                {
                    float* at = xr + tap[t];
                    V x0 = V.Load(at), x1 = V.Load(at + n), x2 = V.Load(at + 2 * n);
                    V w = V.Splat(wp[0]);
                    V.AddProduct(ref a00, w, x0); V.AddProduct(ref a01, w, x1); V.AddProduct(ref a02, w, x2);
                    w = V.Splat(wp[1]);
                    V.AddProduct(ref a10, w, x0); V.AddProduct(ref a11, w, x1); V.AddProduct(ref a12, w, x2);
                    w = V.Splat(wp[2]);
                    V.AddProduct(ref a20, w, x0); V.AddProduct(ref a21, w, x1); V.AddProduct(ref a22, w, x2);
                    w = V.Splat(wp[3]);
                    V.AddProduct(ref a30, w, x0); V.AddProduct(ref a31, w, x1); V.AddProduct(ref a32, w, x2);
                    w = V.Splat(wp[4]);
                    V.AddProduct(ref a40, w, x0); V.AddProduct(ref a41, w, x1); V.AddProduct(ref a42, w, x2);
                    w = V.Splat(wp[5]);
                    V.AddProduct(ref a50, w, x0); V.AddProduct(ref a51, w, x1); V.AddProduct(ref a52, w, x2);
                    w = V.Splat(wp[6]);
                    V.AddProduct(ref a60, w, x0); V.AddProduct(ref a61, w, x1); V.AddProduct(ref a62, w, x2);
                    w = V.Splat(wp[7]);
                    V.AddProduct(ref a70, w, x0); V.AddProduct(ref a71, w, x1); V.AddProduct(ref a72, w, x2);
                }
            }
            float* o = output + q;
            V.Store(o, a00); V.Store(o + n, a01); V.Store(o + 2 * n, a02); o += span;
            V.Store(o, a10); V.Store(o + n, a11); V.Store(o + 2 * n, a12); o += span;
            V.Store(o, a20); V.Store(o + n, a21); V.Store(o + 2 * n, a22); o += span;
            V.Store(o, a30); V.Store(o + n, a31); V.Store(o + 2 * n, a32); o += span;
            V.Store(o, a40); V.Store(o + n, a41); V.Store(o + 2 * n, a42); o += span;
            V.Store(o, a50); V.Store(o + n, a51); V.Store(o + 2 * n, a52); o += span;
            V.Store(o, a60); V.Store(o + n, a61); V.Store(o + 2 * n, a62); o += span;
            V.Store(o, a70); V.Store(o + n, a71); V.Store(o + 2 * n, a72);
        }
    }

    private readonly struct DirectWeightGradientRanges(Correlation s, int chunk, int ranges, float* dy, float* x, float* partials) : IKernelItems
    {
        public void Execute<V>(int range) where V : struct, IVec<V>
        {
            int pairs = s.In * s.Taps, columns = PairColumns<V>(), outPadded = s.OutPadded(WeightGradientRows);
            int pairsPadded = (pairs + columns - 1) / columns * columns;
            float* partial = partials + (long)range * s.Out * pairs;
            new Span<float>(partial, s.Out * pairs).Clear();
            int first = (int)((long)s.Batch * range / ranges), end = (int)((long)s.Batch * (range + 1) / ranges);
            long maxSpan = GridSpan<V>(s, chunk, 1), maxRow = InputRow(s, maxSpan);
            bool channelTiles = UsesChannelTiles(s);
            float* grid = ThreadScratch.Floats(s.In * s.Phases * maxRow + outPadded * maxSpan + pairs + ChannelTileColumns);
            float* dyGrid = grid + s.In * s.Phases * maxRow;
            int* pairAt = (int*)(dyGrid + outPadded * maxSpan);
            for (int n0 = first; n0 < end; n0 += chunk)
            {
                int images = Math.Min(chunk, end - n0);
                long span = GridSpan<V>(s, images, 1), row = InputRow(s, span);
                FillGrid<V>(s, x, n0, images, grid, row);
                if (channelTiles)
                {
                    WeightGradientChannelTiles<V>(s, dy, n0, images, grid, row, dyGrid, pairAt, partial);
                    continue;
                }
                // dy on the output grid, zero wherever the grid position is no output.
                new Span<float>(dyGrid, (int)(outPadded * span)).Clear();
                int OH = s.OH, OW = s.OW;
                for (int o = 0; o < s.Out; o++)
                    for (int n = 0; n < images; n++)
                        for (int oh = 0; oh < OH; oh++)
                            CopyRow<V>(dy + (((long)(n0 + n) * s.Out + o) * OH + oh) * OW,
                                dyGrid + o * span + (long)n * s.Plane + (long)oh * s.Wq, OW);
                // Pair p = (input channel, tap) reads the input grid from here; the padding pairs repeat the last one.
                for (int p = 0; p < pairsPadded; p++)
                {
                    int pp = Math.Min(p, pairs - 1), t = pp % s.Taps;
                    pairAt[p] = (int)(pp / s.Taps * s.Phases * row + s.TapOffset(t, row));
                }
                for (int block = 0; block < outPadded / WeightGradientRows; block++)
                    for (int p = 0; p < pairs; p += columns)
                        WeightGradientTile<V>(dyGrid + (long)block * WeightGradientRows * span, span, grid, pairAt + p,
                            partial, block * WeightGradientRows, s.Out, p, Math.Min(columns, pairs - p), pairs);
            }
        }
    }

    /// <summary>
    /// The weight gradient of a chunk where the forward tiles over output channels (<see cref="UsesChannelTiles"/>):
    /// partial[o][p] += Σ over the output positions alone (no grid padding) of dy[o] · grid[pairAt[p] + q], with dy
    /// transposed to [position][output channel] so that a tile of two vectors of output channels × 7 (channel, tap)
    /// pairs takes two loads and 7 broadcasts per position for 14 multiply-adds, and needs no horizontal sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightGradientChannelTiles<V>(in Correlation s, float* dy, int n0, int images, float* grid, long row, float* dyT, int* pairAt,
        float* partial) where V : struct, IVec<V>
    {
        int n = V.Count, OH = s.OH, OW = s.OW, outChannels = s.Out, pairs = s.In * s.Taps, positions = OH * OW;
        for (int image = 0; image < images; image++)
            for (int o = 0; o < outChannels; o++)
            {
                float* src = dy + ((long)(n0 + image) * outChannels + o) * positions;
                float* dst = dyT + (long)image * positions * outChannels + o;
                for (int m = 0; m < positions; m++) dst[(long)m * outChannels] = src[m];
            }
        // The padding pairs (up to a whole tile) repeat the last one and are not stored.
        for (int p = 0; p < pairs + ChannelTileColumns; p++)
        {
            int pp = Math.Min(p, pairs - 1);
            pairAt[p] = (int)(pp / s.Taps * s.Phases * row + s.TapOffset(pp % s.Taps, row));
        }
        float* tile = stackalloc float[2 * ChannelTileColumns * V.Count];
        for (int o0 = 0; o0 < outChannels; o0 += 2 * n)
            for (int p0 = 0; p0 < pairs; p0 += ChannelTileColumns)
            {
                V a00 = V.Splat(0f), a01 = a00, a02 = a00, a03 = a00, a04 = a00, a05 = a00, a06 = a00,
                  a10 = a00, a11 = a00, a12 = a00, a13 = a00, a14 = a00, a15 = a00, a16 = a00;
                float* x0 = grid + pairAt[p0], x1 = grid + pairAt[p0 + 1], x2 = grid + pairAt[p0 + 2], x3 = grid + pairAt[p0 + 3],
                    x4 = grid + pairAt[p0 + 4], x5 = grid + pairAt[p0 + 5], x6 = grid + pairAt[p0 + 6];
                float* d = dyT + o0;
                for (int image = 0; image < images; image++)
                    for (int oh = 0; oh < OH; oh++)
                    {
                        long q = (long)image * s.Plane + (long)oh * s.Wq;
                        for (int ow = 0; ow < OW; ow++, q++, d += outChannels)
                        {
                            V d0 = V.Load(d), d1 = V.Load(d + n);
                            V b = V.Splat(x0[q]); V.AddProduct(ref a00, d0, b); V.AddProduct(ref a10, d1, b);
                            b = V.Splat(x1[q]); V.AddProduct(ref a01, d0, b); V.AddProduct(ref a11, d1, b);
                            b = V.Splat(x2[q]); V.AddProduct(ref a02, d0, b); V.AddProduct(ref a12, d1, b);
                            b = V.Splat(x3[q]); V.AddProduct(ref a03, d0, b); V.AddProduct(ref a13, d1, b);
                            b = V.Splat(x4[q]); V.AddProduct(ref a04, d0, b); V.AddProduct(ref a14, d1, b);
                            b = V.Splat(x5[q]); V.AddProduct(ref a05, d0, b); V.AddProduct(ref a15, d1, b);
                            b = V.Splat(x6[q]); V.AddProduct(ref a06, d0, b); V.AddProduct(ref a16, d1, b);
                        }
                    }
                // The tile as [pair][output channel], added into the partial gradient [output channel][pair].
                V.Store(tile, a00); V.Store(tile + n, a10); V.Store(tile + 2 * n, a01); V.Store(tile + 3 * n, a11);
                V.Store(tile + 4 * n, a02); V.Store(tile + 5 * n, a12); V.Store(tile + 6 * n, a03); V.Store(tile + 7 * n, a13);
                V.Store(tile + 8 * n, a04); V.Store(tile + 9 * n, a14); V.Store(tile + 10 * n, a05); V.Store(tile + 11 * n, a15);
                V.Store(tile + 12 * n, a06); V.Store(tile + 13 * n, a16);
                int validPairs = Math.Min(ChannelTileColumns, pairs - p0);
                for (int k = 0; k < 2 * n; k++)
                    for (int j = 0; j < validPairs; j++)
                        partial[(long)(o0 + k) * pairs + p0 + j] += tile[j * 2 * n + k];
            }
    }

    /// <summary>partial[o][p] += Σ_q dyGrid[o][q] · grid[pairAt[p] + q] for 4 output rows × P pairs (only the
    /// <paramref name="validPairs"/> first and the rows below <paramref name="outChannels"/> are stored).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightGradientTile<V>(float* dyRows, long span, float* grid, int* pairAt, float* partial, int o0, int outChannels,
        int p0, int validPairs, int pairs) where V : struct, IVec<V>
    {
        bool wide = PairColumns<V>() == 4;
        V a00 = V.Splat(0f), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00,
          a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        float* x0p = grid + pairAt[0], x1p = grid + pairAt[1];
        float* x2p = wide ? grid + pairAt[2] : null, x3p = wide ? grid + pairAt[3] : null;
        float* d0p = dyRows, d1p = d0p + span, d2p = d1p + span, d3p = d2p + span;
        for (long q = 0; q < span; q += V.Count)
        {
            V d0 = V.Load(d0p + q), d1 = V.Load(d1p + q), d2 = V.Load(d2p + q), d3 = V.Load(d3p + q);
            V x0 = V.Load(x0p + q), x1 = V.Load(x1p + q);
            V.AddProduct(ref a00, d0, x0); V.AddProduct(ref a01, d0, x1);
            V.AddProduct(ref a10, d1, x0); V.AddProduct(ref a11, d1, x1);
            V.AddProduct(ref a20, d2, x0); V.AddProduct(ref a21, d2, x1);
            V.AddProduct(ref a30, d3, x0); V.AddProduct(ref a31, d3, x1);
            if (wide)
            {
                V x2 = V.Load(x2p + q), x3 = V.Load(x3p + q);
                V.AddProduct(ref a02, d0, x2); V.AddProduct(ref a03, d0, x3);
                V.AddProduct(ref a12, d1, x2); V.AddProduct(ref a13, d1, x3);
                V.AddProduct(ref a22, d2, x2); V.AddProduct(ref a23, d2, x3);
                V.AddProduct(ref a32, d3, x2); V.AddProduct(ref a33, d3, x3);
            }
        }
        float* sums = stackalloc float[16];
        sums[0] = V.SumAcross(a00); sums[1] = V.SumAcross(a01); sums[2] = V.SumAcross(a02); sums[3] = V.SumAcross(a03);
        sums[4] = V.SumAcross(a10); sums[5] = V.SumAcross(a11); sums[6] = V.SumAcross(a12); sums[7] = V.SumAcross(a13);
        sums[8] = V.SumAcross(a20); sums[9] = V.SumAcross(a21); sums[10] = V.SumAcross(a22); sums[11] = V.SumAcross(a23);
        sums[12] = V.SumAcross(a30); sums[13] = V.SumAcross(a31); sums[14] = V.SumAcross(a32); sums[15] = V.SumAcross(a33);
        for (int k = 0; k < WeightGradientRows && o0 + k < outChannels; k++)
            for (int j = 0; j < validPairs; j++)
                partial[(long)(o0 + k) * pairs + p0 + j] += sums[k * 4 + j];
    }
}
