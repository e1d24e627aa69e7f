using Nabla.Functions;

namespace Nabla.Kernels.Cpu;

// The point-wise part of one recurrent time step (the GEMMs around it are Gemm calls): all gates of a row in one pass,
// in vectors of the widest width, the row's tail in scalar lanes; rows split over threads once a call is big enough.
public sealed unsafe partial class CpuBackend
{
    /// <summary>Rows per chunk: enough elements that a chunk outweighs handing it to a worker.</summary>
    private static long RecurrentGrain(int hidden) => Math.Max(1, 4096 / hidden);

    public void LstmCell(float* gates, float* cPrev, float* c, float* h, int batch, int hidden) =>
        ParallelKernel.Range(batch, RecurrentGrain(hidden), 1, new LstmRows(gates, cPrev, c, h, hidden));

    public void LstmCellBackward(float* gates, float* cPrev, float* c, float* dh, float* dc, float* dGates, float* dcPrev, int batch, int hidden) =>
        ParallelKernel.Range(batch, RecurrentGrain(hidden), 1, new LstmBackwardRows(gates, cPrev, c, dh, dc, dGates, dcPrev, hidden));

    public void GruCell(float* inputGates, float* hiddenGates, float* hPrev, float* h, int batch, int hidden) =>
        ParallelKernel.Range(batch, RecurrentGrain(hidden), 1, new GruRows(inputGates, hiddenGates, hPrev, h, hidden));

    public void GruCellBackward(float* gates, float* hiddenGates, float* hPrev, float* dh, float* dInputGates, float* dHiddenGates, float* dhPrev,
        int batch, int hidden) =>
        ParallelKernel.Range(batch, RecurrentGrain(hidden), 1, new GruBackwardRows(gates, hiddenGates, hPrev, dh, dInputGates, dHiddenGates, dhPrev, hidden));

    private static V TanhOf<V>(V x) where V : struct, IVec<V> => Tanh.Forward(x, x);

    /// <summary>A cell's point-wise work on elements [from, to) of one batch row: its gates start at `row`, its
    /// states at `k`.</summary>
    private interface IGateRows
    {
        void Span<W>(long row, long k, int from, int to) where W : struct, IVec<W>;
    }

    /// <summary>Rows [start, end) of a cell with `gates` gates per unit: each row in vectors of V, its tail in scalar lanes.</summary>
    private static void EachRow<V, TRows>(in TRows rows, long start, long end, int hidden, int gates)
        where V : struct, IVec<V> where TRows : struct, IGateRows
    {
        int vectorEnd = hidden - hidden % V.Count;
        for (long b = start; b < end; b++)
        {
            long row = b * gates * hidden, k = b * hidden;
            rows.Span<V>(row, k, 0, vectorEnd);
            rows.Span<V1>(row, k, vectorEnd, hidden);
        }
    }

    private readonly struct LstmRows(float* gates, float* cPrev, float* c, float* h, int hidden) : IKernelRange, IGateRows
    {
        public void Execute<V>(long start, long end) where V : struct, IVec<V> => EachRow<V, LstmRows>(this, start, end, hidden, 4);

        public void Span<W>(long row, long k, int from, int to) where W : struct, IVec<W>
        {
            float* g = gates + row, cp = cPrev + k, cr = c + k, hr = h + k;
            for (int j = from; j < to; j += W.Count)
            {
                var i = VectorMath.Sigmoid(W.Load(g + j));
                var f = VectorMath.Sigmoid(W.Load(g + hidden + j));
                var candidate = TanhOf(W.Load(g + 2 * hidden + j));
                var o = VectorMath.Sigmoid(W.Load(g + 3 * hidden + j));
                W.Store(g + j, i);
                W.Store(g + hidden + j, f);
                W.Store(g + 2 * hidden + j, candidate);
                W.Store(g + 3 * hidden + j, o);
                var cell = W.Fma(f, W.Load(cp + j), i * candidate);
                W.Store(cr + j, cell);
                W.Store(hr + j, o * TanhOf(cell));
            }
        }
    }

    private readonly struct LstmBackwardRows(float* gates, float* cPrev, float* c, float* dh, float* dc, float* dGates, float* dcPrev, int hidden) : IKernelRange, IGateRows
    {
        public void Execute<V>(long start, long end) where V : struct, IVec<V> => EachRow<V, LstmBackwardRows>(this, start, end, hidden, 4);

        public void Span<W>(long row, long k, int from, int to) where W : struct, IVec<W>
        {
            var one = W.Splat(1f);
            float* g = gates + row, dg = dGates + row;
            for (int j = from; j < to; j += W.Count)
            {
                var (i, f, candidate, o) = (W.Load(g + j), W.Load(g + hidden + j), W.Load(g + 2 * hidden + j), W.Load(g + 3 * hidden + j));
                var tanhC = TanhOf(W.Load(c + k + j));
                var dhj = W.Load(dh + k + j);
                var dcTotal = W.Fma(dhj * o, one - tanhC * tanhC, W.Load(dc + k + j));
                W.Store(dg + j, dcTotal * candidate * i * (one - i));
                W.Store(dg + hidden + j, dcTotal * W.Load(cPrev + k + j) * f * (one - f));
                W.Store(dg + 2 * hidden + j, dcTotal * i * (one - candidate * candidate));
                W.Store(dg + 3 * hidden + j, dhj * tanhC * o * (one - o));
                W.Store(dcPrev + k + j, dcTotal * f);
            }
        }
    }

    private readonly struct GruRows(float* inputGates, float* hiddenGates, float* hPrev, float* h, int hidden) : IKernelRange, IGateRows
    {
        public void Execute<V>(long start, long end) where V : struct, IVec<V> => EachRow<V, GruRows>(this, start, end, hidden, 3);

        public void Span<W>(long row, long k, int from, int to) where W : struct, IVec<W>
        {
            float* x = inputGates + row, hg = hiddenGates + row;
            for (int j = from; j < to; j += W.Count)
            {
                var r = VectorMath.Sigmoid(W.Load(x + j) + W.Load(hg + j));
                var z = VectorMath.Sigmoid(W.Load(x + hidden + j) + W.Load(hg + hidden + j));
                var n = TanhOf(W.Fma(r, W.Load(hg + 2 * hidden + j), W.Load(x + 2 * hidden + j)));
                W.Store(x + j, r);
                W.Store(x + hidden + j, z);
                W.Store(x + 2 * hidden + j, n);
                W.Store(h + k + j, W.Fma(z, W.Load(hPrev + k + j) - n, n)); // (1 - z)∘n + z∘hPrev
            }
        }
    }

    private readonly struct GruBackwardRows(float* gates, float* hiddenGates, float* hPrev, float* dh, float* dInputGates, float* dHiddenGates,
        float* dhPrev, int hidden) : IKernelRange, IGateRows
    {
        public void Execute<V>(long start, long end) where V : struct, IVec<V> => EachRow<V, GruBackwardRows>(this, start, end, hidden, 3);

        public void Span<W>(long row, long k, int from, int to) where W : struct, IVec<W>
        {
            var one = W.Splat(1f);
            float* g = gates + row, hg = hiddenGates + row, dx = dInputGates + row, dhg = dHiddenGates + row;
            for (int j = from; j < to; j += W.Count)
            {
                var (r, z, n) = (W.Load(g + j), W.Load(g + hidden + j), W.Load(g + 2 * hidden + j));
                var dhj = W.Load(dh + k + j);
                var dnPre = dhj * (one - z) * (one - n * n);
                var dzPre = dhj * (W.Load(hPrev + k + j) - n) * z * (one - z);
                var drPre = dnPre * W.Load(hg + 2 * hidden + j) * r * (one - r);
                W.Store(dx + j, drPre);
                W.Store(dhg + j, drPre);
                W.Store(dx + hidden + j, dzPre);
                W.Store(dhg + hidden + j, dzPre);
                W.Store(dx + 2 * hidden + j, dnPre);
                W.Store(dhg + 2 * hidden + j, dnPre * r);
                W.Store(dhPrev + k + j, dhj * z);
            }
        }
    }
}
