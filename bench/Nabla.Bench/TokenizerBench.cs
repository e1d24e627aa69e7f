using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using Nabla.Text;

namespace Nabla.Bench;

/// <summary>
/// GPT-2 encoding throughput: Nabla's <see cref="Gpt2Tokenizer"/> (one thread and all threads) against
/// Microsoft.ML.Tokenizers' byte-level <see cref="BpeTokenizer"/> and <see cref="TiktokenTokenizer"/> on the same
/// files and text, in the same process. After a JIT warm-up on other instances, each contender encodes the
/// whole text once with cold caches (reported as "first"), then <c>--runs</c> more times, taking turns with
/// the others; the median gives MB/s (UTF-8 bytes) and tokens/s.
/// All contenders must produce identical ids, or the benchmark fails.
/// <para>
/// Data: GPT-2's files and the KJV + Jargon File texts written by tests/data/fetch-test-data.sh into
/// $NABLA_TEST_DATA (default ~/.cache/nabla-test-data), or <c>--data DIR</c>.
/// Usage: <c>tokenizer [--data DIR] [--runs N] [--mb M]</c> (--mb limits the text to its first M MB).
/// </para>
/// </summary>
public static class TokenizerBench
{
    private sealed record Contender(string Name, Func<string, int[]> Encode);

    private sealed record Result(string Name, double FirstMs, double MedianMs, double MinMs, double MaxMs);

    public static int Run(string[] args)
    {
        string dataDirectory = BenchArgs.Value(args, "--data") ?? DefaultDataDirectory();
        int runs = int.Parse(BenchArgs.Value(args, "--runs") ?? "7");
        double? megabytes = BenchArgs.Value(args, "--mb") is { } mb ? double.Parse(mb, System.Globalization.CultureInfo.InvariantCulture) : null;

        string encoderPath = Path.Combine(dataDirectory, "gpt2", "encoder.json");
        string mergesPath = Path.Combine(dataDirectory, "gpt2", "vocab.bpe");
        string[] corpusPaths = [Path.Combine(dataDirectory, "kjv.txt"), Path.Combine(dataDirectory, "jargon.txt")];
        foreach (string path in corpusPaths.Append(encoderPath).Append(mergesPath))
        {
            if (File.Exists(path)) continue;
            Console.Error.WriteLine($"tokenizer bench: {path} is missing; run tests/data/fetch-test-data.sh (or pass --data DIR).");
            return 1;
        }

        string text = string.Concat(corpusPaths.Select(File.ReadAllText));
        if (megabytes is { } limit && limit * 1e6 < text.Length) text = text[..(int)(limit * 1e6)];
        long textBytes = Encoding.UTF8.GetByteCount(text);

        // Separate instances first encode a slice of the text, so that "first" below measures filling the
        // caches rather than JIT compilation.
        foreach (var warmUp in CreateContenders(encoderPath, mergesPath)) warmUp.Encode(text[..Math.Min(text.Length, 300_000)]);
        var contenders = CreateContenders(encoderPath, mergesPath);
        Console.WriteLine($"GPT-2 tokenizer encode: {textBytes / 1e6:F2} MB of text (KJV + Jargon File), {runs} timed runs after a JIT warm-up and a cold-cache run");
        Console.WriteLine($"machine: {MachineInfo.Line}; load average {MachineLoad.LoadAverage} at start");

        // Cold-cache (first) runs, checking that every contender gives the same ids.
        int[]? expected = null;
        var firstMs = new double[contenders.Count];
        for (int c = 0; c < contenders.Count; c++)
        {
            var stopwatch = Stopwatch.StartNew();
            int[] ids = contenders[c].Encode(text);
            firstMs[c] = stopwatch.Elapsed.TotalMilliseconds;
            if (expected is null) expected = ids;
            else if (!ids.AsSpan().SequenceEqual(expected))
            {
                Console.Error.WriteLine($"tokenizer bench: {contenders[c].Name} produced different ids ({ids.Length} vs {expected.Length} tokens).");
                return 1;
            }
        }

        // Timed runs take turns, contender after contender, so that load from other processes on a shared
        // machine falls on all of them alike rather than on whichever ran during a busy spell.
        var times = new double[contenders.Count][];
        for (int c = 0; c < contenders.Count; c++) times[c] = new double[runs];
        for (int run = 0; run < runs; run++)
        {
            for (int c = 0; c < contenders.Count; c++)
            {
                var stopwatch = Stopwatch.StartNew();
                contenders[c].Encode(text);
                times[c][run] = stopwatch.Elapsed.TotalMilliseconds;
            }
        }
        var results = new List<Result>();
        for (int c = 0; c < contenders.Count; c++)
        {
            Array.Sort(times[c]);
            results.Add(new Result(contenders[c].Name, firstMs[c], times[c][runs / 2], times[c][0], times[c][^1]));
        }

        Console.WriteLine($"all contenders: identical {expected!.Length:N0} ids");
        Console.WriteLine();
        Console.WriteLine($"{"encoder",-44} {"first ms",9} {"median ms",10} {"min–max ms",15} {"MB/s",8} {"Mtok/s",7}");
        foreach (var result in results)
        {
            double seconds = result.MedianMs / 1000;
            Console.WriteLine($"{result.Name,-44} {result.FirstMs,9:F0} {result.MedianMs,10:F1} {$"{result.MinMs:F0}–{result.MaxMs:F0}",15} " +
                              $"{textBytes / 1e6 / seconds,8:F1} {expected.Length / 1e6 / seconds,7:F2}");
        }
        Console.WriteLine($"load average at end: {MachineLoad.LoadAverage}");
        return 0;
    }

    private static List<Contender> CreateContenders(string encoderPath, string mergesPath)
    {
        var oneThread = Gpt2Tokenizer.FromFiles(encoderPath, mergesPath);
        oneThread.MaxDegreeOfParallelism = 1;
        var allThreads = Gpt2Tokenizer.FromFiles(encoderPath, mergesPath);

        var gpt2Split = new Regex(Gpt2PreTokenizer.Pattern, RegexOptions.Compiled);
        var bpe = BpeTokenizer.Create(new BpeOptions(encoderPath, mergesPath)
        {
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(gpt2Split, null),
        });
        var tiktoken = TiktokenTokenizer.Create(TiktokenRanks(oneThread), new RegexPreTokenizer(gpt2Split, null), normalizer: null);

        return
        [
            new("Nabla Gpt2Tokenizer, 1 thread", text => oneThread.Encode(text)),
            new($"Nabla Gpt2Tokenizer, {Environment.ProcessorCount} threads", text => allThreads.Encode(text)),
            new("Microsoft.ML.Tokenizers BpeTokenizer", text => bpe.EncodeToIds(text).ToArray()),
            new("Microsoft.ML.Tokenizers TiktokenTokenizer", text => tiktoken.EncodeToIds(text).ToArray()),
        ];
    }

    /// <summary>
    /// GPT-2's vocabulary in tiktoken's format ("base64(token bytes) rank" per line, rank = id): for GPT-2,
    /// merging the pair whose merged token has the lowest id is the same as following vocab.bpe's order.
    /// </summary>
    private static MemoryStream TiktokenRanks(Gpt2Tokenizer gpt2)
    {
        var lines = new StringBuilder();
        for (int id = 0; id < gpt2.VocabSize; id++)
            if (id != gpt2.EndOfTextId)
                lines.Append(Convert.ToBase64String(gpt2.DecodeBytes([id]))).Append(' ').Append(id).Append('\n');
        return new MemoryStream(Encoding.ASCII.GetBytes(lines.ToString()));
    }

    private static string DefaultDataDirectory() =>
        Environment.GetEnvironmentVariable("NABLA_TEST_DATA") is { Length: > 0 } fromEnvironment
            ? fromEnvironment
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "nabla-test-data");
}
