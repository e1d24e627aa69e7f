using System.Globalization;
using System.Runtime.Intrinsics;
using Nabla.Autograd;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Models.Gpt2;
using Nabla.NN;

namespace Nabla.Bench;

/// <summary>
/// Where GPT-2's fp32 decoding time goes, on one thread, timed by the thread's CPU time (the cost of the work itself,
/// which a busy machine disturbs far less than wall time):
/// <list type="bullet">
/// <item>the matrix-vector products of one token (1×K·(N×K)ᵀ, the weight stored (out, in) as Linear keeps it) for
/// each of GPT-2 124M's shapes, "hot" (one weight, used again and again: it stays in cache, so this is the kernel's
/// arithmetic rate) and "cold" (as many copies of the weight as make up <c>--cold-mb</c>, used in turn, more than
/// the last-level cache holds: the rate of streaming it from memory, as a whole decoded token does);</item>
/// <item>whole decoded tokens (a random GPT-2 124M, greedy, after a 1-token prompt): CPU time per token, split into
/// the kernels (<see cref="ProfilingBackend"/>, thread CPU clock) and the rest (the tensor machinery between them);
/// and the same for ONNX Runtime with one intra-op thread (which then runs every kernel on the calling thread), on the
/// same weights exported to ONNX in <c>--work</c> (kept there for the next run), as `bench generate` drives it.</item>
/// </list>
/// Rounds interleave everything; medians of the rounds. GFLOP/s count 2·K·N per product.
/// Usage: <c>decode [--rounds 5] [--tokens 16] [--cold-mb 640] [--layers 12] [--no-kernels] [--no-model] [--no-onnx]
/// [--work DIR]</c> (NABLA_ISA=avx2 for the AVX2 path).
/// </summary>
public static unsafe class DecodeBench
{
    private static readonly (string Name, int K, int N)[] Shapes =
        [("attn.c_attn", 768, 2304), ("attn.c_proj", 768, 768), ("mlp.c_fc", 768, 3072), ("mlp.c_proj", 3072, 768), ("lm_head", 768, 50257)];

    private static float _sink; // what ReadAll returns, kept so that its loads are not optimised away

    public static int Run(string[] args)
    {
        int rounds = BenchArgs.Int(args, "--rounds", 5), tokens = BenchArgs.Int(args, "--tokens", 16);
        long coldBytes = BenchArgs.Int(args, "--cold-mb", 640) * (1L << 20);
        WorkerPool.Threads = 1;
        Console.WriteLine($"GPT-2 124M decoding, 1 thread, by thread CPU time, on {MachineInfo.Line}; load {MachineLoad.LoadAverage}");
        if (!args.Contains("--no-kernels")) Kernels(rounds, coldBytes);
        if (!args.Contains("--no-model"))
        {
            string? work = args.Contains("--no-onnx") ? null : BenchArgs.Value(args, "--work") ?? Path.Combine(Path.GetTempPath(), "nabla-bench-decode");
            if (work != null) Directory.CreateDirectory(work);
            Tokens(rounds, tokens, BenchArgs.Int(args, "--layers", 12), work);
        }
        Console.WriteLine($"load after: {MachineLoad.LoadAverage}");
        return 0;
    }

    private static void Kernels(int rounds, long coldBytes)
    {
        var hot = new List<double>[Shapes.Length];
        var cold = new List<double>[Shapes.Length];
        var x = RandomMatrix.Allocate(3072, 1);
        var y = RandomMatrix.Allocate(50257, 2);
        var copies = new float*[Shapes.Length][];
        for (int s = 0; s < Shapes.Length; s++)
        {
            var (_, k, n) = Shapes[s];
            long bytes = 4L * k * n;
            copies[s] = new float*[Math.Max(2, (int)((coldBytes + bytes - 1) / bytes))];
            for (int c = 0; c < copies[s].Length; c++) copies[s][c] = RandomMatrix.Allocate((long)k * n, 10 + c);
            hot[s] = [];
            cold[s] = [];
        }
        var stream = new List<double>();
        for (int round = 0; round <= rounds; round++) // round 0 warms up (JIT tiers)
        {
            var heads = copies[^1];
            double streamSeconds = CpuClock.ThreadSeconds(() => { foreach (var w in heads) _sink += ReadAll(w, 768L * 50257); });
            if (round > 0) stream.Add(streamSeconds / heads.Length);
            for (int s = 0; s < Shapes.Length; s++)
            {
                var (_, k, n) = Shapes[s];
                var w = copies[s];
                void Product(float* weight) => CpuBackend.Instance.Gemm(false, true, 1, n, k, x, k, 0, weight, k, 0, y, n, 0, 1, false, null);
                // hot: the same weight, enough times to take ~10 ms; cold: every copy once, after the others evicted it
                int repeats = Math.Max(4, (int)(4e6 / ((double)k * n)));
                Product(w[0]);
                double hotSeconds = CpuClock.ThreadSeconds(() => { for (int r = 0; r < repeats; r++) Product(w[0]); }) / repeats;
                double coldSeconds = CpuClock.ThreadSeconds(() => { for (int c = 1; c < w.Length; c++) Product(w[c]); }) / (w.Length - 1);
                if (round > 0) { hot[s].Add(hotSeconds); cold[s].Add(coldSeconds); }
            }
        }
        double peak = FmaPeak.MeasureByCpuTime(), streamed = 4.0 * 768 * 50257 / Statistics.Median(stream) / 1e9;
        Console.WriteLine();
        Console.WriteLine($"Matrix-vector products, 1 thread, medians of {rounds} rounds (FMA peak {peak:F1} GFLOP/s per CPU-second, {FmaPeak.Method}; " +
                          $"cold: {coldBytes >> 20} MB of copies in turn; reading the head's copies alone, 8 vector sums: {streamed:F1} GB/s)");
        Console.WriteLine("| product | weight MB | hot µs | hot GB/s | hot GFLOP/s | % of FMA peak | cold µs | cold GB/s |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        double hotTotal = 0, coldTotal = 0, bytesTotal = 0;
        for (int s = 0; s < Shapes.Length; s++)
        {
            var (name, k, n) = Shapes[s];
            double bytes = 4.0 * k * n, flops = 2.0 * k * n, h = Statistics.Median(hot[s]), c = Statistics.Median(cold[s]);
            int perToken = name == "lm_head" ? 1 : 12;
            hotTotal += perToken * h; coldTotal += perToken * c; bytesTotal += perToken * bytes;
            Console.WriteLine(F($"| {name} 1×{k}·({n}×{k})ᵀ | {bytes / 1e6:F1} | {h * 1e6:F1} | {bytes / h / 1e9:F1} | {flops / h / 1e9:F1} | {100 * flops / h / 1e9 / peak:F0}% | {c * 1e6:F1} | {bytes / c / 1e9:F1} |"));
        }
        Console.WriteLine(F($"| one token's products (12 layers + head) | {bytesTotal / 1e6:F1} | {hotTotal * 1e6:F0} | {bytesTotal / hotTotal / 1e9:F1} | {bytesTotal / 2 / hotTotal / 1e9:F1} | {100 * bytesTotal / 2 / hotTotal / 1e9 / peak:F0}% | {coldTotal * 1e6:F0} | {bytesTotal / coldTotal / 1e9:F1} |"));
    }

    private static void Tokens(int rounds, int tokens, int layers, string? onnxWork)
    {
        var model = new Gpt2Model(Gpt2Config.Gpt2Small with { Layers = layers }, new Generator(0));
        using var onnx = onnxWork == null ? null : OnnxRuntimePeer.TryStart(model, onnxWork, threads: 1);
        var profiler = new ProfilingBackend(Backend.Current, CpuClock.ThreadTicks);
        var nabla = new List<double>();
        var ort = new List<double>();
        int counted = 0;
        for (int round = 0; round <= rounds; round++) // round 0 warms up (JIT tiers, buffers, ONNX Runtime's allocations)
        {
            if (round == 1) profiler.Reset();
            var cache = model.NewCache(1, tokens + 1);
            var logits = new float[model.Config.VocabSize];
            int token = 0;
            Sampler.NextLogits(model, [token], cache, logits); // the prompt: not counted
            double seconds;
            using (Backend.Use(profiler.Timed))
                seconds = CpuClock.ThreadSeconds(() =>
                {
                    for (int t = 0; t < tokens; t++)
                    {
                        token = Sampler.ArgMax(logits);
                        Sampler.NextLogits(model, [token], cache, logits);
                    }
                });
            if (round > 0) { nabla.Add(seconds / tokens); counted += tokens; }
            if (onnx != null && onnx.Decode(0, tokens, CpuClock.ThreadTicks).TokensPerSecond is var perSecond && round > 0) ort.Add(1 / perSecond);
        }
        double median = Statistics.Median(nabla), weightBytes = 4.0 * model.ParameterCount, kernels = profiler.TotalSeconds / counted;
        Console.WriteLine();
        Console.WriteLine(F($"Decoded tokens, 1 thread, ms of CPU time per token, medians of {rounds} rounds of {tokens} tokens (the rounds interleaved):"));
        Console.WriteLine(F($"  Nabla {median * 1e3:F2} ({weightBytes / median / 1e9:F1} GB/s of weights; every round: {Join(nabla)})"));
        if (ort.Count > 0)
            Console.WriteLine(F($"  ONNX Runtime 1.31.1 {Statistics.Median(ort) * 1e3:F2} ({weightBytes / Statistics.Median(ort) / 1e9:F1} GB/s; every round: {Join(ort)}); Nabla takes {median / Statistics.Median(ort):F3}× its time"));
        Console.WriteLine(F($"Nabla in the kernels {kernels * 1e3:F2} ms per token (all rounds), outside them {(median - kernels) * 1e3:F2} ms (the profiler's own clock reads included); the kernels:"));
        Console.Write(profiler.Report());
    }

    private static string Join(List<double> seconds) => string.Join(", ", seconds.Select(s => (s * 1e3).ToString("F2", CultureInfo.InvariantCulture)));

    /// <summary>Reads <paramref name="count"/> floats once (8 independent vector sums): the rate at which one thread can
    /// stream memory with nothing else to do.</summary>
    private static float ReadAll(float* p, long count)
    {
        Vector512<float> s0 = default, s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        long i = 0;
        for (; i + 128 <= count; i += 128)
        {
            s0 += Vector512.Load(p + i); s1 += Vector512.Load(p + i + 16); s2 += Vector512.Load(p + i + 32); s3 += Vector512.Load(p + i + 48);
            s4 += Vector512.Load(p + i + 64); s5 += Vector512.Load(p + i + 80); s6 += Vector512.Load(p + i + 96); s7 += Vector512.Load(p + i + 112);
        }
        float sum = Vector512.Sum(s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7);
        for (; i < count; i++) sum += p[i];
        return sum;
    }

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
