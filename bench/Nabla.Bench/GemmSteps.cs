using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Cpu.Gemm;

namespace Nabla.Bench;

/// <summary>
/// `gemm-steps`: the intermediate GEMM implementations of docs/optimization-log.md, each runnable, so every number
/// in that story can be reproduced. Steps 1–5 live here (benchmark-only code); steps 6–7 are the library's SGEMM on
/// one and two threads. Then the experiments behind the library's choices: micro-kernel tile shapes and k block size,
/// run through the library's own driver.
/// </summary>
internal static unsafe class GemmSteps
{
    private static readonly (int M, int K, int N)[] StoryShapes = [(256, 768, 2304), (1024, 1024, 1024)];

    /// <summary>The scalar steps are slow, so they run on the first rows only and are scaled to all rows (their time is
    /// linear in the row count: every row does the same work).</summary>
    private const int ScalarStepRows = 128;

    public static void Run(BenchOptions options)
    {
        int savedThreads = WorkerPool.Threads;
        try
        {
            _gate = new QuietGate(new MachineLoad(() => TimeSpan.Zero), options.MaxOthersPercent, TimeSpan.FromSeconds(options.WaitBudgetSeconds));
            Console.WriteLine($"GEMM steps on {MachineInfo.Line}; load average at start: {MachineLoad.LoadAverage}.");
            Console.WriteLine($"Each measurement first waits for a quiet machine (within a total budget of {options.WaitBudgetSeconds:F0} s; the host");
            Console.WriteLine("sometimes takes a core away unseen by the guest), and is repeated if an FMA probe right after finds a core gone.");
            Console.WriteLine();
            // On an AVX2 machine (or under NABLA_ISA=avx2) the Vector512 steps would run emulated: show the AVX2 choices.
            if (CpuFeatures.Usable == Isa.Avx2) Avx2Tables(options.Threads);
            else
            {
                StoryTable();
                Console.WriteLine();
                KernelShapeTable();
                Console.WriteLine();
                KBlockTable();
                Console.WriteLine();
                SkinnyTable();
                Console.WriteLine();
            }
            Console.WriteLine($"FMA peak ({FmaPeak.Method}, best measured): {FmaPeak.Peak(1):F1} GFLOP/s on 1 thread, " +
                $"{FmaPeak.Peak(2):F1} on 2. {_gate.Waited.TotalSeconds:F0} s spent waiting for a quiet machine. Load average at end: {MachineLoad.LoadAverage}.");
        }
        finally
        {
            WorkerPool.Threads = savedThreads;
        }
    }

    private delegate void Step(int m, int n, int k, float* a, float* b, float* c);

    private static QuietGate _gate = null!;

    private static void StoryTable()
    {
        var steps = new (string Name, Step Run, bool Scalar, int Threads)[]
        {
            ("1. naive triple loop (i, j, p)", Naive, true, 1),
            ("2. loop order (i, p, j)", LoopOrder, true, 1),
            ("3. cache blocking", Blocked, true, 1),
            ("4. SIMD (Vector512 over j)", BlockedSimd, false, 1),
            ("5. packing (B block contiguous)", PackedSimd, false, 1),
            ("6. packed micro-kernel 8×32 (library, 1 thread)", (m, n, k, a, b, c) => Library(m, n, k, a, b, c, 1), false, 1),
            ("7. threads (library, 2 threads)", (m, n, k, a, b, c) => Library(m, n, k, a, b, c, 2), false, 2),
        };
        Console.WriteLine("| step | " + string.Join(" | ", StoryShapes.Select(s => $"{s.M}×{s.K}×{s.N} GFLOP/s")) + " |");
        Console.WriteLine("|---|" + string.Concat(StoryShapes.Select(_ => "---:|")));
        foreach (var (name, step, scalar, threads) in steps)
        {
            var cells = StoryShapes.Select(s =>
            {
                using var operands = new Operands(s.M, s.K, s.N);
                int rows = scalar ? Math.Min(ScalarStepRows, s.M) : s.M;
                return $"{Gflops(2.0 * rows * s.N * s.K, () => step(rows, s.N, s.K, operands.A, operands.B, operands.C), threads):F1}";
            });
            Console.WriteLine($"| {name} | {string.Join(" | ", cells)} |");
        }
        Console.WriteLine($"Steps 1–3 run on the first {ScalarStepRows} rows (GFLOP/s do not depend on the row count there).");
    }

    /// <summary>Micro-kernel tiles (rows × columns of C in registers) through the library driver, one thread.</summary>
    private static void KernelShapeTable()
    {
        var kernels = new (string Name, Action<GemmProblem> Run)[]
        {
            ("4×32 (8 accumulators)", p => GemmDriver<TileKernel<Four, Two>>.Run(in p)),
            ("6×32 (12)", p => GemmDriver<TileKernel<Six, Two>>.Run(in p)),
            ("8×32 (16) — the library's", p => GemmDriver<Avx512MicroKernel>.Run(in p)),
            ("12×32 (24)", p => GemmDriver<TileKernel<Twelve, Two>>.Run(in p)),
            ("14×32 (28)", p => GemmDriver<TileKernel<Fourteen, Two>>.Run(in p)),
            ("16×16 (16)", p => GemmDriver<TileKernel<Sixteen, One>>.Run(in p)),
            ("8×48 (24)", p => GemmDriver<TileKernel<Eight, Three>>.Run(in p)),
        };
        var shapes = new (int M, int K, int N)[] { (256, 768, 2304), (1024, 1024, 1024), (240, 768, 768) };
        WorkerPool.Threads = 1;
        Console.WriteLine("| micro-kernel MR×NR (zmm accumulators), 1 thread | " + string.Join(" | ", shapes.Select(s => $"{s.M}×{s.K}×{s.N} GFLOP/s")) + " |");
        Console.WriteLine("|---|" + string.Concat(shapes.Select(_ => "---:|")));
        foreach (var (name, run) in kernels)
        {
            var cells = shapes.Select(s =>
            {
                using var operands = new Operands(s.M, s.K, s.N);
                var problem = operands.Problem();
                return $"{Gflops(2.0 * s.M * s.N * s.K, () => run(problem), 1):F1}";
            });
            Console.WriteLine($"| {name} | {string.Join(" | ", cells)} |");
        }
    }

    /// <summary>The k block size: L1-sized (the B sliver in half of L1) against longer blocks streamed from L2.</summary>
    private static void KBlockTable()
    {
        var library = GemmDriver<Avx512MicroKernel>.Blocking;
        var shapes = new (int M, int K, int N)[] { (256, 768, 2304), (1024, 1024, 1024), (256, 3072, 768) };
        Console.WriteLine("| KC (k block), 8×32 kernel, 1 thread | " + string.Join(" | ", shapes.Select(s => $"{s.M}×{s.K}×{s.N} GFLOP/s")) + " |");
        Console.WriteLine("|---|" + string.Concat(shapes.Select(_ => "---:|")));
        WorkerPool.Threads = 1;
        try
        {
            foreach (int kc in new[] { 128, 256, 512, library.KC })
            {
                GemmDriver<Avx512MicroKernel>.Blocking = library with { KC = kc };
                var cells = shapes.Select(s =>
                {
                    using var operands = new Operands(s.M, s.K, s.N);
                    return $"{Gflops(2.0 * s.M * s.N * s.K, operands.RunLibrary, 1):F1}";
                });
                Console.WriteLine($"| {kc}{(kc == library.KC ? " (library)" : "")} | {string.Join(" | ", cells)} |");
            }
        }
        finally
        {
            GemmDriver<Avx512MicroKernel>.Blocking = library;
        }
    }

    // ------------------------------------------------------------------ the AVX2 path (docs/optimization-log.md, step 9)

    /// <summary>GPT-2 124M products at B·T = 256 that the AVX2 tables compare on: a forward, a dX and a dW product.</summary>
    private static readonly (string Name, bool TransA, bool TransB, int M, int K, int N)[] Avx2Shapes =
    [
        ("mlp.fc Y=X·W", false, false, 256, 768, 3072), ("attn.proj dX=dY·Wᵀ", false, true, 256, 768, 768),
        ("mlp.proj dW=dYᵀ·X", true, false, 768, 256, 3072), ("lm_head Y=X·W (¼ of N)", false, false, 256, 768, 12576),
    ];

    /// <summary>AVX2 micro-kernel tiles and k blocks, each table's candidates timed interleaved round by round.</summary>
    private static void Avx2Tables(int[] threadCounts)
    {
        var library = GemmDriver<Avx2MicroKernel>.Blocking;
        var tiles = new (string Name, Action<GemmProblem> Run)[]
        {
            ($"{Avx2MicroKernel.MR}×{Avx2MicroKernel.NR} — the library's", p => GemmDriver<Avx2MicroKernel>.Run(in p)),
            ("6×16 (12 ymm accumulators)", p => GemmDriver<Tile256<Six, Two>>.Run(in p)),
            ("6×16, k loop unrolled ×2", p => GemmDriver<Unrolled6x16>.Run(in p)),
            ("4×24 (12)", p => GemmDriver<Tile256<Four, Three>>.Run(in p)),
            ("4×16 (8)", p => GemmDriver<Tile256<Four, Two>>.Run(in p)),
            ("8×8 (8)", p => GemmDriver<Tile256<Eight, One>>.Run(in p)),
        };
        foreach (int threads in threadCounts)
        {
            WorkerPool.Threads = threads;
            Console.WriteLine($"| AVX2 micro-kernel MR×NR, {threads} thread(s), library blocking | " + string.Join(" | ", Avx2Shapes.Select(s => $"{s.Name} {s.M}×{s.K}×{s.N} GFLOP/s")) + " |");
            Console.WriteLine("|---|" + string.Concat(Avx2Shapes.Select(_ => "---:|")));
            var cells = Avx2Shapes.Select(s =>
            {
                using var operands = new Operands(s.M, s.K, s.N);
                var problem = operands.Problem(s.TransA, s.TransB);
                return Interleaved(2.0 * s.M * s.N * s.K, [.. tiles.Select(t => (Action)(() => t.Run(problem)))], threads);
            }).ToArray();
            for (int t = 0; t < tiles.Length; t++)
                Console.WriteLine($"| {tiles[t].Name} | {string.Join(" | ", cells.Select(c => c[t].ToString("F1")))} |");
            Console.WriteLine();
        }

        int[] kcs = [128, 256, 384, 512, 1024];
        foreach (int threads in threadCounts)
        {
            WorkerPool.Threads = threads;
            Console.WriteLine($"| KC (k block) × MC rows, {Avx2MicroKernel.MR}×{Avx2MicroKernel.NR} kernel, {threads} thread(s) | " + string.Join(" | ", Avx2Shapes.Select(s => $"{s.Name} GFLOP/s")) + " |");
            Console.WriteLine("|---|" + string.Concat(Avx2Shapes.Select(_ => "---:|")));
            var blockings = kcs.Select(kc => library with { KC = kc }).Prepend(library).ToArray();
            var cells = Avx2Shapes.Select(s =>
            {
                using var operands = new Operands(s.M, s.K, s.N);
                var problem = operands.Problem(s.TransA, s.TransB);
                try
                {
                    return Interleaved(2.0 * s.M * s.N * s.K, [.. blockings.Select(b => (Action)(() =>
                    {
                        GemmDriver<Avx2MicroKernel>.Blocking = b;
                        GemmDriver<Avx2MicroKernel>.Run(in problem);
                    }))], threads);
                }
                finally { GemmDriver<Avx2MicroKernel>.Blocking = library; }
            }).ToArray();
            for (int b = 0; b < blockings.Length; b++)
                Console.WriteLine($"| {(b == 0 ? $"library: KC {library.KC}, MC {library.MC(library.KC, Avx2MicroKernel.MR)}" : $"KC {blockings[b].KC}, MC {blockings[b].MC(blockings[b].KC, Avx2MicroKernel.MR)}")} | " +
                    $"{string.Join(" | ", cells.Select(c => c[b].ToString("F1")))} |");
            Console.WriteLine();
        }
    }

    /// <summary>
    /// GFLOP/s of each variant of one product, timed interleaved so machine noise hits all alike: every round runs each
    /// variant 3 times (after one untimed run) and keeps its fastest; the result is the median over the rounds. On one
    /// thread the time is the thread's CPU time (robust on a busy machine), on more the wall time.
    /// </summary>
    private static double[] Interleaved(double flops, Action[] variants, int threads, int rounds = 7)
    {
        var best = variants.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            _gate.Wait(threads, "a round");
            for (int v = 0; v < variants.Length; v++)
            {
                variants[v]();
                double fastest = double.MaxValue;
                for (int rep = 0; rep < 3; rep++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    double cpu = threads == 1 ? CpuClock.ThreadSeconds(variants[v]) : 0;
                    fastest = Math.Min(fastest, threads == 1 ? cpu : Stopwatch.GetElapsedTime(t0).TotalSeconds);
                }
                best[v].Add(flops / fastest / 1e9);
            }
        }
        return [.. best.Select(b => b.Order().ElementAt(b.Count / 2))];
    }

    // ------------------------------------------------------------------ the steps (C = A·B, all row-major)

    /// <summary>Step 1: the definition. The inner loop walks down a column of B, a new cache line (and soon a new page)
    /// for every multiply-add.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Naive(int m, int n, int k, float* a, float* b, float* c)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float sum = 0;
                for (int p = 0; p < k; p++) sum += a[(long)i * k + p] * b[(long)p * n + j];
                c[(long)i * n + j] = sum;
            }
    }

    /// <summary>Step 2: the same arithmetic with p outside j: the inner loop now streams along rows of B and C.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LoopOrder(int m, int n, int k, float* a, float* b, float* c)
    {
        for (int i = 0; i < m; i++)
        {
            float* cRow = c + (long)i * n;
            new Span<float>(cRow, n).Clear();
            for (int p = 0; p < k; p++)
            {
                float aip = a[(long)i * k + p];
                float* bRow = b + (long)p * n;
                for (int j = 0; j < n; j++) cRow[j] += aip * bRow[j];
            }
        }
    }

    private const int BlockK = 256, BlockN = 512;

    /// <summary>Step 3: step 2 on blocks of BlockK × BlockN of B (512 KiB, L2-resident) and BlockN-wide pieces of C
    /// rows (2 KiB, L1-resident).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Blocked(int m, int n, int k, float* a, float* b, float* c)
    {
        new Span<float>(c, m * n).Clear();
        for (int j0 = 0; j0 < n; j0 += BlockN)
        {
            int j1 = Math.Min(n, j0 + BlockN);
            for (int p0 = 0; p0 < k; p0 += BlockK)
            {
                int p1 = Math.Min(k, p0 + BlockK);
                for (int i = 0; i < m; i++)
                {
                    float* cRow = c + (long)i * n;
                    for (int p = p0; p < p1; p++)
                    {
                        float aip = a[(long)i * k + p];
                        float* bRow = b + (long)p * n;
                        for (int j = j0; j < j1; j++) cRow[j] += aip * bRow[j];
                    }
                }
            }
        }
    }

    /// <summary>Step 4: step 3 with the inner loop 16 floats at a time (one FMA per vector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BlockedSimd(int m, int n, int k, float* a, float* b, float* c)
    {
        new Span<float>(c, m * n).Clear();
        for (int j0 = 0; j0 < n; j0 += BlockN)
        {
            int j1 = Math.Min(n, j0 + BlockN);
            for (int p0 = 0; p0 < k; p0 += BlockK)
            {
                int p1 = Math.Min(k, p0 + BlockK);
                for (int i = 0; i < m; i++)
                    for (int p = p0; p < p1; p++)
                        AxpyRow(a[(long)i * k + p], b + (long)p * n, c + (long)i * n, j0, j1);
            }
        }
    }

    /// <summary>Step 5: step 4 reading a packed copy of the B block, its rows contiguous (BlockN floats apart instead
    /// of n): fewer TLB misses, no cache-set conflicts when n is a power of two.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackedSimd(int m, int n, int k, float* a, float* b, float* c)
    {
        float* packed = (float*)NativeMemory.AlignedAlloc(BlockK * BlockN * sizeof(float), 64);
        new Span<float>(c, m * n).Clear();
        for (int j0 = 0; j0 < n; j0 += BlockN)
        {
            int width = Math.Min(BlockN, n - j0);
            for (int p0 = 0; p0 < k; p0 += BlockK)
            {
                int depth = Math.Min(BlockK, k - p0);
                for (int p = 0; p < depth; p++)
                    Buffer.MemoryCopy(b + (long)(p0 + p) * n + j0, packed + p * BlockN, width * 4L, width * 4L);
                for (int i = 0; i < m; i++)
                    for (int p = 0; p < depth; p++)
                        AxpyRow(a[(long)i * k + p0 + p], packed + p * BlockN - j0, c + (long)i * n, j0, j0 + width);
            }
        }
        NativeMemory.AlignedFree(packed);
    }

    /// <summary>c[j0:j1] += alpha · b[j0:j1].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AxpyRow(float alpha, float* b, float* c, int j0, int j1)
    {
        var x = Vector512.Create(alpha);
        int j = j0;
        for (; j + 16 <= j1; j += 16) Vector512.FusedMultiplyAdd(x, Vector512.Load(b + j), Vector512.Load(c + j)).Store(c + j);
        for (; j < j1; j++) c[j] = MathF.FusedMultiplyAdd(alpha, b[j], c[j]);
    }

    /// <summary>Steps 6 and 7: the library's SGEMM.</summary>
    /// <summary>Decoding one token: x (1×K) times a weight stored (N, K), read transposed, on two threads — through the
    /// packed driver, and through the library, which streams the weight without packing (SkinnyGemm).</summary>
    private static void SkinnyTable()
    {
        (string Name, int K, int N)[] shapes = [("mlp.fc", 768, 3072), ("mlp.proj", 3072, 768), ("lm_head", 768, 50257)];
        Console.WriteLine("| 1×K·(N×K)ᵀ, 2 threads | packed driver GB/s of weights | streamed (library) GB/s of weights |");
        Console.WriteLine("|---|---:|---:|");
        foreach (var (name, k, n) in shapes)
        {
            using var x = new Operands(1, k, 1);
            using var w = new Operands(n, k, 1);
            using var y = new Operands(1, n, 1);
            var packed = new GemmProblem
            {
                M = 1, N = n, K = k, Batch = 1,
                A = x.A, LaneStrideA = k, KStrideA = 1,
                B = w.A, LaneStrideB = k, KStrideB = 1,
                C = y.A, Ldc = n,
            };
            double bytes = 4.0 * n * k, flops = 2.0 * n * k;
            WorkerPool.Threads = 2;
            double viaDriver = Gflops(flops, () => GemmDriver<Avx512MicroKernel>.Run(in packed), 2) * 1e9 / flops * bytes / 1e9;
            double streamed = Gflops(flops, () => CpuBackend.Instance.Gemm(false, true, 1, n, k, x.A, k, 0, w.A, k, 0, y.A, n, 0, 1, false, null), 2) * 1e9 / flops * bytes / 1e9;
            Console.WriteLine($"| {name} 1×{k}·({n}×{k})ᵀ | {viaDriver:F1} | {streamed:F1} |");
        }
    }

    private static void Library(int m, int n, int k, float* a, float* b, float* c, int threads)
    {
        WorkerPool.Threads = threads;
        CpuBackend.Instance.Gemm(false, false, m, n, k, a, k, 0, b, n, 0, c, n, 0, 1, false, null);
    }

    /// <summary>
    /// GFLOP/s of <paramref name="action"/>: the median of as many runs as fit in ~0.3 s (at least 3, after a warm-up
    /// run), taken once the machine is quiet (or the wait budget is spent); measured again (up to 3 times) if a probe
    /// right after finds a core gone while the budget lasts.
    /// </summary>
    private static double Gflops(double flops, Action action, int threads)
    {
        double best = 0;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            bool quiet = _gate.Wait(threads, "a step");
            action();
            var times = new List<double>();
            long start = Stopwatch.GetTimestamp();
            while (times.Count < 3 || Stopwatch.GetElapsedTime(start).TotalSeconds < 0.3)
            {
                long t0 = Stopwatch.GetTimestamp();
                action();
                times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
            }
            times.Sort();
            best = Math.Max(best, flops / times[times.Count / 2] / 1e9);
            if (!quiet || FmaPeak.Probe(threads) >= QuietGate.ProbeThreshold * FmaPeak.Peak(threads)) break;
        }
        return best;
    }

    private sealed class Operands : IDisposable
    {
        public readonly float* A, B, C;
        private readonly int _m, _k, _n;

        public Operands(int m, int k, int n)
        {
            (_m, _k, _n) = (m, k, n);
            A = RandomMatrix.Allocate((long)m * k, 1);
            B = RandomMatrix.Allocate((long)k * n, 2);
            C = RandomMatrix.Allocate((long)m * n, 3);
        }

        /// <summary>C = op(A)·op(B) with A stored (m, k), or (k, m) when transposed, and B (k, n), or (n, k).</summary>
        public GemmProblem Problem(bool transA = false, bool transB = false) => new()
        {
            M = _m, N = _n, K = _k, Batch = 1,
            A = A, LaneStrideA = transA ? 1 : _k, KStrideA = transA ? _m : 1,
            B = B, LaneStrideB = transB ? _k : 1, KStrideB = transB ? 1 : _n,
            C = C, Ldc = _n,
        };

        public void RunLibrary() => CpuBackend.Instance.Gemm(false, false, _m, _n, _k, A, _k, 0, B, _n, 0, C, _n, 0, 1, false, null);

        public void Dispose()
        {
            NativeMemory.AlignedFree(A);
            NativeMemory.AlignedFree(B);
            NativeMemory.AlignedFree(C);
        }
    }

    // ------------------------------------------------------------------ alternative micro-kernel tiles

    private interface ICount { static abstract int Count { get; } }
    private readonly struct One : ICount { public static int Count => 1; }
    private readonly struct Two : ICount { public static int Count => 2; }
    private readonly struct Three : ICount { public static int Count => 3; }
    private readonly struct Four : ICount { public static int Count => 4; }
    private readonly struct Six : ICount { public static int Count => 6; }
    private readonly struct Eight : ICount { public static int Count => 8; }
    private readonly struct Twelve : ICount { public static int Count => 12; }
    private readonly struct Fourteen : ICount { public static int Count => 14; }
    private readonly struct Sixteen : ICount { public static int Count => 16; }

    /// <summary>
    /// A TRows × (16·TVectors) AVX-512 register tile, written once for all the shapes compared: the JIT compiles one
    /// copy per (TRows, TVectors) with the counts as constants, dropping the unused accumulators and rows.
    /// </summary>
    private readonly struct TileKernel<TRows, TVectors> : IMicroKernel where TRows : struct, ICount where TVectors : struct, ICount
    {
        public static int MR => TRows.Count;
        public static int NR => 16 * TVectors.Count;
        public static GemmBlocking TunedBlocking => GemmBlocking.StreamedFromL2(MR, NR);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(int kc, float* a, float* b, float* c, long ldc, bool addC, float* bias)
        {
            int rows = TRows.Count, vectors = TVectors.Count;
            Vector512<float> c000 = default, c001 = default, c002 = default, c010 = default, c011 = default, c012 = default, c020 = default, c021 = default, c022 = default, c030 = default, c031 = default, c032 = default, c040 = default, c041 = default, c042 = default, c050 = default, c051 = default, c052 = default, c060 = default, c061 = default, c062 = default, c070 = default, c071 = default, c072 = default, c080 = default, c081 = default, c082 = default, c090 = default, c091 = default, c092 = default, c100 = default, c101 = default, c102 = default, c110 = default, c111 = default, c112 = default, c120 = default, c121 = default, c122 = default, c130 = default, c131 = default, c132 = default, c140 = default, c141 = default, c142 = default, c150 = default, c151 = default, c152 = default;
            for (int p = 0; p < kc; p++)
            {
                var b0 = Vector512.Load(b);
                var b1 = vectors > 1 ? Vector512.Load(b + 16) : default;
                var b2 = vectors > 2 ? Vector512.Load(b + 32) : default;
                { var x = Vector512.Create(a[0]); c000 = Vector512.FusedMultiplyAdd(x, b0, c000); if (vectors > 1) c001 = Vector512.FusedMultiplyAdd(x, b1, c001); if (vectors > 2) c002 = Vector512.FusedMultiplyAdd(x, b2, c002); }
                { var x = Vector512.Create(a[1]); c010 = Vector512.FusedMultiplyAdd(x, b0, c010); if (vectors > 1) c011 = Vector512.FusedMultiplyAdd(x, b1, c011); if (vectors > 2) c012 = Vector512.FusedMultiplyAdd(x, b2, c012); }
                { var x = Vector512.Create(a[2]); c020 = Vector512.FusedMultiplyAdd(x, b0, c020); if (vectors > 1) c021 = Vector512.FusedMultiplyAdd(x, b1, c021); if (vectors > 2) c022 = Vector512.FusedMultiplyAdd(x, b2, c022); }
                { var x = Vector512.Create(a[3]); c030 = Vector512.FusedMultiplyAdd(x, b0, c030); if (vectors > 1) c031 = Vector512.FusedMultiplyAdd(x, b1, c031); if (vectors > 2) c032 = Vector512.FusedMultiplyAdd(x, b2, c032); }
                if (rows > 4) { var x = Vector512.Create(a[4]); c040 = Vector512.FusedMultiplyAdd(x, b0, c040); if (vectors > 1) c041 = Vector512.FusedMultiplyAdd(x, b1, c041); if (vectors > 2) c042 = Vector512.FusedMultiplyAdd(x, b2, c042); }
                if (rows > 5) { var x = Vector512.Create(a[5]); c050 = Vector512.FusedMultiplyAdd(x, b0, c050); if (vectors > 1) c051 = Vector512.FusedMultiplyAdd(x, b1, c051); if (vectors > 2) c052 = Vector512.FusedMultiplyAdd(x, b2, c052); }
                if (rows > 6) { var x = Vector512.Create(a[6]); c060 = Vector512.FusedMultiplyAdd(x, b0, c060); if (vectors > 1) c061 = Vector512.FusedMultiplyAdd(x, b1, c061); if (vectors > 2) c062 = Vector512.FusedMultiplyAdd(x, b2, c062); }
                if (rows > 7) { var x = Vector512.Create(a[7]); c070 = Vector512.FusedMultiplyAdd(x, b0, c070); if (vectors > 1) c071 = Vector512.FusedMultiplyAdd(x, b1, c071); if (vectors > 2) c072 = Vector512.FusedMultiplyAdd(x, b2, c072); }
                if (rows > 8) { var x = Vector512.Create(a[8]); c080 = Vector512.FusedMultiplyAdd(x, b0, c080); if (vectors > 1) c081 = Vector512.FusedMultiplyAdd(x, b1, c081); if (vectors > 2) c082 = Vector512.FusedMultiplyAdd(x, b2, c082); }
                if (rows > 9) { var x = Vector512.Create(a[9]); c090 = Vector512.FusedMultiplyAdd(x, b0, c090); if (vectors > 1) c091 = Vector512.FusedMultiplyAdd(x, b1, c091); if (vectors > 2) c092 = Vector512.FusedMultiplyAdd(x, b2, c092); }
                if (rows > 10) { var x = Vector512.Create(a[10]); c100 = Vector512.FusedMultiplyAdd(x, b0, c100); if (vectors > 1) c101 = Vector512.FusedMultiplyAdd(x, b1, c101); if (vectors > 2) c102 = Vector512.FusedMultiplyAdd(x, b2, c102); }
                if (rows > 11) { var x = Vector512.Create(a[11]); c110 = Vector512.FusedMultiplyAdd(x, b0, c110); if (vectors > 1) c111 = Vector512.FusedMultiplyAdd(x, b1, c111); if (vectors > 2) c112 = Vector512.FusedMultiplyAdd(x, b2, c112); }
                if (rows > 12) { var x = Vector512.Create(a[12]); c120 = Vector512.FusedMultiplyAdd(x, b0, c120); if (vectors > 1) c121 = Vector512.FusedMultiplyAdd(x, b1, c121); if (vectors > 2) c122 = Vector512.FusedMultiplyAdd(x, b2, c122); }
                if (rows > 13) { var x = Vector512.Create(a[13]); c130 = Vector512.FusedMultiplyAdd(x, b0, c130); if (vectors > 1) c131 = Vector512.FusedMultiplyAdd(x, b1, c131); if (vectors > 2) c132 = Vector512.FusedMultiplyAdd(x, b2, c132); }
                if (rows > 14) { var x = Vector512.Create(a[14]); c140 = Vector512.FusedMultiplyAdd(x, b0, c140); if (vectors > 1) c141 = Vector512.FusedMultiplyAdd(x, b1, c141); if (vectors > 2) c142 = Vector512.FusedMultiplyAdd(x, b2, c142); }
                if (rows > 15) { var x = Vector512.Create(a[15]); c150 = Vector512.FusedMultiplyAdd(x, b0, c150); if (vectors > 1) c151 = Vector512.FusedMultiplyAdd(x, b1, c151); if (vectors > 2) c152 = Vector512.FusedMultiplyAdd(x, b2, c152); }
                a += rows;
                b += 16 * vectors;
            }
            StoreRow(c + 0 * ldc, c000, c001, c002, addC, bias);
            StoreRow(c + 1 * ldc, c010, c011, c012, addC, bias);
            StoreRow(c + 2 * ldc, c020, c021, c022, addC, bias);
            StoreRow(c + 3 * ldc, c030, c031, c032, addC, bias);
            if (rows > 4) StoreRow(c + 4 * ldc, c040, c041, c042, addC, bias);
            if (rows > 5) StoreRow(c + 5 * ldc, c050, c051, c052, addC, bias);
            if (rows > 6) StoreRow(c + 6 * ldc, c060, c061, c062, addC, bias);
            if (rows > 7) StoreRow(c + 7 * ldc, c070, c071, c072, addC, bias);
            if (rows > 8) StoreRow(c + 8 * ldc, c080, c081, c082, addC, bias);
            if (rows > 9) StoreRow(c + 9 * ldc, c090, c091, c092, addC, bias);
            if (rows > 10) StoreRow(c + 10 * ldc, c100, c101, c102, addC, bias);
            if (rows > 11) StoreRow(c + 11 * ldc, c110, c111, c112, addC, bias);
            if (rows > 12) StoreRow(c + 12 * ldc, c120, c121, c122, addC, bias);
            if (rows > 13) StoreRow(c + 13 * ldc, c130, c131, c132, addC, bias);
            if (rows > 14) StoreRow(c + 14 * ldc, c140, c141, c142, addC, bias);
            if (rows > 15) StoreRow(c + 15 * ldc, c150, c151, c152, addC, bias);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void StoreRow(float* row, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, bool addC, float* bias)
        {
            int vectors = TVectors.Count;
            if (bias != null) { v0 += Vector512.Load(bias); if (vectors > 1) v1 += Vector512.Load(bias + 16); if (vectors > 2) v2 += Vector512.Load(bias + 32); }
            if (addC) { v0 += Vector512.Load(row); if (vectors > 1) v1 += Vector512.Load(row + 16); if (vectors > 2) v2 += Vector512.Load(row + 32); }
            v0.Store(row);
            if (vectors > 1) v1.Store(row + 16);
            if (vectors > 2) v2.Store(row + 32);
        }
    }

    /// <summary>
    /// A TRows × (8·TVectors) AVX2 register tile (up to 8 rows, 3 vectors), compiled once per shape with the counts as
    /// constants like <see cref="TileKernel{TRows, TVectors}"/>. AVX2 has 16 ymm registers: accumulators + vectors of B
    /// + one broadcast must fit, so 6×16 and 4×24 (12 accumulators) are the largest tiles.
    /// </summary>
    private readonly struct Tile256<TRows, TVectors> : IMicroKernel where TRows : struct, ICount where TVectors : struct, ICount
    {
        public static int MR => TRows.Count;
        public static int NR => 8 * TVectors.Count;
        public static GemmBlocking TunedBlocking => GemmBlocking.L1ResidentB(MR, NR);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(int kc, float* a, float* b, float* c, long ldc, bool addC, float* bias)
        {
            int rows = TRows.Count, vectors = TVectors.Count;
            Vector256<float> c00 = default, c01 = default, c02 = default, c10 = default, c11 = default, c12 = default,
                c20 = default, c21 = default, c22 = default, c30 = default, c31 = default, c32 = default,
                c40 = default, c41 = default, c42 = default, c50 = default, c51 = default, c52 = default,
                c60 = default, c61 = default, c62 = default, c70 = default, c71 = default, c72 = default;
            for (int p = 0; p < kc; p++)
            {
                var b0 = Vector256.Load(b);
                var b1 = vectors > 1 ? Vector256.Load(b + 8) : default;
                var b2 = vectors > 2 ? Vector256.Load(b + 16) : default;
                { var x = Vector256.Create(a[0]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); if (vectors > 1) c01 = Vector256.FusedMultiplyAdd(x, b1, c01); if (vectors > 2) c02 = Vector256.FusedMultiplyAdd(x, b2, c02); }
                if (rows > 1) { var x = Vector256.Create(a[1]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); if (vectors > 1) c11 = Vector256.FusedMultiplyAdd(x, b1, c11); if (vectors > 2) c12 = Vector256.FusedMultiplyAdd(x, b2, c12); }
                if (rows > 2) { var x = Vector256.Create(a[2]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); if (vectors > 1) c21 = Vector256.FusedMultiplyAdd(x, b1, c21); if (vectors > 2) c22 = Vector256.FusedMultiplyAdd(x, b2, c22); }
                if (rows > 3) { var x = Vector256.Create(a[3]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); if (vectors > 1) c31 = Vector256.FusedMultiplyAdd(x, b1, c31); if (vectors > 2) c32 = Vector256.FusedMultiplyAdd(x, b2, c32); }
                if (rows > 4) { var x = Vector256.Create(a[4]); c40 = Vector256.FusedMultiplyAdd(x, b0, c40); if (vectors > 1) c41 = Vector256.FusedMultiplyAdd(x, b1, c41); if (vectors > 2) c42 = Vector256.FusedMultiplyAdd(x, b2, c42); }
                if (rows > 5) { var x = Vector256.Create(a[5]); c50 = Vector256.FusedMultiplyAdd(x, b0, c50); if (vectors > 1) c51 = Vector256.FusedMultiplyAdd(x, b1, c51); if (vectors > 2) c52 = Vector256.FusedMultiplyAdd(x, b2, c52); }
                if (rows > 6) { var x = Vector256.Create(a[6]); c60 = Vector256.FusedMultiplyAdd(x, b0, c60); if (vectors > 1) c61 = Vector256.FusedMultiplyAdd(x, b1, c61); if (vectors > 2) c62 = Vector256.FusedMultiplyAdd(x, b2, c62); }
                if (rows > 7) { var x = Vector256.Create(a[7]); c70 = Vector256.FusedMultiplyAdd(x, b0, c70); if (vectors > 1) c71 = Vector256.FusedMultiplyAdd(x, b1, c71); if (vectors > 2) c72 = Vector256.FusedMultiplyAdd(x, b2, c72); }
                a += rows;
                b += 8 * vectors;
            }
            StoreRow(c, c00, c01, c02, addC, bias);
            if (rows > 1) StoreRow(c + ldc, c10, c11, c12, addC, bias);
            if (rows > 2) StoreRow(c + 2 * ldc, c20, c21, c22, addC, bias);
            if (rows > 3) StoreRow(c + 3 * ldc, c30, c31, c32, addC, bias);
            if (rows > 4) StoreRow(c + 4 * ldc, c40, c41, c42, addC, bias);
            if (rows > 5) StoreRow(c + 5 * ldc, c50, c51, c52, addC, bias);
            if (rows > 6) StoreRow(c + 6 * ldc, c60, c61, c62, addC, bias);
            if (rows > 7) StoreRow(c + 7 * ldc, c70, c71, c72, addC, bias);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void StoreRow(float* row, Vector256<float> v0, Vector256<float> v1, Vector256<float> v2, bool addC, float* bias)
        {
            int vectors = TVectors.Count;
            if (bias != null) { v0 += Vector256.Load(bias); if (vectors > 1) v1 += Vector256.Load(bias + 8); if (vectors > 2) v2 += Vector256.Load(bias + 16); }
            if (addC) { v0 += Vector256.Load(row); if (vectors > 1) v1 += Vector256.Load(row + 8); if (vectors > 2) v2 += Vector256.Load(row + 16); }
            v0.Store(row);
            if (vectors > 1) v1.Store(row + 8);
            if (vectors > 2) v2.Store(row + 16);
        }
    }

    /// <summary>The library's 6 × 16 kernel with the k loop unrolled twice (half the loop overhead per FMA).</summary>
    private readonly struct Unrolled6x16 : IMicroKernel
    {
        public static int MR => 6;
        public static int NR => 16;
        public static GemmBlocking TunedBlocking => GemmBlocking.L1ResidentB(MR, NR);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Run(int kc, float* a, float* b, float* c, long ldc, bool addC, float* bias)
        {
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
            int p = 0;
            for (; p + 2 <= kc; p += 2)
            {
                var b0 = Vector256.Load(b);
                var b1 = Vector256.Load(b + 8);
                var x = Vector256.Create(a[0]);
                c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
                x = Vector256.Create(a[1]);
                c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
                x = Vector256.Create(a[2]);
                c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
                x = Vector256.Create(a[3]);
                c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
                x = Vector256.Create(a[4]);
                c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41);
                x = Vector256.Create(a[5]);
                c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51);
                b0 = Vector256.Load(b + 16);
                b1 = Vector256.Load(b + 24);
                x = Vector256.Create(a[6]);
                c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
                x = Vector256.Create(a[7]);
                c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
                x = Vector256.Create(a[8]);
                c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
                x = Vector256.Create(a[9]);
                c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
                x = Vector256.Create(a[10]);
                c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41);
                x = Vector256.Create(a[11]);
                c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51);
                a += 12;
                b += 32;
            }
            if (p < kc)
            {
                var b0 = Vector256.Load(b);
                var b1 = Vector256.Load(b + 8);
                var x = Vector256.Create(a[0]);
                c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
                x = Vector256.Create(a[1]);
                c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
                x = Vector256.Create(a[2]);
                c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
                x = Vector256.Create(a[3]);
                c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
                x = Vector256.Create(a[4]);
                c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41);
                x = Vector256.Create(a[5]);
                c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51);
            }
            StoreRow(c, c00, c01, addC, bias);
            StoreRow(c + ldc, c10, c11, addC, bias);
            StoreRow(c + 2 * ldc, c20, c21, addC, bias);
            StoreRow(c + 3 * ldc, c30, c31, addC, bias);
            StoreRow(c + 4 * ldc, c40, c41, addC, bias);
            StoreRow(c + 5 * ldc, c50, c51, addC, bias);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void StoreRow(float* row, Vector256<float> lo, Vector256<float> hi, bool addC, float* bias)
        {
            if (bias != null) { lo += Vector256.Load(bias); hi += Vector256.Load(bias + 8); }
            if (addC) { lo += Vector256.Load(row); hi += Vector256.Load(row + 8); }
            lo.Store(row);
            hi.Store(row + 8);
        }
    }
}
