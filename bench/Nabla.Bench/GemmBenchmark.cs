using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
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
    internal sealed record GemmShape(string Kernel, bool TransA, bool TransB, int M, int N, int K, int Batch = 1)
    {
        public string Dims => Batch == 1 ? $"{M}×{K}×{N}" : $"{Batch} × {M}×{K}×{N}";
        public string Op => $"{(TransA ? 'T' : 'N')}{(TransB ? 'T' : 'N')}";
        public double Flops => 2.0 * M * N * K * Batch;
    }

    internal sealed record Result(string Kernel, string Dims, string Op, string Impl, int Threads, double MedianMs,
        double Gflops, double PercentOfPeak, double OthersCpuPercent, double ProbePercent, int Samples);

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
        {
            shapes.Add(new GemmShape("small", false, false, 64, 768, 768));
            // GPT-2 attention at T = 256, 12 heads of 64: scores Q·Kᵀ and the weighted sum att·V; then many tiny products.
            shapes.Add(new GemmShape("attention Q·Kᵀ", false, true, 256, 256, 64, Batch: 12));
            shapes.Add(new GemmShape("attention att·V", false, false, 256, 64, 256, Batch: 12));
            shapes.Add(new GemmShape("batched small", false, false, 64, 64, 64, Batch: 48));
        }
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
                // The peak is re-measured around every shape (see MeasureQuietly) and the highest value kept: on a shared
                // machine a single measurement may catch another process running.
                peaks[threads] = FmaPeak.Measure(threads);
                var measured = new List<(Result Row, double Probe)>();
                foreach (var shape in Shapes(options.Shapes))
                {
                    var (rows, probe) = MeasureQuietly(shape, threads, peer, load, options, peaks);
                    measured.AddRange(rows.Select(r => (r, probe)));
                    if (!options.Json) Console.Error.Write('.');
                }
                results.AddRange(measured.Select(m => m.Row with
                {
                    PercentOfPeak = 100 * m.Row.Gflops / peaks[threads],
                    ProbePercent = 100 * m.Probe / peaks[threads],
                }));
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
            // Relaxed escaping keeps the × and · of the shape names readable.
            var json = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
            Console.WriteLine(JsonSerializer.Serialize(document, json));
            return;
        }
        Console.WriteLine($"Machine: {CpuModel()}, {Environment.ProcessorCount} cores; .NET {Environment.Version}; peer: {peer?.Description ?? "none"}");
        Console.WriteLine($"Measured FMA peak (best of the measurements taken between shapes): {string.Join(", ", peaks.Select(p => $"{p.Value:F1} GFLOP/s on {p.Key} thread(s)"))}");
        Console.WriteLine($"Load average before/after: {loadBefore} / {loadAfter}. 'others %' = share of all cores used by other processes while that row was timed;");
        Console.WriteLine("'probe %' = lowest FMA rate measured before the shape and after each round, as a share of the peak (the host");
        Console.WriteLine("sometimes takes a core away without the guest seeing it; rows are re-measured, up to --retries times, until probe ≥ 90%).");
        Console.WriteLine("naive = ReferenceBackend (one thread, double accumulators); for large shapes it runs on the first m' rows and is scaled by m/m' (marked ~).");
        Console.WriteLine();
        Console.WriteLine("| kernel | M×K×N | op | impl | threads | median ms | GFLOP/s | % of peak | others % | probe % |");
        Console.WriteLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
            Console.WriteLine($"| {r.Kernel} | {r.Dims} | {r.Op} | {r.Impl} | {r.Threads} | {r.MedianMs:F3} | {r.Gflops:F1} | {r.PercentOfPeak:F0}% | {r.OthersCpuPercent:F0} | {r.ProbePercent:F0} |");
    }

    /// <summary>
    /// Measures a shape once other processes are quiet and a short FMA probe shows the machine fully available,
    /// probing again after every round. When other processes took more than --max-others percent of the
    /// machine meanwhile, or a probe found less than 90% of the best FMA rate seen (the host taking a core away
    /// unseen), waits and measures again, up to --retries times, keeping the quietest attempt. Both sides (ours and
    /// PyTorch) always come from the same attempt. Returns the rows and the lowest probe.
    /// </summary>
    private static (Result[] Rows, double Probe) MeasureQuietly(GemmShape shape, int threads, TorchPeer? peer, MachineLoad load,
        BenchOptions options, Dictionary<int, double> peaks)
    {
        (Result[] Rows, double Probe, double Badness)? quietest = null;
        for (int attempt = 0; attempt <= options.Retries; attempt++)
        {
            WaitForQuiet(load, options.MaxOthersPercent, TimeSpan.FromSeconds(120));
            peaks[threads] = Math.Max(peaks[threads], FmaPeak.WaitForCapacity(threads, TimeSpan.FromSeconds(60)));
            var probes = new List<double> { FmaPeak.Measure(threads, 2_000_000, 3) };
            var rows = Measure(shape, threads, peer, load, options.Rounds, () => probes.Add(FmaPeak.Measure(threads, 2_000_000, 3))).ToArray();
            peaks[threads] = Math.Max(peaks[threads], probes.Max());
            double probe = probes.Min();
            double others = rows.Max(r => r.OthersCpuPercent);
            // Distance from acceptable, in percent of the machine: others' share above the limit, or the probe's shortfall.
            double badness = Math.Max(others - options.MaxOthersPercent, 90 - 100 * probe / peaks[threads]);
            if (quietest == null || badness < quietest.Value.Badness) quietest = (rows, probe, badness);
            if (badness <= 0) break;
            Thread.Sleep(TimeSpan.FromSeconds(5));
        }
        return (quietest!.Value.Rows, quietest.Value.Probe);
    }

    /// <summary>Waits (up to <paramref name="timeout"/>) for a second in which other processes use at most
    /// <paramref name="maxOthersPercent"/> of the machine.</summary>
    private static void WaitForQuiet(MachineLoad load, double maxOthersPercent, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        do
        {
            load.Start();
            Thread.Sleep(1000);
        }
        while (load.OthersPercent() > maxOthersPercent && clock.Elapsed < timeout);
    }

    private static IEnumerable<Result> Measure(GemmShape shape, int threads, TorchPeer? peer, MachineLoad load, int rounds, Action afterRound)
    {
        using var operands = new Operands(shape);
        operands.RunOurs();
        double estimate = Time(operands.RunOurs);
        int reps = (int)Math.Clamp(0.15 / estimate, 3, 40);
        var ours = new List<double>();
        var torch = new List<double>();
        var othersOurs = new LoadShare(load);
        var othersTorch = new LoadShare(load);
        for (int round = 0; round < rounds; round++)
        {
            // Alternate who goes first, so neither side always runs right after the other.
            for (int turn = 0; turn < 2; turn++)
            {
                bool oursTurn = (round + turn) % 2 == 0;
                if (!oursTurn && peer == null) continue;
                var share = oursTurn ? othersOurs : othersTorch;
                share.Begin();
                if (oursTurn)
                {
                    WarmUp(operands.RunOurs);
                    for (int i = 0; i < reps; i++) ours.Add(Time(operands.RunOurs) * 1e3);
                }
                else
                    torch.AddRange(peer!.Gemm(shape.TransA, shape.TransB, shape.M, shape.N, shape.K, shape.Batch, reps));
                share.End();
                // Let this side's spinning worker threads go to sleep before the other side is timed.
                Thread.Sleep(150);
            }
            afterRound();
        }
        yield return MakeResult(shape, "ours", threads, ours, othersOurs.Percent);
        if (peer != null) yield return MakeResult(shape, "pytorch", threads, torch, othersTorch.Percent);
        if (threads == 1)
        {
            var naiveShare = new LoadShare(load);
            naiveShare.Begin();
            var (ms, rows) = operands.TimeNaive();
            naiveShare.End();
            string impl = rows == shape.M && shape.Batch == 1 ? "naive" : $"naive ~ (m'={rows})";
            yield return MakeResult(shape, impl, 1, [ms], naiveShare.Percent);
        }
    }

    /// <summary>
    /// Runs the product for 20 ms untimed (the PyTorch peer does the same). After the pause between turns the worker
    /// threads are asleep, and a woken thread takes milliseconds to get a core of its own again on this virtual
    /// machine: without the warm-up, small products would be timed on one core.
    /// </summary>
    private static void WarmUp(Action action)
    {
        long start = Stopwatch.GetTimestamp();
        do action();
        while (Stopwatch.GetElapsedTime(start).TotalMilliseconds < 20);
    }

    /// <summary>Others' CPU share over the intervals one side was being timed, weighted by their length.</summary>
    private sealed class LoadShare(MachineLoad load)
    {
        private double _weighted, _seconds;
        private long _start;

        public double Percent => _seconds > 0 ? _weighted / _seconds : 0;

        public void Begin()
        {
            load.Start();
            _start = Stopwatch.GetTimestamp();
        }

        public void End()
        {
            double seconds = Stopwatch.GetElapsedTime(_start).TotalSeconds;
            _weighted += load.OthersPercent() * seconds;
            _seconds += seconds;
        }
    }

    /// <summary>A result row; its share of the peak is filled in once all peak measurements are in.</summary>
    private static Result MakeResult(GemmShape shape, string impl, int threads, List<double> times, double others)
    {
        double median = Median(times);
        double gflops = shape.Flops / (median * 1e-3) / 1e9;
        return new Result(shape.Kernel, shape.Dims, shape.Op, impl, threads, median, gflops, 0, others, 0, times.Count);
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
            _a = RandomMatrix.Allocate((long)shape.M * shape.K * shape.Batch, 1);
            _b = RandomMatrix.Allocate((long)shape.K * shape.N * shape.Batch, 2);
            _c = RandomMatrix.Allocate((long)shape.M * shape.N * shape.Batch, 3);
            _lda = shape.TransA ? shape.M : shape.K;
            _ldb = shape.TransB ? shape.K : shape.N;
        }

        public void RunOurs() =>
            CpuBackend.Instance.Gemm(_shape.TransA, _shape.TransB, _shape.M, _shape.N, _shape.K, _a, _lda, (long)_shape.M * _shape.K,
                _b, _ldb, (long)_shape.K * _shape.N, _c, _shape.N, (long)_shape.M * _shape.N, _shape.Batch, false, null);

        /// <summary>Milliseconds of the reference kernel for all M rows (of every matrix), measured on at most ~20M
        /// multiply-adds' worth of rows of the first matrix (the reference loops over rows outermost, so its time is
        /// linear in them).</summary>
        public (double Ms, int Rows) TimeNaive()
        {
            int rows = (int)Math.Clamp(20_000_000 / ((long)_shape.N * _shape.K), 1, _shape.M);
            double seconds = Time(() => ReferenceBackend.Instance.Gemm(_shape.TransA, _shape.TransB, rows, _shape.N, _shape.K,
                _a, _lda, 0, _b, _ldb, 0, _c, _shape.N, 0, 1, false, null));
            return (seconds * 1e3 * _shape.M * _shape.Batch / rows, rows);
        }

        public void Dispose()
        {
            NativeMemory.AlignedFree(_a);
            NativeMemory.AlignedFree(_b);
            NativeMemory.AlignedFree(_c);
        }
    }
}
