namespace Nabla.Kernels.Cpu;

// Winograd F(2×2, 3×3) tile transforms (see Kernels/Winograd.cs), one task per plane. A tile's four input columns
// are 2·tw .. 2·tw + 3, so consecutive tiles read every other column: the plane is first copied into scratch with its
// columns split by parity (even columns, then odd ones, each row's halves a whole number of 64-byte lines), after
// which the inputs of consecutive tiles are consecutive floats and every transform is a plain vector loop over tw.
// The transforms are additions only; each output vector is stored once into its (ξ, channel) row of the tile buffer.
public sealed unsafe partial class CpuBackend
{
    public void WinogradInput(in Conv2dGeometry g, float* x, float* v) =>
        ParallelKernel.Items(g.Planes, new WinogradInputPlanes(g, x, v));

    public void WinogradOutput(in Conv2dGeometry g, float* m, float* bias, float* y) =>
        ParallelKernel.Items(g.Batch * g.OutChannels, new WinogradOutputPlanes(g, m, bias, y));

    public void WinogradOutputAdjoint(in Conv2dGeometry g, float* dy, float* dm) =>
        ParallelKernel.Items(g.Batch * g.OutChannels, new WinogradOutputAdjointPlanes(g, dy, dm));

    public void WinogradKernels(in Conv2dGeometry g, float* w, float* u, bool inputGradient) =>
        ParallelKernel.Items(g.OutChannels, new WinogradKernelRows(g, w, u, inputGradient));

    public void WinogradKernelGradient(in Conv2dGeometry g, float* du, float* dw) =>
        ParallelKernel.Items(g.OutChannels, new WinogradKernelGradientRows(g, du, dw));

    private readonly struct WinogradKernelRows(Conv2dGeometry g, float* w, float* u, bool inputGradient) : IKernelItems
    {
        public void Execute<V>(int o) where V : struct, IVec<V> => WinogradKernelRow(g, o, w, u, inputGradient);
    }

    private readonly struct WinogradKernelGradientRows(Conv2dGeometry g, float* du, float* dw) : IKernelItems
    {
        public void Execute<V>(int o) where V : struct, IVec<V> => WinogradKernelGradientRow(g, o, du, dw);
    }

    private readonly struct WinogradInputPlanes(Conv2dGeometry g, float* x, float* v) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => WinogradInputPlane<V>(g, plane, x, v);
    }

    private readonly struct WinogradOutputPlanes(Conv2dGeometry g, float* m, float* bias, float* y) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => WinogradOutputPlane<V>(g, plane, m, bias, y);
    }

    private readonly struct WinogradOutputAdjointPlanes(Conv2dGeometry g, float* dy, float* dm) : IKernelItems
    {
        public void Execute<V>(int plane) where V : struct, IVec<V> => WinogradOutputAdjointPlane<V>(g, plane, dy, dm);
    }

    // G·(a, b, c) = (a, (a + b + c)/2, (a - b + c)/2, c), applied down the kernel's columns and then along its rows:
    // 8 of G's 12 entries are ±½, so this is a handful of additions per (o, c) pair rather than a 4×3×3 product.
    private static void WinogradKernelRow(in Conv2dGeometry g, int o, float* w, float* u, bool inputGradient)
    {
        int O = g.OutChannels, C = g.Channels;
        long slice = (long)O * C;
        float* t = stackalloc float[12];
        float* k = stackalloc float[9];
        for (int c = 0; c < C; c++)
        {
            float* src = w + ((long)o * C + c) * 9;
            for (int i = 0; i < 9; i++) k[i] = inputGradient ? src[8 - i] : src[i];
            for (int s = 0; s < 3; s++)
            {
                float a = k[s], b = k[3 + s], cc = k[6 + s];
                t[s] = a; t[3 + s] = 0.5f * (a + b + cc); t[6 + s] = 0.5f * (a - b + cc); t[9 + s] = cc;
            }
            float* to = u + (inputGradient ? (long)c * O + o : (long)o * C + c);
            for (int r = 0; r < 4; r++)
            {
                float a = t[r * 3], b = t[r * 3 + 1], cc = t[r * 3 + 2];
                to[(4 * r) * slice] = a;
                to[(4 * r + 1) * slice] = 0.5f * (a + b + cc);
                to[(4 * r + 2) * slice] = 0.5f * (a - b + cc);
                to[(4 * r + 3) * slice] = cc;
            }
        }
    }

    // Gᵀ·(p0, p1, p2, p3) = (p0 + (p1 + p2)/2, (p1 - p2)/2, (p1 + p2)/2 + p3), down the columns, then along the rows.
    private static void WinogradKernelGradientRow(in Conv2dGeometry g, int o, float* du, float* dw)
    {
        int C = g.Channels;
        long slice = (long)g.OutChannels * C;
        float* t = stackalloc float[12];
        for (int c = 0; c < C; c++)
        {
            float* from = du + (long)o * C + c;
            for (int b = 0; b < 4; b++)
            {
                float p0 = from[b * slice], p1 = from[(4 + b) * slice], p2 = from[(8 + b) * slice], p3 = from[(12 + b) * slice];
                t[b] = p0 + 0.5f * (p1 + p2); t[4 + b] = 0.5f * (p1 - p2); t[8 + b] = 0.5f * (p1 + p2) + p3;
            }
            float* to = dw + ((long)o * C + c) * 9;
            for (int r = 0; r < 3; r++)
            {
                float p0 = t[4 * r], p1 = t[4 * r + 1], p2 = t[4 * r + 2], p3 = t[4 * r + 3];
                to[3 * r] = p0 + 0.5f * (p1 + p2);
                to[3 * r + 1] = 0.5f * (p1 - p2);
                to[3 * r + 2] = 0.5f * (p1 + p2) + p3;
            }
        }
    }

    /// <summary>Copies a height × width plane into <paramref name="rows"/> rows of 2·<paramref name="half"/> floats, source
    /// (h, w) landing at row h + top, column q = w + left, stored at (q mod 2)·half + q / 2; the rest is zeros.</summary>
    private static void SplitColumns(float* src, int height, int width, int top, int left, int rows, int half, float* dst)
    {
        new Span<float>(dst, rows * 2 * half).Clear();
        for (int h = 0; h < height; h++)
        {
            float* from = src + (long)h * width, even = dst + (long)(h + top) * 2 * half + (left >> 1), odd = even + half;
            // Source columns w (even) and w + 1 land in padded columns w + left and w + left + 1: with an odd left, in
            // the odd half and then the even half one slot further.
            float* first = (left & 1) == 0 ? even : odd, second = (left & 1) == 0 ? odd : even + 1;
            int w = 0;
            for (; w + 1 < width; w += 2)
            {
                first[w >> 1] = from[w];
                second[w >> 1] = from[w + 1];
            }
            if (w < width) first[w >> 1] = from[w];
        }
    }

    private static void WinogradInputPlane<V>(in Conv2dGeometry g, int plane, float* x, float* v) where V : struct, IVec<V>
    {
        int TH = g.TileRows, TW = g.TileCols, half = (TW + 1 + 15) & ~15, rowFloats = 2 * half;
        float* split = ThreadScratch.Floats((long)(2 * TH + 2) * rowFloats);
        SplitColumns(x + (long)plane * g.Height * g.Width, g.Height, g.Width, g.PadH, g.PadW, 2 * TH + 2, half, split);
        int n = plane / g.Channels, c = plane % g.Channels;
        long xiStride = Winograd.SliceStride(g.Channels, g.Tiles);
        for (int th = 0; th < TH; th++)
        {
            float* rows = split + (long)2 * th * rowFloats;
            float* to = v + (long)c * g.Tiles + ((long)n * TH + th) * TW;
            int tw = InputTiles<V>(rows, rowFloats, half, to, xiStride, 0, TW);
            if (V.Count > V256.Count) tw = InputTiles<V256>(rows, rowFloats, half, to, xiStride, tw, TW);
            InputTiles<V1>(rows, rowFloats, half, to, xiStride, tw, TW);
        }
    }

    /// <summary>Bᵀ d B for the tiles [tw, end) of one tile row, whose four split input rows start at <paramref name="rows"/>.</summary>
    private static int InputTiles<V>(float* rows, int rowFloats, int half, float* to, long xiStride, int tw, int end) where V : struct, IVec<V>
    {
        for (; tw + V.Count <= end; tw += V.Count)
        {
            // Along each row: columns (c0, c1, c2, c3) = (even[tw], odd[tw], even[tw+1], odd[tw+1]) → (c0-c2, c1+c2, c2-c1, c1-c3).
            RowTransform<V>(rows + tw, half, out var a0, out var a1, out var a2, out var a3);
            RowTransform<V>(rows + rowFloats + tw, half, out var b0, out var b1, out var b2, out var b3);
            RowTransform<V>(rows + 2 * rowFloats + tw, half, out var c0, out var c1, out var c2, out var c3);
            RowTransform<V>(rows + 3 * rowFloats + tw, half, out var d0, out var d1, out var d2, out var d3);
            // Down the columns, the same combination of the four rows.
            float* t = to + tw;
            V.Store(t, a0 - c0); V.Store(t + xiStride, a1 - c1); V.Store(t + 2 * xiStride, a2 - c2); V.Store(t + 3 * xiStride, a3 - c3);
            t += 4 * xiStride;
            V.Store(t, b0 + c0); V.Store(t + xiStride, b1 + c1); V.Store(t + 2 * xiStride, b2 + c2); V.Store(t + 3 * xiStride, b3 + c3);
            t += 4 * xiStride;
            V.Store(t, c0 - b0); V.Store(t + xiStride, c1 - b1); V.Store(t + 2 * xiStride, c2 - b2); V.Store(t + 3 * xiStride, c3 - b3);
            t += 4 * xiStride;
            V.Store(t, b0 - d0); V.Store(t + xiStride, b1 - d1); V.Store(t + 2 * xiStride, b2 - d2); V.Store(t + 3 * xiStride, b3 - d3);
        }
        return tw;
    }

    private static void RowTransform<V>(float* even, int half, out V t0, out V t1, out V t2, out V t3) where V : struct, IVec<V>
    {
        V e0 = V.Load(even), o0 = V.Load(even + half), e1 = V.Load(even + 1), o1 = V.Load(even + half + 1);
        t0 = e0 - e1;
        t1 = o0 + e1;
        t2 = e1 - o0;
        t3 = o0 - o1;
    }

    private static void WinogradOutputPlane<V>(in Conv2dGeometry g, int plane, float* m, float* bias, float* y) where V : struct, IVec<V>
    {
        int TH = g.TileRows, TW = g.TileCols, OH = g.OutHeight, OW = g.OutWidth, half = (TW + 15) & ~15;
        // The tile row's 2×2 outputs by parity: (row 0 even columns, row 0 odd, row 1 even, row 1 odd).
        float* blocks = ThreadScratch.Floats(4L * half);
        int n = plane / g.OutChannels, o = plane % g.OutChannels;
        float b = bias == null ? 0f : bias[o];
        long xiStride = Winograd.SliceStride(g.OutChannels, g.Tiles);
        float* yPlane = y + (long)plane * OH * OW;
        for (int th = 0; th < TH; th++)
        {
            float* from = m + (long)o * g.Tiles + ((long)n * TH + th) * TW;
            int tw = OutputTiles<V>(from, xiStride, b, blocks, half, 0, TW);
            if (V.Count > V256.Count) tw = OutputTiles<V256>(from, xiStride, b, blocks, half, tw, TW);
            OutputTiles<V1>(from, xiStride, b, blocks, half, tw, TW);
            for (int i = 0; i < 2 && 2 * th + i < OH; i++)
            {
                float* row = yPlane + (long)(2 * th + i) * OW, even = blocks + 2 * i * half, odd = even + half;
                int ow = 0;
                for (; ow + 1 < OW; ow += 2)
                {
                    row[ow] = even[ow >> 1];
                    row[ow + 1] = odd[ow >> 1];
                }
                if (ow < OW) row[ow] = even[ow >> 1];
            }
        }
    }

    /// <summary>Aᵀ m A + bias for the tiles [tw, end) of one tile row, into the four parity blocks.</summary>
    private static int OutputTiles<V>(float* from, long xiStride, float bias, float* blocks, int half, int tw, int end) where V : struct, IVec<V>
    {
        for (; tw + V.Count <= end; tw += V.Count)
        {
            // Down the columns: rows (m0, m1, m2, m3) → (m0+m1+m2, m1-m2-m3), for each of the four columns.
            float* f = from + tw;
            V s00, s01, s02, s03, s10, s11, s12, s13;
            {
                V m0 = V.Load(f), m1 = V.Load(f + 4 * xiStride), m2 = V.Load(f + 8 * xiStride), m3 = V.Load(f + 12 * xiStride);
                s00 = m0 + m1 + m2; s10 = m1 - m2 - m3;
            }
            {
                V m0 = V.Load(f + xiStride), m1 = V.Load(f + 5 * xiStride), m2 = V.Load(f + 9 * xiStride), m3 = V.Load(f + 13 * xiStride);
                s01 = m0 + m1 + m2; s11 = m1 - m2 - m3;
            }
            {
                V m0 = V.Load(f + 2 * xiStride), m1 = V.Load(f + 6 * xiStride), m2 = V.Load(f + 10 * xiStride), m3 = V.Load(f + 14 * xiStride);
                s02 = m0 + m1 + m2; s12 = m1 - m2 - m3;
            }
            {
                V m0 = V.Load(f + 3 * xiStride), m1 = V.Load(f + 7 * xiStride), m2 = V.Load(f + 11 * xiStride), m3 = V.Load(f + 15 * xiStride);
                s03 = m0 + m1 + m2; s13 = m1 - m2 - m3;
            }
            // Along the rows, the same combination, plus the bias.
            var bv = V.Splat(bias);
            V.Store(blocks + tw, s00 + s01 + s02 + bv);
            V.Store(blocks + half + tw, s01 - s02 - s03 + bv);
            V.Store(blocks + 2 * half + tw, s10 + s11 + s12 + bv);
            V.Store(blocks + 3 * half + tw, s11 - s12 - s13 + bv);
        }
        return tw;
    }

    private static void WinogradOutputAdjointPlane<V>(in Conv2dGeometry g, int plane, float* dy, float* dm) where V : struct, IVec<V>
    {
        int TH = g.TileRows, TW = g.TileCols, half = (TW + 15) & ~15, rowFloats = 2 * half;
        float* split = ThreadScratch.Floats((long)2 * TH * rowFloats);
        SplitColumns(dy + (long)plane * g.OutHeight * g.OutWidth, g.OutHeight, g.OutWidth, 0, 0, 2 * TH, half, split);
        int n = plane / g.OutChannels, o = plane % g.OutChannels;
        long xiStride = Winograd.SliceStride(g.OutChannels, g.Tiles);
        for (int th = 0; th < TH; th++)
        {
            float* rows = split + (long)2 * th * rowFloats;
            float* to = dm + (long)o * g.Tiles + ((long)n * TH + th) * TW;
            int tw = AdjointTiles<V>(rows, rowFloats, half, to, xiStride, 0, TW);
            if (V.Count > V256.Count) tw = AdjointTiles<V256>(rows, rowFloats, half, to, xiStride, tw, TW);
            AdjointTiles<V1>(rows, rowFloats, half, to, xiStride, tw, TW);
        }
    }

    /// <summary>A e Aᵀ for the tiles [tw, end) of one tile row: e's rows (r0, r1) → (r0, r0+r1, r0-r1, -r1), and the
    /// same along the columns.</summary>
    private static int AdjointTiles<V>(float* rows, int rowFloats, int half, float* to, long xiStride, int tw, int end) where V : struct, IVec<V>
    {
        for (; tw + V.Count <= end; tw += V.Count)
        {
            V e00 = V.Load(rows + tw), e01 = V.Load(rows + half + tw);
            V e10 = V.Load(rows + rowFloats + tw), e11 = V.Load(rows + rowFloats + half + tw);
            // Rows of A e: (e0, e0 + e1, e0 - e1, -e1) for both columns.
            V z00 = e00, z01 = e01, z10 = e00 + e10, z11 = e01 + e11, z20 = e00 - e10, z21 = e01 - e11, z30 = -e10, z31 = -e11;
            float* t = to + tw;
            StoreAdjointRow(t, xiStride, z00, z01);
            StoreAdjointRow(t + 4 * xiStride, xiStride, z10, z11);
            StoreAdjointRow(t + 8 * xiStride, xiStride, z20, z21);
            StoreAdjointRow(t + 12 * xiStride, xiStride, z30, z31);
        }
        return tw;
    }

    private static void StoreAdjointRow<V>(float* t, long xiStride, V z0, V z1) where V : struct, IVec<V>
    {
        V.Store(t, z0);
        V.Store(t + xiStride, z0 + z1);
        V.Store(t + 2 * xiStride, z0 - z1);
        V.Store(t + 3 * xiStride, -z1);
    }
}
