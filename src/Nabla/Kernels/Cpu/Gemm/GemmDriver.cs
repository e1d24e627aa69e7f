using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// The blocked GEMM loops for one micro-kernel, and how a call is spread over threads. Compiled once per kernel type,
/// so MR and NR are constants throughout.
/// <para>Threads: a batch of many matrices is spread over the threads whole. A single large matrix is split across a
/// team of threads that all run at once: across N when it is at least as wide as tall, each thread then packing its
/// own columns of B while all share one packed copy of each A block (each thread packs a share of it, then they meet
/// at a barrier); across M otherwise, sharing B the same way. So every element is packed once, however many
/// threads.</para>
/// </summary>
internal static unsafe class GemmDriver<TKernel> where TKernel : struct, IMicroKernel
{
    /// <summary>Cache blocking (settable so the benchmark can show the effect of other sizes).</summary>
    internal static GemmBlocking Blocking { get; set; } = TKernel.TunedBlocking;

    /// <summary>Below this many multiply-adds a call stays on the calling thread: waking a worker costs more.</summary>
    private const long ParallelThreshold = 1 << 17;

    // One set of task objects per calling thread, reused by every call from it: no allocation per call, and two
    // threads calling GEMM at once never share one.
    [ThreadStatic] private static WholeMatrices? _wholeMatrices;
    [ThreadStatic] private static Team? _team;

    public static void Run(in GemmProblem problem)
    {
        long work = (long)problem.M * problem.N * problem.K * problem.Batch;
        int threads = work < ParallelThreshold ? 1 : WorkerPool.ConcurrentThreads;
        if (threads == 1)
        {
            for (int batch = 0; batch < problem.Batch; batch++) Multiply(in problem, batch, null, 0);
        }
        else if (problem.Batch >= 4 * threads || problem.Batch % threads == 0)
        {
            var task = _wholeMatrices ??= new WholeMatrices();
            task.Problem = problem;
            WorkerPool.Run(problem.Batch, task);
            task.Problem = default;
        }
        else
        {
            var team = _team ??= new Team();
            for (int batch = 0; batch < problem.Batch; batch++) team.Run(in problem, batch, threads);
        }
    }

    /// <summary>Task i multiplies matrix i of the batch on one thread.</summary>
    private sealed class WholeMatrices : IParallelTask
    {
        public GemmProblem Problem;

        public void Execute(int taskIndex) => Multiply(in Problem, taskIndex, null, 0);
    }

    /// <summary>The threads multiplying one matrix together, and the packed blocks they share.</summary>
    private sealed class Team : IParallelTask
    {
        private readonly SpinBarrier _barrier = new();
        private GemmProblem _problem;
        private int _batch;
        private float* _shared;
        private long _sharedCapacity;

        /// <summary>True: split across N, A blocks shared. False: split across M, B blocks shared.</summary>
        public bool SharesA { get; private set; }
        public int Members { get; private set; }

        /// <summary>Floats in each of the two shared buffers: one block is packed while the other is still read.</summary>
        public long SharedBlockFloats { get; private set; }

        public void Run(in GemmProblem p, int batch, int threads)
        {
            SharesA = p.N >= p.M;
            int slivers = SharesA ? Slivers(p.N, TKernel.NR) : Slivers(p.M, TKernel.MR);
            Members = Math.Min(threads, slivers);
            if (Members == 1)
            {
                Multiply(in p, batch, null, 0);
                return;
            }
            var plan = BlockPlan.For(in p, Blocking);
            SharedBlockFloats = (long)plan.KcStep * (SharesA ? plan.McMax(p.M) : plan.NcMax(p.N));
            if (_sharedCapacity < 2 * SharedBlockFloats)
            {
                NativeMemory.AlignedFree(_shared);
                _shared = (float*)NativeMemory.AlignedAlloc((nuint)(2 * SharedBlockFloats * sizeof(float)), 64);
                _sharedCapacity = 2 * SharedBlockFloats;
            }
            _problem = p;
            _batch = batch;
            _barrier.Reset(Members);
            WorkerPool.Run(Members, this);
            _problem = default;
        }

        public float* SharedBlock(int index) => _shared + (index & 1) * SharedBlockFloats;

        public void Meet() => _barrier.SignalAndWait();

        public void Execute(int member)
        {
            try
            {
                Multiply(in _problem, _batch, this, member);
            }
            catch
            {
                _barrier.Break();
                throw;
            }
        }

        ~Team() => NativeMemory.AlignedFree(_shared);
    }

    /// <summary>Block sizes of one call: k in equal blocks of at most KC (2050 = 684 + 684 + 682 for KC = 1024, not
    /// 1024 + 1024 + 2), and MC/NC for that k block size.</summary>
    private readonly record struct BlockPlan(int KcStep, int Mc, int Nc)
    {
        public static BlockPlan For(in GemmProblem p, GemmBlocking blocking)
        {
            int kBlocks = (p.K + blocking.KC - 1) / blocking.KC;
            int kcStep = (p.K + kBlocks - 1) / kBlocks;
            return new BlockPlan(kcStep, blocking.MC(kcStep, TKernel.MR), blocking.NC(kcStep, TKernel.NR));
        }

        /// <summary>Number of row blocks for <paramref name="rows"/> rows (each then gets an equal share of slivers).</summary>
        public int RowBlocks(int rows) => (rows + Mc - 1) / Mc;
        public int ColumnBlocks(int cols) => (cols + Nc - 1) / Nc;

        /// <summary>The most rows (columns) any row (column) block of <paramref name="rows"/> can have.</summary>
        public int McMax(int rows) => CeilDiv(Slivers(rows, TKernel.MR), RowBlocks(rows)) * TKernel.MR;
        public int NcMax(int cols) => CeilDiv(Slivers(cols, TKernel.NR), ColumnBlocks(cols)) * TKernel.NR;
    }

    /// <summary>
    /// C rows × cols of matrix <paramref name="batch"/> through the five GotoBLAS loops: column blocks (jc) of the packed
    /// B block, k blocks (pc), row blocks (ic) of the packed A block, then NR-wide slivers of B (jr) and MR-high slivers
    /// of A (ir) meeting in the micro-kernel. Alone, or as one <paramref name="member"/> of a <paramref name="team"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Multiply(in GemmProblem p, int batch, Team? team, int member)
    {
        int mr = TKernel.MR, nr = TKernel.NR;
        float* a = p.A + batch * p.BatchStrideA, b = p.B + batch * p.BatchStrideB, c = p.C + batch * p.BatchStrideC;
        bool sharesA = team is { SharesA: true }, sharesB = team is { SharesA: false };
        int members = team?.Members ?? 1;
        // This thread's part of C: all of it alone; its share of the slivers of the split dimension in a team.
        int i0 = 0, i1 = p.M, j0 = 0, j1 = p.N;
        if (sharesA) (j0, j1) = SliverRange(member, members, p.N, nr);
        if (sharesB) (i0, i1) = SliverRange(member, members, p.M, mr);

        var plan = BlockPlan.For(in p, Blocking);
        int kcStep = plan.KcStep;
        // Members sharing A must walk the same A blocks in step, so their column block count comes from the widest
        // member's range. (Members sharing B each cover all of N, so their column blocks agree anyway.)
        int columnBlocks = plan.ColumnBlocks(sharesA ? CeilDiv(Slivers(p.N, nr), members) * nr : j1 - j0);
        int rowBlocks = plan.RowBlocks(i1 - i0);
        var scratch = GemmScratch.ForCurrentThread(
            sharesA ? 0 : (long)kcStep * CeilDiv(Slivers(i1 - i0, mr), rowBlocks) * mr,
            sharesB ? 0 : (long)kcStep * CeilDiv(Slivers(j1 - j0, nr), columnBlocks) * nr,
            mr * nr);
        float* edgeTile = scratch.EdgeTile;
        bool useSimd = CpuFeatures.UseAvx2;
        int sharedBlocks = 0;

        for (int jBlock = 0; jBlock < columnBlocks; jBlock++)
        {
            var (jc, jcEnd) = BlockRange(jBlock, columnBlocks, j0, j1, nr);
            int nc = jcEnd - jc;
            for (int pc = 0; pc < p.K; pc += kcStep)
            {
                int kc = Math.Min(kcStep, p.K - pc);
                // The first k block writes C (adding the old C only when accumulating) and the bias; later blocks add.
                bool addC = pc > 0 || p.Accumulate;
                float* bias = pc == 0 ? p.Bias : null;
                float* bSource = b + jc * p.LaneStrideB + pc * p.KStrideB;
                float* packedB;
                if (sharesB)
                {
                    packedB = team!.SharedBlock(sharedBlocks++);
                    PackShare(bSource, p.LaneStrideB, p.KStrideB, nc, kc, nr, packedB, member, members, useSimd);
                    team.Meet();
                }
                else
                {
                    packedB = scratch.PackedB;
                    GemmPacking.PackBlock(bSource, p.LaneStrideB, p.KStrideB, nc, kc, nr, packedB, useSimd);
                }

                for (int iBlock = 0; iBlock < rowBlocks; iBlock++)
                {
                    var (ic, icEnd) = BlockRange(iBlock, rowBlocks, i0, i1, mr);
                    int mc = icEnd - ic;
                    float* aSource = a + ic * p.LaneStrideA + pc * p.KStrideA;
                    float* packedA;
                    if (sharesA)
                    {
                        packedA = team!.SharedBlock(sharedBlocks++);
                        PackShare(aSource, p.LaneStrideA, p.KStrideA, mc, kc, mr, packedA, member, members, useSimd);
                        team.Meet();
                    }
                    else
                    {
                        packedA = scratch.PackedA;
                        GemmPacking.PackBlock(aSource, p.LaneStrideA, p.KStrideA, mc, kc, mr, packedA, useSimd);
                    }

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

    /// <summary>Packs this member's equal share of the slivers of a block that the whole team uses.</summary>
    private static void PackShare(float* src, long laneStride, long kStride, int lanes, int kc, int width, float* dst,
        int member, int members, bool useSimd)
    {
        var (l0, l1) = SliverRange(member, members, lanes, width);
        if (l1 > l0) GemmPacking.PackBlock(src + l0 * laneStride, laneStride, kStride, l1 - l0, kc, width, dst + (long)l0 * kc, useSimd);
    }

    /// <summary>Writes the valid rows × cols corner of a full kernel tile into C with the same epilogue as the kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MergeEdgeTile(float* tile, int tileStride, float* c, long ldc, int rows, int cols, bool addC, float* bias)
    {
        for (int r = 0; r < rows; r++)
        {
            float* from = tile + r * tileStride, to = c + r * ldc;
            for (int j = 0; j < cols; j++)
                to[j] = from[j] + (bias == null ? 0f : bias[j]) + (addC ? to[j] : 0f);
        }
    }

    /// <summary>Part <paramref name="part"/> of <paramref name="parts"/> of [0, size), cut on sliver boundaries.</summary>
    private static (int Start, int End) SliverRange(int part, int parts, int size, int width) => BlockRange(part, parts, 0, size, width);

    /// <summary>Block <paramref name="block"/> of <paramref name="blocks"/> equal shares of the slivers of [start, end).</summary>
    private static (int Start, int End) BlockRange(int block, int blocks, int start, int end, int width)
    {
        long slivers = Slivers(end - start, width);
        return ((int)Math.Min(end, start + slivers * block / blocks * width), (int)Math.Min(end, start + slivers * (block + 1) / blocks * width));
    }

    private static int Slivers(int size, int width) => (size + width - 1) / width;
    private static int CeilDiv(int a, int b) => (a + b - 1) / b;
}
