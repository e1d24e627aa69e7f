namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// C = A·op(B) for a few rows of A (m ≤ <see cref="MaxRows"/>): decoding one token at a time is this shape.
/// Packing B (the weights) would read it, write a copy and read that again for one use, so here B is streamed
/// straight from memory once, each load used for every row of A, with the columns of C split over the threads.
/// Two loops, for the two ways B can lie: rows of Bᵀ contiguous (a weight stored (out, in), as Linear keeps it):
/// dot products; rows of B contiguous: scaled-row sums.
/// </summary>
internal static unsafe class SkinnyGemm
{
    public const int MaxRows = 4;
    /// <summary>Columns the one-row dot-product loop takes at a time.</summary>
    private const int ColumnGroup = 8;
    /// <summary>Columns per task at most: enough work to amortise waking a thread, small enough to balance two cores.</summary>
    private const int ColumnsPerTask = 256;

    [ThreadStatic] private static ColumnTask? _task;
    [ThreadStatic] private static float[]? _rowsOfA;

    /// <summary>Handles the call if its shape suits this path (m ≤ MaxRows and B contiguous along k or along n).</summary>
    public static bool TryRun(in GemmProblem p)
    {
        if (p.M > MaxRows || (p.KStrideB != 1 && p.LaneStrideB != 1)) return false;
        var task = _task ??= new ColumnTask();
        task.Capture();
        for (int batch = 0; batch < p.Batch; batch++)
        {
            task.P = p;
            task.A = ContiguousRows(p, batch);
            task.B = p.B + batch * p.BatchStrideB;
            task.C = p.C + batch * p.BatchStrideC;
            int tasks = TaskCount(p);
            // whole groups of columns per task, so only the last task has columns outside a group
            task.Columns = ((p.N + tasks - 1) / tasks + ColumnGroup - 1) / ColumnGroup * ColumnGroup;
            if ((long)p.M * p.N * p.K < 1 << 16) for (int t = 0; t < tasks; t++) task.Execute(t);
            else WorkerPool.Run(tasks, task);
        }
        task.P = default;
        return true;
    }

    /// <summary>Dot products (B contiguous along k) take a multiple of the thread count of equal tasks: decoding is
    /// bound by memory bandwidth, and 3 tasks of 256 columns for a 768-wide layer keep one of two threads idle a
    /// third of the time (GPT-2's attention and MLP output projections: ~11 % of a token). The scaled-row sums keep
    /// whole 256-column tasks, which their vector loop fills.</summary>
    private static int TaskCount(in GemmProblem p)
    {
        int threads = WorkerPool.ConcurrentThreads;
        if (p.KStrideB != 1 || threads == 1) return (p.N + ColumnsPerTask - 1) / ColumnsPerTask;
        return threads * ((p.N + threads * ColumnsPerTask - 1) / (threads * ColumnsPerTask));
    }

    /// <summary>A's rows as contiguous k-vectors (copied into a per-thread buffer when A is strided or transposed).</summary>
    private static float* ContiguousRows(in GemmProblem p, int batch)
    {
        float* a = p.A + batch * p.BatchStrideA;
        if (p.KStrideA == 1 && p.LaneStrideA == p.K) return a;
        var buffer = _rowsOfA;
        if (buffer == null || buffer.Length < p.M * p.K) _rowsOfA = buffer = GC.AllocateUninitializedArray<float>(p.M * p.K, pinned: true);
        fixed (float* dst = buffer)
        {
            for (int i = 0; i < p.M; i++)
                for (int k = 0; k < p.K; k++) dst[i * p.K + k] = a[i * p.LaneStrideA + k * p.KStrideA];
            return dst; // the buffer is pinned (allocated on the pinned heap), so the pointer stays valid
        }
    }

    private sealed class ColumnTask : VectorTask
    {
        public GemmProblem P;
        public float* A, B, C;
        public int Columns;

        protected override void Execute<V>(int taskIndex)
        {
            int j0 = taskIndex * Columns, j1 = Math.Min(P.N, j0 + Columns);
            if (P.KStrideB == 1) DotColumns<V>(j0, j1);
            else RowSumColumns<V>(j0, j1);
        }

        /// <summary>c[i, j] = Σ_k a[i, k]·B[j, k]: each column of op(B) is a contiguous row of Bᵀ, read once for all rows of A.</summary>
        private void DotColumns<V>(int j0, int j1) where V : struct, IVec<V>
        {
            if (P.M == 1) j0 = DotColumnGroups<V>(j0, j1); // then the columns left, one at a time
            int m = P.M, K = P.K, w = V.Count;
            Span<float> sums = stackalloc float[MaxRows];
            for (int j = j0; j < j1; j++)
            {
                float* b = B + j * P.LaneStrideB;
                V s0 = V.Splat(0f), s1 = s0, s2 = s0, s3 = s0;
                int k = 0;
                for (; k + w <= K; k += w)
                {
                    var bv = V.Load(b + k);
                    V.AddProduct(ref s0, V.Load(A + k), bv);
                    if (m > 1) V.AddProduct(ref s1, V.Load(A + K + k), bv);
                    if (m > 2) V.AddProduct(ref s2, V.Load(A + 2 * K + k), bv);
                    if (m > 3) V.AddProduct(ref s3, V.Load(A + 3 * K + k), bv);
                }
                sums[0] = V.SumAcross(s0); sums[1] = V.SumAcross(s1); sums[2] = V.SumAcross(s2); sums[3] = V.SumAcross(s3);
                for (; k < K; k++)
                    for (int i = 0; i < m; i++) sums[i] += A[i * K + k] * b[k];
                for (int i = 0; i < m; i++) Store(i, j, sums[i]);
            }
        }

        /// <summary>One row of A (decoding a token): <see cref="ColumnGroup"/> = 8 columns at a time, each with its own
        /// accumulator, so 8 chains of FMAs are in flight (one chain per column waits on the FMA latency: 1.5× the CPU
        /// time per decoded token) and each load of A serves 8 columns. Returns the first column left (fewer than 8).</summary>
        private int DotColumnGroups<V>(int j0, int j1) where V : struct, IVec<V>
        {
            int K = P.K, w = V.Count;
            long ldb = P.LaneStrideB;
            int j = j0;
            for (; j + ColumnGroup <= j1; j += ColumnGroup)
            {
                float* b0 = B + j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb, b4 = b3 + ldb, b5 = b4 + ldb, b6 = b5 + ldb, b7 = b6 + ldb;
                V s0 = V.Splat(0f), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
                int k = 0;
                for (; k + w <= K; k += w)
                {
                    var a = V.Load(A + k);
                    V.AddProduct(ref s0, a, V.Load(b0 + k));
                    V.AddProduct(ref s1, a, V.Load(b1 + k));
                    V.AddProduct(ref s2, a, V.Load(b2 + k));
                    V.AddProduct(ref s3, a, V.Load(b3 + k));
                    V.AddProduct(ref s4, a, V.Load(b4 + k));
                    V.AddProduct(ref s5, a, V.Load(b5 + k));
                    V.AddProduct(ref s6, a, V.Load(b6 + k));
                    V.AddProduct(ref s7, a, V.Load(b7 + k));
                }
                float t0 = V.SumAcross(s0), t1 = V.SumAcross(s1), t2 = V.SumAcross(s2), t3 = V.SumAcross(s3);
                float t4 = V.SumAcross(s4), t5 = V.SumAcross(s5), t6 = V.SumAcross(s6), t7 = V.SumAcross(s7);
                for (; k < K; k++)
                {
                    float a = A[k];
                    t0 += a * b0[k]; t1 += a * b1[k]; t2 += a * b2[k]; t3 += a * b3[k];
                    t4 += a * b4[k]; t5 += a * b5[k]; t6 += a * b6[k]; t7 += a * b7[k];
                }
                Store(0, j, t0); Store(0, j + 1, t1); Store(0, j + 2, t2); Store(0, j + 3, t3);
                Store(0, j + 4, t4); Store(0, j + 5, t5); Store(0, j + 6, t6); Store(0, j + 7, t7);
            }
            return j;
        }

        /// <summary>c[i, j0..j1] = Σ_k a[i, k]·B[k, j0..j1]: rows of B streamed in k order, 4 vectors of columns at a time.</summary>
        private void RowSumColumns<V>(int j0, int j1) where V : struct, IVec<V>
        {
            int m = P.M, K = P.K, w = V.Count;
            int j = j0;
            for (; j + 4 * w <= j1; j += 4 * w)
            {
                for (int i = 0; i < m; i++)
                {
                    V c0 = V.Splat(0f), c1 = c0, c2 = c0, c3 = c0;
                    float* a = A + i * K;
                    for (int k = 0; k < K; k++)
                    {
                        float* b = B + k * P.KStrideB + j;
                        var x = V.Splat(a[k]);
                        V.AddProduct(ref c0, x, V.Load(b));
                        V.AddProduct(ref c1, x, V.Load(b + w));
                        V.AddProduct(ref c2, x, V.Load(b + 2 * w));
                        V.AddProduct(ref c3, x, V.Load(b + 3 * w));
                    }
                    StoreVector(i, j, c0); StoreVector(i, j + w, c1); StoreVector(i, j + 2 * w, c2); StoreVector(i, j + 3 * w, c3);
                }
            }
            for (; j < j1; j++)
                for (int i = 0; i < m; i++)
                {
                    float s = 0;
                    for (int k = 0; k < K; k++) s += A[i * K + k] * B[k * P.KStrideB + j];
                    Store(i, j, s);
                }
        }

        private void Store(int i, int j, float value)
        {
            float* c = C + i * P.Ldc + j;
            if (P.Bias != null) value += P.Bias[j];
            *c = P.Accumulate ? *c + value : value;
        }

        private void StoreVector<V>(int i, int j, V value) where V : struct, IVec<V>
        {
            float* c = C + i * P.Ldc + j;
            if (P.Bias != null) value += V.Load(P.Bias + j);
            if (P.Accumulate) value += V.Load(c);
            V.Store(c, value);
        }
    }
}
