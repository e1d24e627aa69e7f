using System.Diagnostics;
using System.Globalization;
using Nabla.Data;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Models.Gpt2;
using Nabla.Optim;

namespace Nabla.Bench;

/// <summary>
/// GPT-2 124M end to end, side by side with PyTorch (bench/gpt2_peer.py) in the same run: one training step
/// (forward, backward, AdamW) at B = 4, T = 64, and greedy generation with a KV cache. Interleaved rounds,
/// medians; peak memory and managed allocations per step for ours, and a step's peak tensor memory with and
/// without a forced GC before it.
///   dotnet run -c Release --project bench/Nabla.Bench -- gpt2 [--rounds 5] [--threads 2] [--no-torch] [--layers 12] [--profile]
///     [--cpu-time]
/// `--cpu-time` (with `--threads 1`) times each step, ours and PyTorch's, and `--profile`'s kernels by the calling thread's CPU time: the cost of
/// the work itself, whatever share of the core a busy machine leaves it.
/// </summary>
public static class Gpt2Bench
{
    public static int Run(string[] args)
    {
        int rounds = BenchArgs.Int(args, "--rounds", 5), threads = BenchArgs.Int(args, "--threads", Environment.ProcessorCount);
        int layers = BenchArgs.Int(args, "--layers", 12), batch = BenchArgs.Int(args, "--batch", 4), time = BenchArgs.Int(args, "--time", 64);
        int newTokens = BenchArgs.Int(args, "--new-tokens", 64), prompt = BenchArgs.Int(args, "--prompt", 16);
        bool torch = !args.Contains("--no-torch");
        bool cpuTime = args.Contains("--cpu-time");
        if (cpuTime && threads != 1)
            throw new ArgumentException("gpt2 --cpu-time: CPU time measures one thread's work; add --threads 1.");
        WorkerPool.Threads = threads;
        var config = Gpt2Config.Gpt2Small with { Layers = layers };
        Console.WriteLine($"GPT-2 {config.Layers} layers, {config.Channels} channels, vocabulary {config.VocabSize}; {threads} threads; load: {MachineLoad.LoadAverage}");
        Console.WriteLine($"on {MachineInfo.Line}");
        FmaPeak.Measure(threads);

        using var peer = torch ? Peer.TryStart(threads, config) : null;
        var model = new Gpt2Model(config, new Generator(0));
        var (decay, noDecay) = model.WeightDecayGroups();
        var optimizer = new AdamW([new ParamGroup(decay, weightDecay: 0.1f), new ParamGroup(noDecay, weightDecay: 0f)], 1e-4f);
        var data = new TokenBatchLoader(Enumerable.Range(0, batch * (time + 1) * 4).Select(i => (int)((i * 2654435761L) % config.VocabSize)).ToArray(), batch, time);
        double Step(long i)
        {
            using var memory = MemoryScope.Begin(); // the step's activations go back to the pool at its end
            var clock = Stopwatch.StartNew();
            double cpuSeconds = CpuClock.ThreadSeconds(() =>
            {
                var (x, y) = data.Batch(i % 4);
                var loss = Gpt2Model.Loss(model.Forward(x), y);
                optimizer.ZeroGrad();
                loss.Backward();
                optimizer.Step();
            });
            return cpuTime ? cpuSeconds * 1e3 : clock.Elapsed.TotalMilliseconds;
        }
        Step(0); Step(1); // warm-up: JIT, buffer pool, optimizer state
        BufferPool.ResetPeak();
        var ours = new List<double>();
        var theirs = new List<double>();
        long allocated = 0;
        for (int r = 0; r < rounds; r++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            ours.Add(Step(2 + r));
            allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
            if (peer != null) theirs.AddRange(peer.Ask($"train {batch} {time} 1{(cpuTime ? " cpu" : "")}"));
            // A short FMA probe per round: on a busy machine the best rate seen over the run is the truest peak.
            FmaPeak.Probe(threads);
        }
        if (args.Contains("--profile"))
        {
            var profiler = new Nabla.Kernels.ProfilingBackend(Nabla.Kernels.Backend.Current, cpuTime ? CpuClock.ThreadTicks : null);
            double total;
            using (Nabla.Kernels.Backend.Use(profiler.Timed)) total = Step(100);
            Console.WriteLine($"\nwhere one training step goes ({total:F0} ms{(cpuTime ? " of thread CPU time, kernels too" : "")} in all; the rest of the time is outside the kernels):\n{profiler.Report()}");
        }
        double flops = TrainingFlops(config, model.ParameterCount, batch, time);
        FmaPeak.Measure(threads);
        double peak = FmaPeak.Peak(threads);
        string path = MachineInfo.Name(CpuFeatures.Usable);
        Console.WriteLine();
        Console.WriteLine($"GPT-2 {config.Layers}-layer training step on {MachineInfo.Line}; FMA peak {peak:F1} GFLOP/s on {threads} thread(s) ({FmaPeak.Method}, best of the run)");
        if (cpuTime) Console.WriteLine("Step times are the thread's CPU time (--cpu-time), both sides.");
        Console.WriteLine();
        Console.WriteLine($"| training step (B={batch}, T={time}) | CPU | path | threads | median ms | GFLOP/s | % of FMA peak | vs PyTorch |");
        Console.WriteLine("|---|---|---|---:|---:|---:|---:|---|");
        Console.WriteLine($"| Nabla | {MachineInfo.Cpu} | {path} | {threads} | {Statistics.Median(ours):F0} | {flops / Statistics.Median(ours) / 1e6:F1} | {100 * flops / Statistics.Median(ours) / 1e6 / peak:F0}% | " +
            $"{(theirs.Count > 0 ? $"{Statistics.Median(theirs) / Statistics.Median(ours):F2}× faster" : "-")} |");
        if (theirs.Count > 0)
            Console.WriteLine($"| PyTorch ({peer!.Description}) | {MachineInfo.Cpu} | OpenBLAS{TorchPeer.CoreType} | {threads} | {Statistics.Median(theirs):F0} | " +
                $"{flops / Statistics.Median(theirs) / 1e6:F1} | {100 * flops / Statistics.Median(theirs) / 1e6 / peak:F0}% | 1.00× |");
        Console.WriteLine($"(FLOPs per step ≈ {flops / 1e9:F0} G: 6·N·tokens + attention; all runs: ours [{Join(ours)}] ms, PyTorch [{Join(theirs)}] ms)");
        Console.WriteLine($"peak tensor memory {BufferPool.PeakLiveBytes / 1e6:F0} MB, process peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1e6:F0} MB, managed allocations per step {allocated / 1024.0:F0} KiB");

        // A step's peak tensor memory with the collector left alone and with a full collection before each step: equal
        // when every step returns its memory to the pool itself; when memory waits for finalizers, they differ and
        // change from run to run.
        long peakWithoutGc = PeakStepMemory(Step, 10, rounds, forceGc: false), peakWithGc = PeakStepMemory(Step, 20, rounds, forceGc: true);
        Console.WriteLine($"peak tensor memory of a step: {peakWithoutGc / 1e6:F0} MB without a forced GC, {peakWithGc / 1e6:F0} MB with a forced GC before each step");

        var rates = new List<double>();
        var torchRates = new List<double>();
        var ids = Enumerable.Range(0, prompt).Select(i => i * 31 % config.VocabSize).ToArray();
        Generate(model, ids, 4); // warm-up
        for (int r = 0; r < rounds; r++)
        {
            rates.Add(Generate(model, ids, newTokens));
            if (peer != null) torchRates.AddRange(peer.Ask($"generate {prompt} {newTokens} 1"));
        }
        double bytesPerToken = model.ParameterCount * 4.0;
        Console.WriteLine();
        Console.WriteLine($"| generation (greedy, KV cache, {prompt}-token prompt, {newTokens} new) | median tokens/s | weight GB/s |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| Nabla | {Statistics.Median(rates):F1} | {Statistics.Median(rates) * bytesPerToken / 1e9:F1} |");
        if (torchRates.Count > 0) Console.WriteLine($"| PyTorch | {Statistics.Median(torchRates):F1} | {Statistics.Median(torchRates) * bytesPerToken / 1e9:F1} |");
        Console.WriteLine($"(all runs: ours [{Join(rates)}], PyTorch [{Join(torchRates)}] tokens/s; load after: {MachineLoad.LoadAverage})");
        return 0;
    }

    /// <summary>Largest <see cref="BufferPool.PeakLiveBytes"/> over <paramref name="steps"/> training steps.</summary>
    private static long PeakStepMemory(Func<long, double> step, long first, int steps, bool forceGc)
    {
        long worst = 0;
        for (int i = 0; i < steps; i++)
        {
            if (forceGc)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                GC.Collect();
            }
            BufferPool.ResetPeak();
            step(first + i);
            worst = Math.Max(worst, BufferPool.PeakLiveBytes);
        }
        return worst;
    }

    /// <summary>Tokens per second of the decoding loop after the prompt is in the cache.</summary>
    private static double Generate(Gpt2Model model, int[] prompt, int newTokens)
    {
        var cache = model.NewCache(1, prompt.Length + newTokens + 1);
        var logits = Sampler.NextLogits(model, prompt, cache);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < newTokens; i++) logits = Sampler.NextLogits(model, [Sampler.ArgMax(logits)], cache);
        return newTokens / clock.Elapsed.TotalSeconds;
    }

    /// <summary>6·N per token for the weights (forward 2, backward 4) plus the attention matmuls.</summary>
    private static double TrainingFlops(Gpt2Config c, long parameters, int b, int t) =>
        6.0 * parameters * b * t + 6.0 * c.Layers * b * t * t * c.Channels;

    private static string Join(List<double> xs) => string.Join(", ", xs.Select(x => x.ToString("F0", CultureInfo.InvariantCulture)));

    /// <summary>bench/gpt2_peer.py as a child process, one request per line.</summary>
    private sealed class Peer(PythonPeer peer) : IDisposable
    {
        public string Description { get; } = peer.Started is [var threads, var version, ..] ? $"torch {version}, {threads} threads" : "torch";

        public static Peer? TryStart(int threads, Gpt2Config c)
        {
            if (PythonPeer.TryStart("gpt2_peer.py", threads) is not { } started) return null;
            started.Ask($"model {c.Layers} {c.Heads} {c.Channels} {c.VocabSize} {c.MaxSequenceLength}");
            return new Peer(started);
        }

        public double[] Ask(string request) => peer.AskNumbers(request);

        public void Dispose() => peer.Dispose();
    }
}
