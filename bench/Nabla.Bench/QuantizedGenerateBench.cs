using System.Diagnostics;
using System.Globalization;
using Nabla.Kernels.Cpu;
using Nabla.Models.Gpt2;
using Nabla.Quantization;

namespace Nabla.Bench;

/// <summary>
/// GPT-2 generation with float32 and quantised weights (q8_0, q4_0, nf4), same model, same run: greedy decoding
/// tokens/s with a KV cache, as a share of the memory-bandwidth bound (a decoding step must stream every weight
/// once: bound = measured triad bandwidth / bytes of weights), and the prefill of a long prompt (tokens/s, and
/// GFLOP/s counting 2 FLOPs per weight per token). Random weights: speed does not depend on their values.
///   nabla bench generate [--rounds 3] [--threads N] [--layers 12] [--prompt 16] [--new-tokens 32] [--prefill 512]
///                        [--formats fp32,q8_0,q4_0,nf4] [--bandwidth GB/s (default: measured)]
/// </summary>
public static class QuantizedGenerateBench
{
    public static int Run(string[] args)
    {
        int rounds = IntArg(args, "--rounds", 3), threads = IntArg(args, "--threads", Environment.ProcessorCount);
        int layers = IntArg(args, "--layers", 12), promptLength = IntArg(args, "--prompt", 16), newTokens = IntArg(args, "--new-tokens", 32);
        int prefillLength = IntArg(args, "--prefill", 512);
        var formats = (StringArg(args, "--formats") ?? "fp32,q8_0,q4_0,nf4").Split(',', StringSplitOptions.RemoveEmptyEntries);
        WorkerPool.Threads = threads;
        var config = Gpt2Config.Gpt2Small with { Layers = layers };
        prefillLength = Math.Min(prefillLength, config.MaxSequenceLength);
        double bandwidth = StringArg(args, "--bandwidth") is { } given ? double.Parse(given, CultureInfo.InvariantCulture) * 1e9 : TriadBandwidth(threads);
        Console.WriteLine($"GPT-2 {config.Layers} layers, {config.Channels} channels, vocabulary {config.VocabSize}; {threads} threads; {MachineInfo.Line}");
        Console.WriteLine($"memory bandwidth {bandwidth / 1e9:F1} GB/s ({(StringArg(args, "--bandwidth") != null ? "given" : "triad, measured now")}); load: {Load()}");
        Console.WriteLine();
        Console.WriteLine($"| weights | MB streamed per token | decode tokens/s (median) | % of bandwidth bound | prefill {prefillLength} tokens/s | prefill GFLOP/s |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        var prompt = Enumerable.Range(0, promptLength).Select(i => i * 31 % config.VocabSize).ToArray();
        var longPrompt = Enumerable.Range(0, prefillLength).Select(i => i * 7919 % config.VocabSize).ToArray();
        foreach (var name in formats)
        {
            var model = new Gpt2Model(config, new Generator(0));
            if (name != "fp32")
            {
                if (!QuantizationFormats.TryParse(name, out var format)) throw new ArgumentException($"--formats: unknown format '{name}' (fp32, q8_0, q4_0, nf4).");
                Gpt2Quantization.Quantize(model, format);
            }
            model.Eval();
            double bytes = StreamedBytesPerToken(model);
            Decode(model, prompt, 4); // warm-up: JIT, pool
            var decode = Enumerable.Range(0, rounds).Select(_ => Decode(model, prompt, newTokens)).ToList();
            Prefill(model, longPrompt[..Math.Min(64, prefillLength)]);
            var prefill = Enumerable.Range(0, rounds).Select(_ => Prefill(model, longPrompt)).ToList();
            double rate = Median(decode), prefillRate = Median(prefill);
            Console.WriteLine($"| {name} | {bytes / 1e6:F0} | {rate:F1} | {100 * rate * bytes / bandwidth:F0}% | {prefillRate:F0} | " +
                $"{prefillRate * 2.0 * model.ParameterCountForFlops() / 1e9:F1} |");
            Console.Error.WriteLine($"  {name}: decode [{Join(decode)}] tokens/s, prefill [{Join(prefill)}] tokens/s");
        }
        Console.WriteLine($"(load after: {Load()})");
        return 0;
    }

    /// <summary>Bytes a decoding step reads: every weight matrix whole (the quantised ones packed), the float
    /// parameters of the blocks and final norm; of the embeddings, only the rows looked up, except that the tied
    /// table is also the head, read whole.</summary>
    private static double StreamedBytesPerToken(Gpt2Model model)
    {
        double bytes = 0;
        foreach (var module in model.Modules())
            if (module is QuantizedLinear q) bytes += q.Weight.ByteCount;
            else if (module is QuantizedEmbedding e) bytes += e.Weight.ByteCount;
        foreach (var (name, p) in model.NamedParameters())
            if (name != "wpe.weight") bytes += p.Count * 4.0; // wte (the head) included when it is float
        foreach (var (_, b) in model.NamedBuffers()) bytes += b.Count * 4.0;
        return bytes;
    }

    /// <summary>2·(weights) FLOPs per token: every weight multiplies once per position (attention left out).</summary>
    private static long ParameterCountForFlops(this Gpt2Model model) =>
        (long)model.Config.Layers * 12 * model.Config.Channels * model.Config.Channels + (long)model.Config.VocabSize * model.Config.Channels;

    private static double Decode(Gpt2Model model, int[] prompt, int newTokens)
    {
        var cache = model.NewCache(1, prompt.Length + newTokens + 1);
        var logits = new float[model.Config.VocabSize];
        Sampler.NextLogits(model, prompt, cache, logits);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < newTokens; i++) Sampler.NextLogits(model, [Sampler.ArgMax(logits)], cache, logits);
        return newTokens / clock.Elapsed.TotalSeconds;
    }

    private static double Prefill(Gpt2Model model, int[] prompt)
    {
        var cache = model.NewCache(1, prompt.Length);
        var logits = new float[model.Config.VocabSize];
        var clock = Stopwatch.StartNew();
        Sampler.NextLogits(model, prompt, cache, logits);
        return prompt.Length / clock.Elapsed.TotalSeconds;
    }

    /// <summary>STREAM's triad a[i] = b[i] + s·c[i] over 3 × 64 MB on the benchmark's threads, best of five:
    /// 3 × 8 bytes per element moved (the write counted once).</summary>
    private static double TriadBandwidth(int threads)
    {
        const int N = 16 << 20;
        var (a, b, c) = (new float[N], new float[N], new float[N]);
        Array.Fill(b, 1f);
        Array.Fill(c, 2f);
        double best = 0;
        for (int round = 0; round < 5; round++)
        {
            var clock = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                int start = (int)((long)N * t / threads), end = (int)((long)N * (t + 1) / threads);
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(c.AsSpan(start, end - start), 3f, b.AsSpan(start, end - start), a.AsSpan(start, end - start));
            });
            best = Math.Max(best, 3.0 * 4 * N / clock.Elapsed.TotalSeconds);
        }
        return best;
    }

    private static double Median(List<double> xs)
    {
        var s = xs.OrderBy(x => x).ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    private static string Join(List<double> xs) => string.Join(", ", xs.Select(x => x.ToString("F1", CultureInfo.InvariantCulture)));
    private static string Load() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    private static int IntArg(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out var v) ? v : fallback;
    }

    private static string? StringArg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
