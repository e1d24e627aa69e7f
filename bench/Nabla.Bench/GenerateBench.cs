using System.Diagnostics;
using System.Globalization;
using Nabla.IO;
using Nabla.Kernels.Cpu;
using Nabla.Models.Gpt2;
using Nabla.Quantization;
using Nabla.Text;

namespace Nabla.Bench;

/// <summary>
/// Inference speed of a GPT-2 at B = 1, greedy, side by side with llama.cpp (node-llama-cpp 3.21.1; F32, Q8_0 and
/// Q4_0 GGUF written by Nabla from the same weights; Nabla itself also on those weights quantised to q8_0, q4_0 and
/// nf4) and ONNX Runtime 1.31.1 (fp32, the same weights exported by
/// bench/onnx_gpt2_export.py): tokens/s of a P-token prompt run in one pass up to the next token's logits (prefill,
/// as generation runs it: llama.cpp and the ONNX graph apply the head to the last position only), and of greedy decoding after
/// a one-token prompt (the first token, which includes that prompt, is not counted). Medians of the rounds; every
/// round is printed. Without --model, a randomly initialised GPT-2 124M (speed does not depend on the values).
///   dotnet run -c Release --project bench/Nabla.Bench -- generate [--model PATH] [--threads 2] [--prompt-tokens 512]
///       [--decode-tokens 64] [--rounds 3] [--layers N] [--peers nabla,llama.cpp,onnx] [--llama-types f32,q8_0,q4_0]
///       [--nabla-formats q8_0,q4_0,nf4]
///       [--bandwidth-gbs 28] [--work DIR]
/// </summary>
public static class GenerateBench
{
    private sealed record Row(string Engine, string Weights, double WeightBytes, List<double> Prefill, List<double> Decode);

    public static int Run(string[] args)
    {
        int threads = BenchArgs.Int(args, "--threads", 2), promptTokens = BenchArgs.Int(args, "--prompt-tokens", 512);
        int decodeTokens = BenchArgs.Int(args, "--decode-tokens", 64), rounds = BenchArgs.Int(args, "--rounds", 3);
        double bandwidth = double.Parse(BenchArgs.Value(args, "--bandwidth-gbs") ?? "28", CultureInfo.InvariantCulture);
        var peers = (BenchArgs.Value(args, "--peers") ?? "nabla,llama.cpp,onnx").Split(',');
        var llamaTypes = (BenchArgs.Value(args, "--llama-types") ?? "f32,q8_0,q4_0").Split(',');
        var nablaFormats = (BenchArgs.Value(args, "--nabla-formats") ?? "q8_0,q4_0,nf4").Split(',', StringSplitOptions.RemoveEmptyEntries);
        WorkerPool.Threads = threads;

        Gpt2Model model;
        ITokenizer tokenizer;
        if (BenchArgs.Value(args, "--model") is { Length: > 0 } path) (model, tokenizer) = Gpt2ModelFiles.Load(path);
        else
        {
            model = new Gpt2Model(Gpt2Config.Gpt2Small with { Layers = BenchArgs.Int(args, "--layers", 12) }, new Generator(0));
            tokenizer = LlamaCppPeer.PlaceholderTokenizer(model.Config.VocabSize);
        }
        var c = model.Config;
        if (promptTokens + decodeTokens + 8 > c.MaxSequenceLength)
        {
            Console.Error.WriteLine($"--prompt-tokens {promptTokens} + --decode-tokens {decodeTokens} exceed the model's context of {c.MaxSequenceLength}.");
            return 2;
        }
        string? keptWork = BenchArgs.Value(args, "--work") is { Length: > 0 } given ? given : null;
        string work = keptWork ?? Directory.CreateTempSubdirectory("nabla-bench-generate-").FullName;
        Directory.CreateDirectory(work);
        Console.WriteLine($"GPT-2 {c.Layers} layers, {c.Channels} channels, vocabulary {c.VocabSize}, {model.ParameterCount:N0} parameters; " +
                          $"B = 1, greedy, {threads} threads, prompt {promptTokens} tokens, {decodeTokens} decoded; on {MachineInfo.Line}; load {MachineLoad.LoadAverage}");

        var rng = new Random(1);
        int[] prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(Math.Min(c.VocabSize, 50000))).ToArray();
        double fp32Bytes = 4.0 * model.ParameterCount;
        var rows = new List<Row>();
        try
        {
            var nabla = new Row("Nabla", "fp32", fp32Bytes, [], []);
            using var onnx = peers.Contains("onnx") ? OnnxRuntimePeer.TryStart(model, work, threads) : null;
            var ort = new Row("ONNX Runtime 1.31.1", "fp32", fp32Bytes, [], []);
            List<int> nablaTokens = [], ortTokens = [];
            for (int r = 0; r <= rounds; r++) // round 0 warms up (JIT, buffer pool, ONNX Runtime's allocations) and is not counted
            {
                if (peers.Contains("nabla"))
                {
                    var (prefill, decode, tokens) = MeasureNabla(model, prompt, decodeTokens);
                    nablaTokens = tokens;
                    if (r > 0) { nabla.Prefill.Add(promptTokens / prefill); nabla.Decode.Add(decode); }
                }
                if (onnx != null)
                {
                    double prefill = onnx.Prefill(prompt);
                    (double decode, ortTokens) = onnx.Decode(prompt[0], decodeTokens);
                    if (r > 0) { ort.Prefill.Add(promptTokens / prefill); ort.Decode.Add(decode); }
                }
            }
            // The same weights must give the same greedy tokens (a check that the export ran the model under test).
            if (nablaTokens.Count > 0 && ortTokens.Count > 0)
                Console.WriteLine($"greedy tokens: ONNX Runtime agrees with Nabla on {nablaTokens.Zip(ortTokens).TakeWhile(p => p.First == p.Second).Count()} of {nablaTokens.Count} (until the first difference)");
            if (nabla.Decode.Count > 0) rows.Add(nabla);
            if (ort.Decode.Count > 0) rows.Add(ort);
            if (peers.Contains("nabla"))
                foreach (var label in nablaFormats)
                {
                    if (!QuantizationFormats.TryParse(label, out var format)) throw new ArgumentException($"--nabla-formats: unknown format '{label}' (q8_0, q4_0, nf4)");
                    // the same weights again (the same seed, or the same file), quantised
                    var quantized = (BenchArgs.Value(args, "--model") ?? "") is { Length: > 0 } again ? Gpt2ModelFiles.Load(again).Model : new Gpt2Model(c, new Generator(0));
                    Gpt2Quantization.Quantize(quantized, format);
                    var row = new Row("Nabla", label, WeightBytes(quantized), [], []);
                    for (int r = 0; r <= rounds; r++) // round 0 warms up, as above
                    {
                        var (prefill, decode, _) = MeasureNabla(quantized, prompt, decodeTokens);
                        if (r > 0) { row.Prefill.Add(promptTokens / prefill); row.Decode.Add(decode); }
                    }
                    rows.Add(row);
                }
            if (peers.Contains("llama.cpp"))
                foreach (var label in llamaTypes)
                {
                    var type = label switch { "f32" => GgmlType.F32, "q8_0" => GgmlType.Q8_0, "q4_0" => GgmlType.Q4_0, _ => throw new ArgumentException($"--llama-types: unknown type '{label}'") };
                    if (LlamaCppPeer.Measure(model, tokenizer, work, type, threads, promptTokens, decodeTokens, rounds + 1) is not { Count: > 1 } measured) continue;
                    var counted = measured.Skip(1).ToList(); // the first round warms up, as above
                    rows.Add(new Row("llama.cpp (node-llama-cpp 3.21.1)", label, new FileInfo(Path.Combine(work, $"model-{type.ToString().ToLowerInvariant()}.gguf")).Length,
                        counted.Select(m => m.PrefillTokensPerSecond).ToList(), counted.Select(m => m.DecodeTokensPerSecond).ToList()));
                }
        }
        finally
        {
            if (keptWork == null) Directory.Delete(work, recursive: true);
        }

        Console.WriteLine();
        Console.WriteLine($"| engine | weights | prefill {promptTokens} tokens, tokens/s | decode tokens/s | weights streamed, GB/s | % of {bandwidth:0.#} GB/s |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|");
        foreach (var row in rows)
        {
            double decode = Statistics.Median(row.Decode), streamed = decode * row.WeightBytes / 1e9;
            Console.WriteLine($"| {row.Engine} | {row.Weights} | {Statistics.Median(row.Prefill):F1} | {decode:F1} | {streamed:F1} | {100 * streamed / bandwidth:F0}% |");
        }
        Console.WriteLine();
        foreach (var row in rows)
            Console.WriteLine($"{row.Engine} {row.Weights}: prefill [{Join(row.Prefill)}], decode [{Join(row.Decode)}] tokens/s");
        Console.WriteLine($"load after: {MachineLoad.LoadAverage}");
        return 0;
    }

    /// <summary>Seconds for the prompt in one pass, and decode tokens/s after a one-token prompt.</summary>
    private static (double PrefillSeconds, double DecodeTokensPerSecond, List<int> Tokens) MeasureNabla(Gpt2Model model, int[] prompt, int decodeTokens)
    {
        double prefill;
        using (MemoryScope.Begin())
        {
            var cache = model.NewCache(1, prompt.Length);
            var clock = Stopwatch.StartNew();
            Sampler.NextLogits(model, prompt, cache); // what generation runs on a prompt
            prefill = clock.Elapsed.TotalSeconds;
        }
        var decodeClock = new Stopwatch();
        var tokens = new List<int>();
        foreach (var token in Sampler.Generate(model, [prompt[0]], new SamplingOptions { Temperature = 0, MaxNewTokens = decodeTokens + 1 }, new Generator(1)))
        {
            tokens.Add(token);
            if (tokens.Count == 1) decodeClock.Start();
        }
        return (prefill, (tokens.Count - 1) / decodeClock.Elapsed.TotalSeconds, tokens);
    }

    /// <summary>Bytes of a quantised model's weights as the fp32 row counts them (4 × parameters): the packed
    /// matrices (with NF4's float scales), and 4 bytes for every float parameter and buffer left.</summary>
    private static double WeightBytes(Gpt2Model model)
    {
        double bytes = model.Modules().Sum(m => m switch { QuantizedLinear q => q.Weight.ByteCount, QuantizedEmbedding e => e.Weight.ByteCount, _ => 0L });
        return bytes + 4.0 * (model.ParameterCount + model.NamedBuffers().Sum(b => (long)b.Buffer.Count));
    }

    private static string Join(List<double> xs) => string.Join(", ", xs.Select(x => x.ToString("F1", CultureInfo.InvariantCulture)));
}
