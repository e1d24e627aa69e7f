using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Cpu.Gemm;
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

    /// <summary>One shape on one thread count: ours and PyTorch's medians side by side (from the same interleaved
    /// rounds), the naive reference for scale (1 thread), and how noisy the machine was meanwhile.</summary>
    internal sealed record Row(string Kernel, string Dims, string Op, int Threads,
        double OursMs, double OursGflops, double OursPercentOfPeak,
        double? TorchMs, double? TorchGflops, double? TorchPercentOfPeak, double? OursSpeedup,
        double? NaiveGflops, string? NaiveNote, double OthersCpuPercent, double ProbePercent, bool Noisy, int Samples,
        double? PreviousMs = null, double? OursVsPrevious = null);

    /// <summary>`--previous`: the AVX2 kernel with the blocking it had before docs/optimization-log.md step 9 (k blocks
    /// streamed from L2, as the AVX-512 kernel's), timed as a third contender in the same rounds.</summary>
    private static readonly GemmBlocking PreviousAvx2Blocking = GemmBlocking.StreamedFromL2(Avx2MicroKernel.MR, Avx2MicroKernel.NR);

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
        var gate = new QuietGate(load, options.MaxOthersPercent, TimeSpan.FromSeconds(options.WaitBudgetSeconds));
        var rows = new List<Row>();
        string loadBefore = MachineLoad.LoadAverage;
        var shapes = Shapes(options.Shapes);
        int savedThreads = WorkerPool.Threads;
        var clock = Stopwatch.StartNew();
        Console.Error.WriteLine($"bench gemm: {shapes.Count} shapes × threads {string.Join(",", options.Threads)}, {options.Rounds} interleaved rounds; {MachineInfo.Line}");
        try
        {
            foreach (int threads in options.Threads)
            {
                WorkerPool.Threads = threads;
                peer?.SetThreads(threads);
                Console.Error.WriteLine($"  FMA peak on {threads} thread(s): {FmaPeak.Measure(threads):F1} GFLOP/s ({FmaPeak.Method})");
                for (int s = 0; s < shapes.Count; s++)
                {
                    var row = MeasureQuietly(shapes[s], threads, peer, load, gate, options);
                    rows.Add(row);
                    Console.Error.WriteLine($"  [{s + 1}/{shapes.Count}, {threads} thr, {clock.Elapsed.TotalSeconds:F0} s] {row.Kernel} {row.Dims}: " +
                        $"ours {row.OursGflops:F1} GFLOP/s" + (row.TorchGflops is { } t ? $", PyTorch {t:F1} ({row.OursSpeedup:F2}×)" : "") +
                        (row.Noisy ? " [noisy]" : ""));
                }
            }
        }
        finally
        {
            WorkerPool.Threads = savedThreads;
        }
        // Every share of the peak against the best FMA rate seen in the whole run.
        rows = [.. rows.Select(r => r with
        {
            OursPercentOfPeak = 100 * r.OursGflops / FmaPeak.Peak(r.Threads),
            TorchPercentOfPeak = r.TorchGflops is { } t ? 100 * t / FmaPeak.Peak(r.Threads) : null,
            ProbePercent = 100 * r.ProbePercent / FmaPeak.Peak(r.Threads),
        })];
        string loadAfter = MachineLoad.LoadAverage;

        if (options.Json)
        {
            var document = new
            {
                machine = MachineInfo.Cpu, path = MachineInfo.Path, peer = peer?.Description ?? "none",
                loadAverageBefore = loadBefore, loadAverageAfter = loadAfter, fmaPeakMethod = FmaPeak.Method,
                fmaPeakGflops = options.Threads.ToDictionary(t => t.ToString(), t => Math.Round(FmaPeak.Peak(t), 1)),
                quietWaitSeconds = Math.Round(gate.Waited.TotalSeconds), rows,
            };
            // Relaxed escaping keeps the × and · of the shape names readable.
            var json = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
            Console.WriteLine(JsonSerializer.Serialize(document, json));
            return;
        }
        Console.WriteLine($"GEMM on {MachineInfo.Line}; peer: {peer?.Description ?? "none"}");
        Console.WriteLine($"FMA peak ({FmaPeak.Method}, best seen in this run): " +
            string.Join(", ", options.Threads.Select(t => $"{FmaPeak.Peak(t):F1} GFLOP/s on {t} thread(s)")));
        if (options.CpuTime && options.Threads.Contains(1))
            Console.WriteLine("1-thread rows: both sides timed by thread CPU time (--cpu-time), the cost of the work whatever share of a core the machine left.");
        Console.WriteLine($"Medians of {options.Rounds} rounds, ours and PyTorch alternating; load average before/after {loadBefore} / {loadAfter}; " +
            $"{gate.Waited.TotalSeconds:F0} s spent waiting for a quiet machine; {clock.Elapsed.TotalSeconds:F0} s in all.");
        Console.WriteLine("'vs PyTorch' = PyTorch's time / ours (> 1: ours faster). 'noisy' = other processes used more than " +
            $"{options.MaxOthersPercent:F0}% of the machine, or an FMA probe between rounds found < {100 * QuietGate.ProbeThreshold:F0}% of the peak, while the row was timed.");
        Console.WriteLine("naive = ReferenceBackend (one thread, double accumulators); for large shapes it runs on the first m' rows and is scaled by m/m' (marked ~).");
        bool withPrevious = rows.Any(r => r.PreviousMs != null);
        if (withPrevious)
            Console.WriteLine("'previous' = the AVX2 kernel with its blocking before optimization-log step 9 (k blocks streamed from L2), timed in the same rounds; 'vs previous' = its time / ours.");
        Console.WriteLine();
        Console.WriteLine("| kernel | M×K×N | op | threads | Nabla ms | Nabla GFLOP/s | Nabla % of peak | PyTorch ms | PyTorch GFLOP/s | PyTorch % of peak | vs PyTorch | " +
            (withPrevious ? "previous ms | vs previous | " : "") + "naive GFLOP/s | noisy |");
        Console.WriteLine("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + (withPrevious ? "---:|---:|" : "") + "---:|---|");
        foreach (var r in rows)
            Console.WriteLine($"| {r.Kernel} | {r.Dims} | {r.Op} | {r.Threads} | {r.OursMs:F3} | {r.OursGflops:F1} | {r.OursPercentOfPeak:F0}% | " +
                $"{Cell(r.TorchMs, "F3")} | {Cell(r.TorchGflops, "F1")} | {Cell(r.TorchPercentOfPeak, "F0", "%")} | {Cell(r.OursSpeedup, "F2", "×")} | " +
                (withPrevious ? $"{Cell(r.PreviousMs, "F3")} | {Cell(r.OursVsPrevious, "F2", "×")} | " : "") +
                $"{Cell(r.NaiveGflops, "F1")}{r.NaiveNote} | {(r.Noisy ? $"noisy (others {r.OthersCpuPercent:F0}%, probe {r.ProbePercent:F0}%)" : "")} |");
        foreach (int threads in options.Threads)
        {
            var ratios = rows.Where(r => r.Threads == threads && r.OursSpeedup != null).Select(r => r.OursSpeedup!.Value).ToArray();
            if (ratios.Length > 0)
                Console.WriteLine($"\n{threads} thread(s): ours vs PyTorch geometric mean {Math.Exp(ratios.Average(Math.Log)):F2}×, " +
                    $"lowest {ratios.Min():F2}×, {ratios.Count(x => x >= 1)} of {ratios.Length} shapes ≥ 1×.");
            var gains = rows.Where(r => r.Threads == threads && r.OursVsPrevious != null).Select(r => r.OursVsPrevious!.Value).ToArray();
            if (gains.Length > 0)
                Console.WriteLine($"{threads} thread(s): ours vs the previous AVX2 blocking geometric mean {Math.Exp(gains.Average(Math.Log)):F2}×, lowest {gains.Min():F2}×.");
        }
    }

    private static string Cell(double? value, string format, string suffix = "") =>
        value is { } v ? v.ToString(format, System.Globalization.CultureInfo.InvariantCulture) + suffix : "-";

    /// <summary>
    /// Measures a shape after waiting (within the command's budget) for a quiet machine, probing the FMA rate again
    /// after every round. A noisy attempt is measured again while the budget lasts, up to --retries times, keeping
    /// the quietest; both sides (ours and PyTorch) always come from the same attempt.
    /// </summary>
    private static Row MeasureQuietly(GemmShape shape, int threads, TorchPeer? peer, MachineLoad load, QuietGate gate, BenchOptions options)
    {
        (Row Row, double Badness)? quietest = null;
        for (int attempt = 0; attempt <= options.Retries; attempt++)
        {
            bool waitedForQuiet = gate.Wait(threads, $"{shape.Kernel} {shape.Dims} on {threads} thread(s)");
            var probes = new List<double> { FmaPeak.Probe(threads) };
            bool cpuTime = options.CpuTime && threads == 1;
            var row = Measure(shape, threads, peer, load, options.Rounds, options.Previous, cpuTime, () => probes.Add(FmaPeak.Probe(threads)));
            double probeShare = probes.Min() / FmaPeak.Peak(threads);
            // Distance from acceptable, in percent of the machine: others' share above the limit, or the probe's shortfall.
            double badness = Math.Max(row.OthersCpuPercent - options.MaxOthersPercent, 100 * (QuietGate.ProbeThreshold - probeShare));
            row = row with { ProbePercent = probes.Min(), Noisy = badness > 0 };
            if (quietest == null || badness < quietest.Value.Badness) quietest = (row, badness);
            if (badness <= 0 || !waitedForQuiet) break;
        }
        return quietest!.Value.Row;
    }

    private static Row Measure(GemmShape shape, int threads, TorchPeer? peer, MachineLoad load, int rounds, bool previous, bool cpuTime, Action afterRound)
    {
        using var operands = new Operands(shape);
        operands.RunOurs();
        double estimate = Time(operands.RunOurs);
        int reps = (int)Math.Clamp(0.15 / estimate, 3, 40);
        var ours = new List<double>();
        var torch = new List<double>();
        var before = new List<double>();
        var others = new LoadShare(load);
        // Contenders: 0 ours, 1 PyTorch, 2 ours with the previous AVX2 blocking.
        int[] contenders = [0, .. peer != null ? new[] { 1 } : [], .. previous && CpuFeatures.Effective == Isa.Avx2 ? new[] { 2 } : []];
        for (int round = 0; round < rounds; round++)
        {
            // Rotate who goes first, so no side always runs right after another.
            for (int turn = 0; turn < contenders.Length; turn++)
            {
                int contender = contenders[(round + turn) % contenders.Length];
                others.Begin();
                if (contender == 1)
                    torch.AddRange(peer!.Gemm(shape.TransA, shape.TransB, shape.M, shape.N, shape.K, shape.Batch, reps, cpuTime));
                else
                {
                    var library = GemmDriver<Avx2MicroKernel>.Blocking;
                    if (contender == 2) GemmDriver<Avx2MicroKernel>.Blocking = PreviousAvx2Blocking;
                    try
                    {
                        WarmUp(operands.RunOurs);
                        for (int i = 0; i < reps; i++) (contender == 0 ? ours : before).Add((cpuTime ? CpuClock.ThreadSeconds(operands.RunOurs) : Time(operands.RunOurs)) * 1e3);
                    }
                    finally { GemmDriver<Avx2MicroKernel>.Blocking = library; }
                }
                others.End();
                // Let this side's spinning worker threads go to sleep before the next one is timed.
                Thread.Sleep(150);
            }
            afterRound();
        }
        double oursMs = Statistics.Median(ours);
        double? torchMs = torch.Count > 0 ? Statistics.Median(torch) : null;
        double? naiveGflops = null;
        string? naiveNote = null;
        if (threads == 1)
        {
            var (ms, rows) = operands.TimeNaive();
            naiveGflops = shape.Flops / (ms * 1e-3) / 1e9;
            naiveNote = rows == shape.M && shape.Batch == 1 ? "" : $" ~ (m'={rows})";
        }
        return new Row(shape.Kernel, shape.Dims, shape.Op, threads, oursMs, shape.Flops / (oursMs * 1e-3) / 1e9, 0,
            torchMs, torchMs is { } t ? shape.Flops / (t * 1e-3) / 1e9 : null, null, torchMs / oursMs,
            naiveGflops, naiveNote, others.Percent, 0, false, ours.Count,
            before.Count > 0 ? Statistics.Median(before) : null, before.Count > 0 ? Statistics.Median(before) / oursMs : null);
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

    private static double Time(Action action)
    {
        long start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

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
