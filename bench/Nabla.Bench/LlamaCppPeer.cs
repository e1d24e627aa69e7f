using System.Diagnostics;
using System.Text.Json;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.Text;

namespace Nabla.Bench;

/// <summary>
/// llama.cpp as a peer of `bench generate`: the model under test written as GGUF by Nabla (F32, Q8_0 or Q4_0
/// matrices), then timed by llama.cpp's CPU library through npm's node-llama-cpp 3.21.1 (bench/llama_cpp_peer.mjs,
/// installed by tests/data/fetch-llama-cpp.sh): a prompt of P tokens evaluated in one batch, then greedy decoding.
/// </summary>
internal static class LlamaCppPeer
{
    public sealed record Round(double PrefillTokensPerSecond, double DecodeTokensPerSecond);

    /// <summary>Rounds measured by llama.cpp, or null with the reason on stderr when node or node-llama-cpp is missing.</summary>
    public static List<Round>? Measure(Gpt2Model model, ITokenizer tokenizer, string directory, GgmlType type, int threads, int promptTokens, int decodeTokens, int rounds)
    {
        var path = Path.Combine(directory, $"model-{type.ToString().ToLowerInvariant()}.gguf");
        if (!File.Exists(path)) Gpt2Gguf.Save(model, tokenizer, path, type);
        var script = Path.Combine(AppContext.BaseDirectory, "llama_cpp_peer.mjs");
        var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { script, "bench", path, "--threads", $"{threads}", "--prompt-tokens", $"{promptTokens}", "--decode-tokens", $"{decodeTokens}", "--rounds", $"{rounds}" })
            start.ArgumentList.Add(argument);
        Process process;
        try { process = Process.Start(start)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            Console.Error.WriteLine($"llama.cpp peer unavailable: cannot start node ({e.Message}).");
            return null;
        }
        using var _ = process;
        var stderr = process.StandardError.ReadToEndAsync();
        var lines = process.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            Console.Error.WriteLine($"llama.cpp peer failed ({type}): {stderr.Result.Trim()}");
            return null;
        }
        return lines.Select(line =>
        {
            using var json = JsonDocument.Parse(line);
            return new Round(json.RootElement.GetProperty("prefill_tokens_per_s").GetDouble(), json.RootElement.GetProperty("decode_tokens_per_s").GetDouble());
        }).ToList();
    }

    /// <summary>
    /// GGUF carries a tokenizer, and llama.cpp refuses a file without one; speed does not depend on it, so a model
    /// without its own gets GPT-2's byte tokens and placeholders for the other ids (no merges).
    /// </summary>
    public static Gpt2Tokenizer PlaceholderTokenizer(int vocabularySize)
    {
        var vocabulary = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++) vocabulary[ByteLevelAlphabet.ToChar((byte)b).ToString()] = b;
        for (int id = 256; id < vocabularySize - 1; id++) vocabulary[$"[T{id}]"] = id;
        vocabulary[Gpt2Tokenizer.EndOfTextToken] = vocabularySize - 1;
        return new Gpt2Tokenizer(vocabulary, []);
    }
}
