using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Reference;

namespace Nabla.Bench;

/// <summary>
/// `gemm`: our SGEMM against PyTorch (OpenBLAS) in the same run, interleaved shape by shape and round by round so
/// machine noise hits both alike, plus the naive reference kernel for scale. Prints a Markdown table (or JSON).
/// </summary>
internal static unsafe class GemmBenchmark
{
    /// <summary>One benchmarked product. Op says how A and B are stored: T = transposed, read through strides.</summary>
    internal sealed record GemmShape(string Kernel, bool TransA, bool TransB, int M, int N, int K)
    {
        public string Dims => $"{M}×{K}×{N}";
        public string Op => $"{(TransA ? 'T' : 'N')}{(TransB ? 'T' : 'N')}";
        public double Flops => 2.0 * M * N * K;
    }

    internal sealed record Result(string Kernel, string Dims, string Op, string Impl, int Threads, double MedianMs,
        double Gflops, double PercentOfPeak, double OthersCpuPercent, int Samples);

    /// <summary>GPT-2 124M linear layers at B·T = 256 tokens (C = 768) with their two backward products, square
    /// matrices, and a small attention-projection-sized product.</summary>
    public static List<GemmShape> Shapes(string which)
    {
        var shapes = new List<GemmShape>();
        if (which is "gpt2" or "all")
        {
            const int tokens = 256;
            foreach (var (layer, inFeatures, outFeatures) in new[]
            {
                ("attn.qkv", 768, 2304), ("attn.proj", 768, 768), ("mlp.fc", 768, 3072), ("mlp.proj", 3072, 768), ("lm_head", 768, 50304),
            })
            {
                shapes.Add(new GemmShape($"{layer} Y=X·W", false, false, tokens, outFeatures, inFeatures));
                shapes.Add(new GemmShape($"{layer} dX=dY·Wᵀ", false, true, tokens, inFeatures, outFeatures));
                shapes.Add(new GemmShape($"{layer} dW=dYᵀ·X", true, false, outFeatures, inFeatures, tokens));
            }
        }
        if (which is "squares" or "all")
            foreach (int size in new[] { 512, 1024, 2048 })
                shapes.Add(new GemmShape("square", false, false, size, size, size));
        if (which is "small" or "all")
            shapes.Add(new GemmShape("small", false, false, 64, 768, 768));
        if (shapes.Count == 0) throw new ArgumentException($"Unknown shape set '{which}' (gpt2, squares, small, all).");
        return shapes;
    }

    public static void Run(BenchOptions options)
    {
        using var peer = options.Torch ? TorchPeer.TryStart() : null;
        var load = new MachineLoad(() => peer?.ProcessorTime ?? TimeSpan.Zero);
        var results = new List<Result>();
        var peaks = new Dictionary<int, double>();
        string loadBefore = MachineLoad.LoadAverage;
        int savedThreads = WorkerPool.Threads;
        try
        {
            foreach (int threads in options.Threads)
            {
                WorkerPool.Threads = threads;
                peer?.SetThreads(threads);
                double peak = peaks[threads] = FmaPeak.Measure(threads);
                foreach (var shape in Shapes(options.Shapes))
                {
                    results.AddRange(Measure(shape, threads, peak, peer, load, options.Rounds));
                    if (!options.Json) Console.Error.Write('.');
                }
            }
        }
        finally
        {
            WorkerPool.Threads = savedThreads;
        }
        if (!options.Json) Console.Error.WriteLine();
        string loadAfter = MachineLoad.LoadAverage;

        if (options.Json)
        {
            var document = new
            {
                machine = CpuModel(), cores = Environment.ProcessorCount, peer = peer?.Description ?? "none",
                loadAverageBefore = loadBefore, loadAverageAfter = loadAfter,
                fmaPeakGflops = peaks.ToDictionary(p => p.Key.ToString(), p => Math.Round(p.Value, 1)),
                results,
            };
            Console.WriteLine(JsonSerializer.Serialize(document, new JsonSerializerOptions { WriteIndented = true }));
            return;
        }
        Console.WriteLine($"Machine: {CpuModel()}, {Environment.ProcessorCount} cores; .NET {Environment.Version}; peer: {peer?.Description ?? "none"}");
        Console.WriteLine($"Measured FMA peak: {string.Join(", ", peaks.Select(p => $"{p.Value:F1} GFLOP/s on {p.Key} thread(s)"))}");
        Console.WriteLine($"Load average before/after: {loadBefore} / {loadAfter}. 'others' = CPU share used by other processes during the row's measurement.");
        Console.WriteLine("naive = ReferenceBackend (one thread, double accumulators); for large shapes it runs on the first m' rows and is scaled by m/m' (marked ~).");
        Console.WriteLine();
        Console.WriteLine("| kernel | M×K×N | op | impl | threads | median ms | GFLOP/s | % of peak | others % |");
        Console.WriteLine("|---|---|---|---|---:|---:|---:|---:|---:|");
        foreach (var r in results)
            Console.WriteLine($"| {r.Kernel} | {r.Dims} | {r.Op} | {r.Impl} | {r.Threads} | {r.MedianMs:F3} | {r.Gflops:F1} | {r.PercentOfPeak:F0}% | {r.OthersCpuPercent:F0} |");
    }

    private static IEnumerable<Result> Measure(GemmShape shape, int threads, double peak, TorchPeer? peer, MachineLoad load, int rounds)
    {
        using var operands = new Operands(shape);
        operands.RunOurs();
        double estimate = Time(operands.RunOurs);
        int reps = (int)Math.Clamp(0.2 / estimate, 3, 40);
        var ours = new List<double>();
        var torch = new List<double>();
        load.Start();
        for (int round = 0; round < rounds; round++)
        {
            for (int i = 0; i < reps; i++) ours.Add(Time(operands.RunOurs) * 1e3);
            // Let the other side's spinning worker threads go to sleep before timing this side.
            Thread.Sleep(150);
            if (peer != null)
            {
                torch.AddRange(peer.Gemm(shape.TransA, shape.TransB, shape.M, shape.N, shape.K, reps));
                Thread.Sleep(150);
            }
        }
        double others = load.OthersPercent();
        yield return MakeResult(shape, "ours", threads, ours, peak, others);
        if (peer != null) yield return MakeResult(shape, "pytorch", threads, torch, peak, others);
        if (threads == 1)
        {
            var (ms, rows) = operands.TimeNaive();
            string impl = rows == shape.M ? "naive" : $"naive ~ (m'={rows})";
            yield return MakeResult(shape, impl, 1, [ms], peak, others);
        }
    }

    private static Result MakeResult(GemmShape shape, string impl, int threads, List<double> times, double peak, double others)
    {
        double median = Median(times);
        double gflops = shape.Flops / (median * 1e-3) / 1e9;
        return new Result(shape.Kernel, shape.Dims, shape.Op, impl, threads, median, gflops, 100 * gflops / peak, others, times.Count);
    }

    private static double Time(Action action)
    {
        long start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string CpuModel() =>
        File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? "?"
            : "?";

    /// <summary>A, B and C of one shape in 64-byte aligned native memory, stored as PyTorch's side stores them.</summary>
    private sealed class Operands : IDisposable
    {
        private readonly GemmShape _shape;
        private readonly float* _a, _b, _c;
        private readonly int _lda, _ldb;

        public Operands(GemmShape shape)
        {
            _shape = shape;
            _a = Allocate((long)shape.M * shape.K, 1);
            _b = Allocate((long)shape.K * shape.N, 2);
            _c = Allocate((long)shape.M * shape.N, 3);
            _lda = shape.TransA ? shape.M : shape.K;
            _ldb = shape.TransB ? shape.K : shape.N;
        }

        public void RunOurs() =>
            CpuBackend.Instance.Gemm(_shape.TransA, _shape.TransB, _shape.M, _shape.N, _shape.K, _a, _lda, 0, _b, _ldb, 0, _c, _shape.N, 0, 1, false, null);

        /// <summary>Milliseconds of the reference kernel for all M rows, measured on at most ~20M multiply-adds'
        /// worth of rows (the reference loops over rows outermost, so its time is linear in them).</summary>
        public (double Ms, int Rows) TimeNaive()
        {
            int rows = (int)Math.Clamp(20_000_000 / ((long)_shape.N * _shape.K), 1, _shape.M);
            double seconds = Time(() => ReferenceBackend.Instance.Gemm(_shape.TransA, _shape.TransB, rows, _shape.N, _shape.K,
                _a, _lda, 0, _b, _ldb, 0, _c, _shape.N, 0, 1, false, null));
            return (seconds * 1e3 * _shape.M / rows, rows);
        }

        private static float* Allocate(long count, int seed)
        {
            var p = (float*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(float)), 64);
            var random = new Random(seed);
            for (long i = 0; i < count; i++) p[i] = (float)(random.NextDouble() * 2 - 1);
            return p;
        }

        public void Dispose()
        {
            NativeMemory.AlignedFree(_a);
            NativeMemory.AlignedFree(_b);
            NativeMemory.AlignedFree(_c);
        }
    }
}
