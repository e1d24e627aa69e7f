namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// The blocked GEMM loops for one micro-kernel, and how a call is split into parallel tasks. Compiled once per
/// kernel type, so MR and NR are constants throughout.
/// </summary>
internal static unsafe class GemmDriver<TKernel> where TKernel : struct, IMicroKernel
{
    internal static readonly GemmBlocking Blocking = GemmBlocking.For(TKernel.MR, TKernel.NR);

    /// <summary>Below this many multiply-adds a call stays on the calling thread: waking a worker costs more.</summary>
    private const long ParallelThreshold = 1 << 17;

    // One task object per calling thread, reused by every call from it: no allocation per call, and two threads
    // calling GEMM at once never share one.
    [ThreadStatic] private static GemmTask? _task;

    public static void Run(in GemmProblem problem)
    {
        var task = _task ??= new GemmTask();
        task.Problem = problem;
        PlanTiles(in problem, out task.TilesM, out task.TilesN, out bool parallel);
        int count = problem.Batch * task.TilesM * task.TilesN;
        if (parallel) WorkerPool.Run(count, task);
        else for (int i = 0; i < count; i++) task.Execute(i);
        task.Problem = default;
    }

    /// <summary>
    /// Splits each matrix of the batch into TilesM × TilesN independent tasks. Many small matrices are simply spread
    /// over the threads whole. Otherwise a matrix is cut into one tile per thread, across N when it is at least as wide
    /// as tall (each task then packs only its own columns of B and the whole of A, the smaller operand), else across M.
    /// Tile edges fall on sliver boundaries so no kernel call is split.
    /// </summary>
    private static void PlanTiles(in GemmProblem p, out int tilesM, out int tilesN, out bool parallel)
    {
        int threads = WorkerPool.Threads;
        tilesM = tilesN = 1;
        parallel = threads > 1 && (long)p.M * p.N * p.K * p.Batch >= ParallelThreshold;
        if (!parallel || p.Batch >= 4 * threads || p.Batch % threads == 0) return;
        int mSlivers = (p.M + TKernel.MR - 1) / TKernel.MR, nSlivers = (p.N + TKernel.NR - 1) / TKernel.NR;
        if (p.N >= p.M)
        {
            tilesN = Math.Min(threads, nSlivers);
            tilesM = Math.Min((threads + tilesN - 1) / tilesN, mSlivers);
        }
        else
        {
            tilesM = Math.Min(threads, mSlivers);
            tilesN = Math.Min((threads + tilesM - 1) / tilesM, nSlivers);
        }
    }

    private sealed class GemmTask : IParallelTask
    {
        public GemmProblem Problem;
        public int TilesM, TilesN;

        public void Execute(int taskIndex)
        {
            ref readonly var p = ref Problem;
            int tiles = TilesM * TilesN;
            int batch = taskIndex / tiles, tile = taskIndex % tiles;
            int tileM = tile / TilesN, tileN = tile % TilesN;
            int mSlivers = (p.M + TKernel.MR - 1) / TKernel.MR, nSlivers = (p.N + TKernel.NR - 1) / TKernel.NR;
            int i0 = SliverStart(tileM, TilesM, mSlivers, TKernel.MR, p.M), i1 = SliverStart(tileM + 1, TilesM, mSlivers, TKernel.MR, p.M);
            int j0 = SliverStart(tileN, TilesN, nSlivers, TKernel.NR, p.N), j1 = SliverStart(tileN + 1, TilesN, nSlivers, TKernel.NR, p.N);
            if (i0 < i1 && j0 < j1)
                ComputeTile(in p, p.A + batch * p.BatchStrideA, p.B + batch * p.BatchStrideB, p.C + batch * p.BatchStrideC, i0, i1, j0, j1);
        }

        private static int SliverStart(int tile, int tiles, int slivers, int width, int size) =>
            (int)Math.Min(size, (long)slivers * tile / tiles * width);
    }

    /// <summary>C[i0:i1, j0:j1] of one matrix, through the five GotoBLAS loops.</summary>
    private static void ComputeTile(in GemmProblem p, float* a, float* b, float* c, int i0, int i1, int j0, int j1)
    {
        int mr = TKernel.MR, nr = TKernel.NR;
        var blocking = Blocking;
        // Equal-sized k blocks: 770 = 257 + 257 + 256 rather than 384 + 384 + 2.
        int kBlocks = (p.K + blocking.KC - 1) / blocking.KC;
        int kcStep = (p.K + kBlocks - 1) / kBlocks;
        int ncMax = Math.Min(blocking.NC, RoundUp(j1 - j0, nr));
        int mcMax = Math.Min(blocking.MC, RoundUp(i1 - i0, mr));
        var scratch = GemmScratch.ForCurrentThread((long)mcMax * kcStep, (long)ncMax * kcStep);
        float* packedA = scratch.PackedA, packedB = scratch.PackedB, edgeTile = scratch.EdgeTile;
        bool useSimd = CpuFeatures.UseAvx2;

        for (int jc = j0; jc < j1; jc += ncMax)
        {
            int nc = Math.Min(ncMax, j1 - jc);
            for (int pc = 0; pc < p.K; pc += kcStep)
            {
                int kc = Math.Min(kcStep, p.K - pc);
                // The first k block writes C (adding the old C only when accumulating) and the bias; later blocks add.
                bool addC = pc > 0 || p.Accumulate;
                float* bias = pc == 0 ? p.Bias : null;
                GemmPacking.PackBlock(b + jc * p.LaneStrideB + pc * p.KStrideB, p.LaneStrideB, p.KStrideB, nc, kc, nr, packedB, useSimd);
                for (int ic = i0; ic < i1; ic += mcMax)
                {
                    int mc = Math.Min(mcMax, i1 - ic);
                    GemmPacking.PackBlock(a + ic * p.LaneStrideA + pc * p.KStrideA, p.LaneStrideA, p.KStrideA, mc, kc, mr, packedA, useSimd);
                    for (int jr = 0; jr < nc; jr += nr)
                    {
                        int cols = Math.Min(nr, nc - jr);
                        float* bSliver = packedB + (long)jr * kc;
                        float* biasSliver = bias == null ? null : bias + jc + jr;
                        for (int ir = 0; ir < mc; ir += mr)
                        {
                            int rows = Math.Min(mr, mc - ir);
                            float* aSliver = packedA + (long)ir * kc;
                            float* cTile = c + (ic + ir) * p.Ldc + jc + jr;
                            if (rows == mr && cols == nr)
                                TKernel.Run(kc, aSliver, bSliver, cTile, p.Ldc, addC, biasSliver);
                            else
                            {
                                TKernel.Run(kc, aSliver, bSliver, edgeTile, nr, false, null);
                                MergeEdgeTile(edgeTile, nr, cTile, p.Ldc, rows, cols, addC, biasSliver);
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Writes the valid rows × cols corner of a full kernel tile into C with the same epilogue as the kernel.</summary>
    private static void MergeEdgeTile(float* tile, int tileStride, float* c, long ldc, int rows, int cols, bool addC, float* bias)
    {
        for (int r = 0; r < rows; r++)
        {
            float* from = tile + r * tileStride, to = c + r * ldc;
            for (int j = 0; j < cols; j++)
                to[j] = from[j] + (bias == null ? 0f : bias[j]) + (addC ? to[j] : 0f);
        }
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;
}
