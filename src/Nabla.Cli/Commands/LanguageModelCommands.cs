using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Nabla.Autograd;
using Nabla.Cli.Runs;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.Text;

namespace Nabla.Cli.Commands;

/// <summary>`nabla generate`, `nabla eval perplexity`, `nabla data prepare`, `nabla tokenize` and `nabla model fetch`.</summary>
public static class LanguageModelCommands
{
    private static Option<string> ModelOption() => new("--model") { Description = "A Hugging Face GPT-2 directory, a run directory of `nabla train gpt`, or an llm.c .bin.", Required = true };
    private static Option<string?> VocabOption() => new("--vocab") { Description = "Directory with the tokenizer files, if they are not beside the model." };

    public static Command Generate()
    {
        var model = ModelOption();
        var vocab = VocabOption();
        var prompt = new Option<string?>("--prompt") { Description = "Text to continue (default: the end-of-text token, i.e. unconditional)." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens to generate at most.", DefaultValueFactory = _ => 100 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 is greedy decoding.", DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0: all).", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "Sample within the smallest set of tokens of total probability p.", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 42 };
        var stop = new Option<string[]>("--stop") { Description = "Stop when the output contains this text (repeatable); it is not printed.", AllowMultipleArgumentsPerToken = false };
        MlpCommands.Check(maxTokens, v => v >= 0, "--max-tokens must not be negative.");
        MlpCommands.Check(temperature, v => v >= 0, "--temperature must not be negative.");
        MlpCommands.Check(topK, v => v >= 0, "--top-k must not be negative.");
        MlpCommands.Check(topP, v => v is > 0 and <= 1, "--top-p must be in (0, 1].");
        var command = new Command("generate", "Continue a prompt with a GPT-2, streaming the tokens as they are produced (statistics go to stderr).")
        {
            model, vocab, prompt, maxTokens, temperature, topK, topP, seed, stop,
        };
        command.SetAction(p =>
        {
            var (gpt, tokenizer) = Gpt2ModelFiles.Load(p.GetValue(model)!, p.GetValue(vocab));
            var text = p.GetValue(prompt);
            int[] ids = text is { Length: > 0 } ? tokenizer.Encode(text)
                : tokenizer is Gpt2Tokenizer { EndOfTextId: { } eot } ? [eot]
                : throw new CliException("This tokenizer has no end-of-text token; give a --prompt.");
            var stops = p.GetValue(stop) ?? [];
            var options = new SamplingOptions { Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), TopP = p.GetValue(topP), MaxNewTokens = p.GetValue(maxTokens) };
            int? endOfText = tokenizer is Gpt2Tokenizer bpe ? bpe.EndOfTextId : null;
            var decoder = new StreamingDecoder(tokenizer);
            var output = new StopSequenceFilter(stops);
            var stdout = Console.Out;
            var clock = Stopwatch.StartNew();
            double firstTokenMs = 0;
            int produced = 0;
            foreach (var id in Sampler.Generate(gpt, ids, options, new Generator(p.GetValue(seed)), endOfText))
            {
                if (produced++ == 0) firstTokenMs = clock.Elapsed.TotalMilliseconds;
                var (emit, done) = output.Push(decoder.Next(id));
                stdout.Write(emit);
                stdout.Flush();
                if (done) break;
            }
            stdout.Write(output.Flush());
            stdout.WriteLine();
            double seconds = clock.Elapsed.TotalSeconds;
            double steady = produced > 1 ? (produced - 1) / (seconds - firstTokenMs / 1000) : 0;
            Console.Error.WriteLine($"[{ids.Length} prompt tokens, {produced} generated in {seconds:F2} s: first token after {firstTokenMs:F0} ms, then {steady:F1} tokens/s]");
            return 0;
        });
        return command;
    }

    /// <summary>Streams text but holds back what could be the start of a stop sequence, and cuts at one.</summary>
    public sealed class StopSequenceFilter(IReadOnlyList<string> stops)
    {
        private string _pending = "";

        public (string Emit, bool Done) Push(string piece)
        {
            _pending += piece;
            foreach (var s in stops)
            {
                int at = s.Length == 0 ? -1 : _pending.IndexOf(s, StringComparison.Ordinal);
                if (at >= 0) { var head = _pending[..at]; _pending = ""; return (head, true); }
            }
            int hold = 0;
            foreach (var s in stops)
                for (int k = Math.Min(s.Length - 1, _pending.Length); k > hold; k--)
                    if (_pending.EndsWith(s[..k], StringComparison.Ordinal)) { hold = k; break; }
            var emit = _pending[..(_pending.Length - hold)];
            _pending = _pending[(_pending.Length - hold)..];
            return (emit, false);
        }

        public string Flush()
        {
            var rest = _pending;
            _pending = "";
            return rest;
        }
    }

    public static Command Perplexity()
    {
        var model = ModelOption();
        var vocab = VocabOption();
        var text = new Option<string>("--text") { Description = "Text file to score.", Required = true };
        var context = new Option<int?>("--context") { Description = "Window length (default: the model's context)." };
        var stride = new Option<int?>("--stride") { Description = "Window step; each window scores only the tokens the previous one did not (default: half the window)." };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Score only the first N tokens of the text." };
        var command = new Command("perplexity", "Sliding-window perplexity of a GPT-2 on a text file.") { model, vocab, text, context, stride, maxTokens };
        command.SetAction(p =>
        {
            var (gpt, tokenizer) = Gpt2ModelFiles.Load(p.GetValue(model)!, p.GetValue(vocab));
            var path = p.GetValue(text)!;
            if (!File.Exists(path)) throw new CliException($"{path}: file not found.");
            var tokens = tokenizer.Encode(File.ReadAllText(path));
            if (p.GetValue(maxTokens) is { } max && max < tokens.Length) tokens = tokens[..max];
            int window = Math.Min(p.GetValue(context) ?? gpt.Config.MaxSequenceLength, gpt.Config.MaxSequenceLength);
            int step = p.GetValue(stride) ?? Math.Max(1, window / 2);
            if (window < 2 || step < 1 || step > window) throw new CliException($"--context must be at least 2 and --stride between 1 and the context ({window}).");
            var result = PerplexityEvaluator.Evaluate(gpt, tokens, window, step);
            Console.WriteLine($"{path}: {result.Tokens:N0} tokens scored (windows of {window}, stride {step}): loss {result.Loss:F4} nats/token, perplexity {result.Perplexity:F3}");
            return 0;
        });
        return command;
    }

    public static Command DataPrepare()
    {
        var input = new Option<string[]>("--input") { Description = "Text files (each one a document; repeat the option or list several).", Required = true, AllowMultipleArgumentsPerToken = true };
        var output = new Option<string>("--out") { Description = "Directory for the shards and the tokenizer.", Required = true };
        var tokenizerKind = new Option<string>("--tokenizer") { Description = "gpt2 (byte-level BPE, needs --vocab) or char.", DefaultValueFactory = _ => "gpt2" };
        var vocab = VocabOption();
        var valFraction = new Option<double>("--val-fraction") { Description = "Share of each document's tokens (its end) kept for validation.", DefaultValueFactory = _ => 0.05 };
        var shardTokens = new Option<int>("--shard-tokens") { Description = "Tokens per shard file.", DefaultValueFactory = _ => 100_000_000 };
        MlpCommands.Check(valFraction, v => v is >= 0 and < 1, "--val-fraction must be in [0, 1).");
        MlpCommands.Check(shardTokens, v => v > 0, "--shard-tokens must be positive.");
        var command = new Command("prepare", "Tokenize text files into llm.c-format token shards (train_*.bin, val_*.bin) for `nabla train gpt --data`.")
        {
            input, output, tokenizerKind, vocab, valFraction, shardTokens,
        };
        command.SetAction(p =>
        {
            var files = p.GetValue(input)!;
            foreach (var f in files) if (!File.Exists(f)) throw new CliException($"{f}: file not found.");
            var dir = p.GetValue(output)!;
            Directory.CreateDirectory(dir);
            var texts = files.Select(File.ReadAllText).ToList();
            ITokenizer tokenizer = p.GetValue(tokenizerKind)!.ToLowerInvariant() switch
            {
                "char" => CharTokenizer.FromText(string.Concat(texts)),
                "gpt2" => p.GetValue(vocab) is { } v ? TokenizerFiles.Load(v) : throw new CliException("--tokenizer gpt2 needs --vocab DIR (tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe)."),
                var other => throw new CliException($"--tokenizer: unknown tokenizer '{other}' (gpt2, char)."),
            };
            var train = new List<int>();
            var val = new List<int>();
            int? separator = tokenizer is Gpt2Tokenizer { EndOfTextId: { } eot } ? eot : null;
            foreach (var text in texts)
            {
                var ids = tokenizer.Encode(text);
                int cut = (int)(ids.Length * (1 - p.GetValue(valFraction)));
                if (separator is { } s) { train.Add(s); val.Add(s); }
                train.AddRange(ids[..cut]);
                val.AddRange(ids[cut..]);
            }
            int per = p.GetValue(shardTokens);
            int Write(string prefix, List<int> tokens)
            {
                int shards = 0;
                for (int start = 0; start < tokens.Count || shards == 0; start += per, shards++)
                    TokenShard.Write(Path.Combine(dir, $"{prefix}_{shards:D6}.bin"), tokens.GetRange(start, Math.Min(per, tokens.Count - start)).ToArray());
                return shards;
            }
            int trainShards = Write("train", train);
            int valShards = val.Count > 0 ? Write("val", val) : 0;
            TokenizerFiles.Save(tokenizer, dir);
            Console.WriteLine($"{dir}: {train.Count:N0} training tokens in {trainShards} shard(s), {val.Count:N0} validation tokens in {valShards}; vocabulary {tokenizer.VocabSize}");
            return 0;
        });
        var data = new Command("data", "Prepare datasets.");
        data.Subcommands.Add(command);
        data.Subcommands.Add(TrainTokenizer());
        return data;
    }

    private static Command TrainTokenizer()
    {
        var input = new Option<string[]>("--input") { Description = "Text files to learn from (each one a document).", Required = true, AllowMultipleArgumentsPerToken = true };
        var output = new Option<string>("--out") { Description = "Directory for encoder.json and vocab.bpe.", Required = true };
        var vocabSize = new Option<int>("--vocab-size") { Description = "Vocabulary size, counting the 256 byte tokens and <|endoftext|>.", DefaultValueFactory = _ => 8192 };
        MlpCommands.Check(vocabSize, v => v > 256, "--vocab-size must be larger than 256 (the byte tokens).");
        var command = new Command("train-tokenizer", "Learn a GPT-2-style byte-level BPE vocabulary from text (writes encoder.json + vocab.bpe).") { input, output, vocabSize };
        command.SetAction(p =>
        {
            var files = p.GetValue(input)!;
            foreach (var f in files) if (!File.Exists(f)) throw new CliException($"{f}: file not found.");
            var clock = Stopwatch.StartNew();
            var tokenizer = new BpeTrainer(p.GetValue(vocabSize)).Train(files.Select(File.ReadAllText));
            tokenizer.Save(p.GetValue(output)!);
            Console.WriteLine($"{p.GetValue(output)}: {tokenizer.VocabSize} tokens ({tokenizer.Merges.Count} merges) learned in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return command;
    }

    public static Command Tokenize()
    {
        var vocab = new Option<string>("--vocab") { Description = "Directory with a tokenizer: tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe, or char_vocab.json.", Required = true };
        var text = new Option<string?>("--text") { Description = "Text to tokenize (with --decode: space-separated ids)." };
        var file = new Option<string?>("--file") { Description = "File to tokenize (with --decode: a file of ids)." };
        var decode = new Option<bool>("--decode") { Description = "Turn ids back into text." };
        var command = new Command("tokenize", "Print the token ids of a text (one line, space-separated), or with --decode the text of ids.") { vocab, text, file, decode };
        command.SetAction(p =>
        {
            var tokenizer = TokenizerFiles.Load(p.GetValue(vocab)!);
            string input = (p.GetValue(text), p.GetValue(file)) switch
            {
                ({ } t, null) => t,
                (null, { } f) => File.Exists(f) ? File.ReadAllText(f) : throw new CliException($"{f}: file not found."),
                _ => throw new CliException("Give exactly one of --text and --file."),
            };
            if (p.GetValue(decode))
            {
                var ids = input.Split((char[])[' ', '\n', '\t', ','], StringSplitOptions.RemoveEmptyEntries).Select(s =>
                    int.TryParse(s, out var id) && id >= 0 && id < tokenizer.VocabSize ? id : throw new CliException($"'{s}' is not a token id of this vocabulary (0..{tokenizer.VocabSize - 1}).")).ToArray();
                Console.Write(tokenizer.Decode(ids));
                Console.WriteLine();
            }
            else Console.WriteLine(string.Join(' ', tokenizer is Gpt2Tokenizer bpe ? bpe.Encode(input, allowSpecialTokens: true) : tokenizer.Encode(input)));
            return 0;
        });
        return command;
    }

    /// <summary>Official files of the published GPT-2 sizes. The tokenizer's hashes are pinned (the same as
    /// tiktoken's); the weights are checked against the SHA-256 Hugging Face advertises for them.</summary>
    public static IReadOnlyList<RemoteFile> OfficialFiles(string name, string? baseUrl = null)
    {
        var repo = name switch
        {
            "gpt2" or "gpt2-medium" or "gpt2-large" or "gpt2-xl" => $"https://huggingface.co/openai-community/{name}/resolve/main/",
            _ => throw new CliException($"Unknown model '{name}' (gpt2, gpt2-medium, gpt2-large, gpt2-xl)."),
        };
        const string openai = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/";
        return
        [
            new("config.json", (baseUrl ?? repo) + "config.json"),
            new("model.safetensors", (baseUrl ?? repo) + "model.safetensors"),
            new("encoder.json", (baseUrl ?? openai) + "encoder.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
            new("vocab.bpe", (baseUrl ?? openai) + "vocab.bpe", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
        ];
    }

    public static Command ModelFetch()
    {
        var name = new Argument<string>("name") { Description = "gpt2, gpt2-medium, gpt2-large or gpt2-xl." };
        var cache = new Option<string?>("--cache") { Description = "Where to put it (default: $NABLA_DATA/models/NAME, or ~/.cache/nabla/models/NAME)." };
        var baseUrl = new Option<string?>("--base-url") { Description = "Download from this mirror (one folder with all files) instead of the official hosts." };
        var manifest = new Option<string?>("--manifest") { Description = "JSON list of {name, url, sha256} to fetch instead of the built-in list." };
        var command = new Command("fetch", "Download a published GPT-2 (weights, config, tokenizer) and check every file's SHA-256.") { name, cache, baseUrl, manifest };
        command.SetAction(async (p, cancel) =>
        {
            var model = p.GetValue(name)!;
            var files = p.GetValue(manifest) is { } m
                ? JsonSerializer.Deserialize<List<RemoteFile>>(File.ReadAllText(m), new JsonSerializerOptions { PropertyNameCaseInsensitive = true }) ?? throw new CliException($"{m}: empty manifest.")
                : OfficialFiles(model, p.GetValue(baseUrl));
            var dir = p.GetValue(cache) ?? Path.Combine(Downloader.CacheRoot, "models", model);
            using var http = new HttpClient { Timeout = TimeSpan.FromHours(2) };
            foreach (var file in files)
            {
                try
                {
                    var path = await Downloader.FetchAsync(file, dir, http, cancel: cancel);
                    Console.WriteLine($"{file.Name}: ok ({new FileInfo(path).Length:N0} bytes, sha256 {(await File.ReadAllTextAsync(path + ".sha256", cancel)).Trim()})");
                }
                catch (DownloadException e)
                {
                    throw new CliException(e.Message);
                }
            }
            Console.WriteLine($"{model} is in {dir}; run it with: nabla generate --model {dir} --prompt \"Hello\"");
            return 0;
        });
        var group = new Command("model", "Manage pretrained models.");
        group.Subcommands.Add(command);
        return group;
    }
}
