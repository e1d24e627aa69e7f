using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Cpu.Gemm;
using Nabla.Kernels.Reference;

namespace Nabla.Tests.Kernels;

/// <summary>The GEMM tests change process-wide settings (ISA cap, thread count) and measure allocations, so they
/// run alone rather than beside other test classes.</summary>
[CollectionDefinition(nameof(GemmCollection), DisableParallelization = true)]
public sealed class GemmCollection;

/// <summary>
/// CpuBackend.Gemm against the naive ReferenceBackend.Gemm on shapes that reach every edge path of the packed,
/// blocked kernel: empty and 1-wide matrices, primes, one below/at/above the micro-tile, k across cache blocks, M
/// and N across the MC/NC blocks; all four transpose combinations, accumulate, bias, padded leading dimensions and
/// batches with shared (stride 0) operands; each under AVX-512, AVX2 and scalar kernels, on 1 and 2 threads, and with
/// the real cache blocking as well as a tiny one that makes even small shapes cross many k, row and column blocks.
/// </summary>
[Collection(nameof(GemmCollection))]
public sealed unsafe class GemmTests
{
    private static IReadOnlyList<Isa> Isas => TestIsas.Available;
    private static readonly int[] ThreadCounts = [1, 2];

    /// <summary>Blocks of 3 slivers of A and of B, 16 k steps deep, for every kernel until disposed.</summary>
    private sealed class TinyBlocking : IDisposable
    {
        private readonly GemmBlocking _avx512 = GemmDriver<Avx512MicroKernel>.Blocking, _avx2 = GemmDriver<Avx2MicroKernel>.Blocking,
            _scalar = GemmDriver<ScalarMicroKernel>.Blocking;

        public TinyBlocking()
        {
            GemmDriver<Avx512MicroKernel>.Blocking = Tiny<Avx512MicroKernel>();
            GemmDriver<Avx2MicroKernel>.Blocking = Tiny<Avx2MicroKernel>();
            GemmDriver<ScalarMicroKernel>.Blocking = Tiny<ScalarMicroKernel>();
        }

        private static GemmBlocking Tiny<TKernel>() where TKernel : struct, IMicroKernel =>
            new(KC: 16, AFloats: 16 * 3 * TKernel.MR, BFloats: 16 * 3 * TKernel.NR);

        public void Dispose()
        {
            GemmDriver<Avx512MicroKernel>.Blocking = _avx512;
            GemmDriver<Avx2MicroKernel>.Blocking = _avx2;
            GemmDriver<ScalarMicroKernel>.Blocking = _scalar;
        }
    }

    public static TheoryData<int, int, int> EdgeShapes()
    {
        var shapes = new TheoryData<int, int, int>
        {
            // m, n, k
            { 0, 5, 7 }, { 5, 0, 7 }, { 5, 7, 0 }, { 1, 1, 1 }, { 1, 13, 7 }, { 7, 1, 13 }, { 13, 31, 97 }, { 31, 97, 13 },
            { 7, 31, 5 }, { 8, 32, 8 }, { 9, 33, 9 },      // AVX-512 tile (8 × 32) ± 1
            { 5, 15, 3 }, { 6, 16, 4 }, { 7, 17, 2 },     // AVX2 tile (6 × 16) ± 1
            { 8, 20, 19 }, { 10, 17, 33 }, { 11, 40, 24 }, { 12, 48, 16 }, // AVX2 6-lane A slivers: packed as 4 + 2 lanes, last one partial
            { 3, 3, 3 }, { 4, 4, 4 }, { 5, 5, 5 },         // scalar tile (4 × 4) ± 1
            { 2, 70, 40 }, { 4, 300, 37 },                 // skinny path (m ≤ 4): several vectors along k and n, tails
            { 1, 77, 200 }, { 1, 8, 16 }, { 1, 1030, 96 }, // one row: groups of 8 columns, a column tail, k tails
            { 25, 65, 129 }, { 257, 129, 300 }, { 40, 70, 1031 }, { 3, 2100, 11 }, { 1100, 5, 3 },
        };
        return shapes;
    }

    [Theory]
    [MemberData(nameof(EdgeShapes))]
    public void MatchesReferenceOnEdgeShapes(int m, int n, int k)
    {
        var random = new Random(m * 7919 + n * 31 + k);
        foreach (bool transA in new[] { false, true })
            foreach (bool transB in new[] { false, true })
            {
                var c = GemmCase.Create(random, transA, transB, m, n, k, batch: 1, sharedA: false, sharedB: false,
                    accumulate: random.Next(2) == 0, bias: random.Next(2) == 0);
                c.CheckAllPaths();
            }
    }

    [Theory]
    [InlineData(false, false, false, false)]
    [InlineData(true, false, false, true)]
    [InlineData(false, true, true, false)]
    [InlineData(true, true, true, true)]
    public void AccumulateAndBiasCombine(bool transA, bool transB, bool accumulate, bool bias)
    {
        var c = GemmCase.Create(new Random(5), transA, transB, 45, 70, 150, batch: 1, sharedA: false, sharedB: false, accumulate, bias);
        c.CheckAllPaths();
    }

    [Theory]
    [InlineData(48, 64, 64, 64, false, false)]   // attention-sized: spread over the batch
    [InlineData(3, 37, 50, 29, false, false)]    // fewer matrices than 4 × threads: each one split
    [InlineData(2, 30, 70, 20, false, false)]
    [InlineData(5, 20, 40, 33, true, false)]     // A shared across the batch (stride 0)
    [InlineData(4, 20, 40, 33, false, true)]     // B shared across the batch
    [InlineData(9, 13, 31, 7, true, true)]
    public void BatchesWithStrides(int batch, int m, int n, int k, bool sharedA, bool sharedB)
    {
        var random = new Random(batch * 1000 + m);
        foreach (bool transA in new[] { false, true })
            foreach (bool transB in new[] { false, true })
            {
                var c = GemmCase.Create(random, transA, transB, m, n, k, batch, sharedA, sharedB, accumulate: transA, bias: transB);
                c.CheckAllPaths();
            }
    }

    /// <summary>A GEMM called from inside a parallel task runs inline on that thread (the pool is not reentrant), so
    /// the team path, whose threads wait for one another, must not be taken there.</summary>
    [Fact]
    public void CallsFromInsideAParallelTaskRunInline()
    {
        var cases = Enumerable.Range(0, 2).Select(i => GemmCase.Create(new Random(i), i == 1, false, 70, 90, 200,
            batch: 1, sharedA: false, sharedB: false, accumulate: false, bias: true)).ToArray();
        int threads = WorkerPool.Threads;
        try
        {
            WorkerPool.Threads = 2;
            WorkerPool.Run(2, new RunCases(cases));
            foreach (var c in cases) c.CompareLastRun("inside a parallel task");
        }
        finally
        {
            WorkerPool.Threads = threads;
        }
    }

    private sealed class RunCases(GemmCase[] cases) : IParallelTask
    {
        public void Execute(int taskIndex) => cases[taskIndex].RunCpu();
    }

    [Fact]
    public void SteadyStateCallsAllocateNothing()
    {
        var c = GemmCase.Create(new Random(1), false, true, 64, 768, 96, batch: 1, sharedA: false, sharedB: false, accumulate: true, bias: true);
        var batched = GemmCase.Create(new Random(2), true, false, 64, 64, 64, batch: 12, sharedA: false, sharedB: false, accumulate: false, bias: false);
        int threads = WorkerPool.Threads;
        try
        {
            WorkerPool.Threads = 1;
            c.RunCpu();
            batched.RunCpu();
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5; i++) { c.RunCpu(); batched.RunCpu(); }
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);

            // On two threads count every thread's allocations. Something unrelated in the process (the test runner)
            // may allocate during a window, so one clean window out of several proves the GEMM itself allocates nothing.
            WorkerPool.Threads = 2;
            c.RunCpu();
            batched.RunCpu();
            long fewest = long.MaxValue;
            for (int attempt = 0; attempt < 5 && fewest > 0; attempt++)
            {
                long total = GC.GetTotalAllocatedBytes(precise: true);
                for (int i = 0; i < 5; i++) { c.RunCpu(); batched.RunCpu(); }
                fewest = Math.Min(fewest, GC.GetTotalAllocatedBytes(precise: true) - total);
            }
            Assert.Equal(0, fewest);
        }
        finally
        {
            WorkerPool.Threads = threads;
        }
    }

    /// <summary>Operands of one GEMM call with padded leading dimensions, the reference result, and a per-element
    /// error bound.</summary>
    private sealed class GemmCase
    {
        private bool _transA, _transB, _accumulate;
        private int _m, _n, _k, _batch, _lda, _ldb, _ldc;
        private long _strideA, _strideB, _strideC;
        private float[] _a = [], _b = [], _c0 = [], _c = [];
        private float[]? _bias;
        private float[] _expected = [], _tolerance = [];

        public static GemmCase Create(Random random, bool transA, bool transB, int m, int n, int k, int batch,
            bool sharedA, bool sharedB, bool accumulate, bool bias)
        {
            var g = new GemmCase { _transA = transA, _transB = transB, _accumulate = accumulate, _m = m, _n = n, _k = k, _batch = batch };
            // Stored shapes (rows × cols) of A and B, with 3 columns of padding that the kernel must not touch.
            int aRows = transA ? k : m, aCols = transA ? m : k, bRows = transB ? n : k, bCols = transB ? k : n;
            g._lda = aCols + 3;
            g._ldb = bCols + 3;
            g._ldc = n + 3;
            g._strideA = sharedA ? 0 : (long)aRows * g._lda + 5;
            g._strideB = sharedB ? 0 : (long)bRows * g._ldb + 5;
            g._strideC = (long)m * g._ldc + 5;
            g._a = RandomArray(random, (sharedA ? 1 : batch) * Math.Max(1, g._strideA) + (long)aRows * g._lda);
            g._b = RandomArray(random, (sharedB ? 1 : batch) * Math.Max(1, g._strideB) + (long)bRows * g._ldb);
            g._c0 = RandomArray(random, batch * g._strideC);
            g._bias = bias ? RandomArray(random, n) : null;
            g._c = new float[g._c0.Length];
            g._expected = (float[])g._c0.Clone();
            g.Run(ReferenceBackend.Instance, g._expected);
            g._tolerance = g.ToleranceBounds();
            return g;
        }

        private static float[] RandomArray(Random random, long length)
        {
            var array = new float[length];
            for (long i = 0; i < length; i++) array[i] = (float)(random.NextDouble() * 2 - 1);
            return array;
        }

        /// <summary>
        /// The reference sums in double, the kernel in float with FMAs in blocks, so they differ by rounding: each of
        /// the k float additions may err by half an ulp (6e-8) of the running sum, and such errors add up like a random
        /// walk, about sqrt(k) times one of them, relative to Σ|a·b| (plus |bias| and |C| when they are added).
        /// 1e-5 · sqrt(k) leaves a margin of ~100× for that while a missed or doubled term (an error of the order of one
        /// product, Σ|a·b|/k) still fails for every k the tests use.
        /// </summary>
        private float[] ToleranceBounds()
        {
            var bound = new float[_c0.Length];
            double scale = 1e-5 * Math.Sqrt(Math.Max(1, _k));
            for (int p = 0; p < _batch; p++)
                for (int i = 0; i < _m; i++)
                    for (int j = 0; j < _n; j++)
                    {
                        double magnitude = 0;
                        for (int q = 0; q < _k; q++) magnitude += Math.Abs((double)AElement(p, i, q) * BElement(p, q, j));
                        long at = p * _strideC + (long)i * _ldc + j;
                        if (_bias != null) magnitude += Math.Abs(_bias[j]);
                        if (_accumulate) magnitude += Math.Abs(_c0[at]);
                        bound[at] = (float)(scale * magnitude + 1e-30);
                    }
            return bound;
        }

        private float AElement(int p, int i, int q) => _a[p * _strideA + (_transA ? (long)q * _lda + i : (long)i * _lda + q)];
        private float BElement(int p, int q, int j) => _b[p * _strideB + (_transB ? (long)j * _ldb + q : (long)q * _ldb + j)];

        public void RunCpu()
        {
            Array.Copy(_c0, _c, _c0.Length);
            Run(CpuBackend.Instance, _c);
        }

        private void Run(IKernelBackend backend, float[] c)
        {
            fixed (float* a = _a, b = _b, cp = c, bias = _bias)
                backend.Gemm(_transA, _transB, _m, _n, _k, a, _lda, _strideA, b, _ldb, _strideB, cp, _ldc, _strideC, _batch, _accumulate, bias);
        }

        /// <summary>Runs the case under every ISA, thread count and blocking, comparing all of C, padding included.</summary>
        public void CheckAllPaths()
        {
            int threads = WorkerPool.Threads;
            try
            {
                foreach (bool tiny in new[] { false, true })
                    foreach (var isa in Isas)
                        foreach (int t in ThreadCounts)
                            using (CpuFeatures.Limit(isa))
                            using (tiny ? new TinyBlocking() : null)
                            {
                                WorkerPool.Threads = t;
                                RunCpu();
                                Compare($"{isa}, {t} thread(s), {(tiny ? "tiny" : "real")} blocking");
                            }
            }
            finally
            {
                WorkerPool.Threads = threads;
            }
        }

        public void CompareLastRun(string path) => Compare(path);

        private void Compare(string path)
        {
            for (long at = 0; at < _c.Length; at++)
            {
                float error = Math.Abs(_c[at] - _expected[at]);
                if (!(error <= _tolerance[at]))
                    Assert.Fail($"Gemm {(_transA ? "T" : "N")}{(_transB ? "T" : "N")} m={_m} n={_n} k={_k} batch={_batch} " +
                        $"accumulate={_accumulate} bias={_bias != null} on {path}: C[{at}] = {_c[at]}, reference {_expected[at]} " +
                        $"(error {error}, allowed {_tolerance[at]}).");
            }
        }
    }
}
