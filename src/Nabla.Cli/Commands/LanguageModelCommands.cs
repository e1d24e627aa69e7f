using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Nabla.Autograd;
using Nabla.Cli.Runs;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Vision;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Text;

namespace Nabla.Cli.Commands;

/// <summary>`nabla generate`, `nabla eval perplexity`, `nabla data prepare`, `nabla tokenize` and `nabla model fetch`.</summary>
public static class LanguageModelCommands
{
    private static Option<string> ModelOption() => new("--model") { Description = "A Hugging Face GPT-2 directory, a run directory of `nabla train gpt`, an llm.c .bin, or a GGUF file.", Required = true };
    private static Option<string?> VocabOption() => new("--vocab") { Description = "Directory with the tokenizer files, if they are not beside the model." };
    private static Option<string?> AdapterOption() => new("--adapter") { Description = "A LoRA adapter in PEFT's layout (adapter_model.safetensors + adapter_config.json, e.g. a `nabla finetune gpt` run) to apply, unmerged (a DoRA adapter: merged in memory), to the model." };

    /// <summary>The model of --model (with the --adapter's layers on it when one is given) on the device --device
    /// names, and its tokenizer. A DoRA adapter is merged in memory: unmerged, each token would recompute every adapted
    /// layer's row norms ‖W + ΔW‖, a pass over the weights as long as the layer's own; merged, the logits are the same
    /// to float rounding (LoraTests.PeftDoraAdapterGivesPyTorchsLogitsMergesAndSavesAsPeft).</summary>
    private static (Gpt2Model Model, ITokenizer Tokenizer) LoadModel(string model, string? vocab, string? adapter, string device)
    {
        var on = DeviceOption.Resolve(device);
        var (gpt, tokenizer) = Gpt2ModelFiles.Load(model, vocab);
        if (adapter != null && Lora.LoadAdapter(gpt, adapter).Config.UseDora) Lora.Merge(gpt);
        gpt.To(on);
        return (gpt, tokenizer);
    }

    public static Command Generate()
    {
        var model = ModelOption();
        var vocab = VocabOption();
        var adapter = AdapterOption();
        var prompt = new Option<string?>("--prompt") { Description = "Text to continue (default: the end-of-text token, i.e. unconditional)." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens to generate at most.", DefaultValueFactory = _ => 100 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 is greedy decoding.", DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0: all).", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "Sample within the smallest set of tokens of total probability p.", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 42 };
        var device = DeviceOption.Create();
        var stop = new Option<string[]>("--stop") { Description = "Stop when the output contains this text (repeatable); it is not printed.", AllowMultipleArgumentsPerToken = false };
        maxTokens.NonNegative(1_000_000);
        temperature.NonNegative(100);
        topK.NonNegative(int.MaxValue);
        topP.Within(0, 1, minExclusive: true);
        var command = new Command("generate", "Continue a prompt with a GPT-2, streaming the tokens as they are produced (statistics go to stderr).")
        {
            model, vocab, adapter, prompt, maxTokens, temperature, topK, topP, seed, stop, device,
        };
        command.SetAction(p =>
        {
            var (gpt, tokenizer) = LoadModel(p.GetValue(model)!, p.GetValue(vocab), p.GetValue(adapter), p.GetValue(device)!);
            var text = p.GetValue(prompt);
            int[] ids = text is { Length: > 0 } ? Encode(tokenizer, text, "--prompt")
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

    /// <summary>A text file given on the command line, read with a size cap (a device or pipe is an error naming it).</summary>
    internal static string ReadText(string path) => BoundedFile.ReadAllText(path, BoundedFile.TextFileLimit, "a text file");

    /// <summary>The ids of <paramref name="text"/>; a character the vocabulary lacks is an error naming where the text came from.</summary>
    internal static int[] Encode(ITokenizer tokenizer, string text, string source)
    {
        try
        {
            return tokenizer.Encode(text);
        }
        catch (ArgumentException e) when (e.GetType() == typeof(ArgumentException))
        {
            throw new CliException($"{source}: {e.Message.Replace($" (Parameter '{e.ParamName}')", "")}");
        }
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
        var adapter = AdapterOption();
        var text = new Option<string>("--text") { Description = "Text file to score.", Required = true };
        var context = new Option<int?>("--context") { Description = "Window length (default: the model's context)." };
        var stride = new Option<int?>("--stride") { Description = "Window step; each window scores only the tokens the previous one did not (default: half the window)." };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Score only the first N tokens of the text." };
        context.Within(2, 1 << 20);
        stride.Positive(1 << 20);
        maxTokens.Positive(int.MaxValue);
        var device = DeviceOption.Create();
        var command = new Command("perplexity", "Sliding-window perplexity of a GPT-2 on a text file.") { model, vocab, adapter, text, context, stride, maxTokens, device };
        command.SetAction(p =>
        {
            var (gpt, tokenizer) = LoadModel(p.GetValue(model)!, p.GetValue(vocab), p.GetValue(adapter), p.GetValue(device)!);
            var path = p.GetValue(text)!;
            var tokens = Encode(tokenizer, ReadText(path), path);
            if (p.GetValue(maxTokens) is { } max && max < tokens.Length) tokens = tokens[..max];
            if (tokens.Length < 2) throw new CliException($"{path}: {tokens.Length} token(s) to score; perplexity needs at least two.");
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
        valFraction.Within(0, 1, maxExclusive: true);
        shardTokens.Positive(int.MaxValue);
        var command = new Command("prepare", "Tokenize text files into llm.c-format token shards (train_*.bin, val_*.bin) for `nabla train gpt --data`.")
        {
            input, output, tokenizerKind, vocab, valFraction, shardTokens,
        };
        command.SetAction(p =>
        {
            var files = p.GetValue(input)!;
            var texts = files.Select(ReadText).ToList();
            var dir = p.GetValue(output)!;
            Directory.CreateDirectory(dir);
            ITokenizer tokenizer = p.GetValue(tokenizerKind)!.ToLowerInvariant() switch
            {
                "char" => CharTokenizer.FromText(string.Concat(texts)),
                "gpt2" => p.GetValue(vocab) is { } v ? TokenizerFiles.Load(v) : throw new CliException("--tokenizer gpt2 needs --vocab DIR (tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe)."),
                var other => throw new CliException($"--tokenizer: unknown tokenizer '{other}' (gpt2, char)."),
            };
            var train = new List<int>();
            var val = new List<int>();
            int? separator = tokenizer is Gpt2Tokenizer { EndOfTextId: { } eot } ? eot : null;
            foreach (var (file, text) in files.Zip(texts))
            {
                var ids = Encode(tokenizer, text, file);
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
        vocabSize.Within(257, 1_000_000); // 256 byte tokens come first
        var command = new Command("train-tokenizer", "Learn a GPT-2-style byte-level BPE vocabulary from text (writes encoder.json + vocab.bpe).") { input, output, vocabSize };
        command.SetAction(p =>
        {
            var files = p.GetValue(input)!;
            var texts = files.Select(ReadText).ToList();
            var clock = Stopwatch.StartNew();
            var tokenizer = new BpeTrainer(p.GetValue(vocabSize)).Train(texts);
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
                (null, { } f) => ReadText(f),
                _ => throw new CliException("Give exactly one of --text and --file."),
            };
            if (p.GetValue(decode))
            {
                var ids = input.Split((char[])[' ', '\n', '\t', ','], StringSplitOptions.RemoveEmptyEntries).Select(s =>
                    int.TryParse(s, out var id) && id >= 0 && id < tokenizer.VocabSize ? id : throw new CliException($"'{s}' is not a token id of this vocabulary (0..{tokenizer.VocabSize - 1}).")).ToArray();
                Console.Write(tokenizer.Decode(ids));
                Console.WriteLine();
            }
            else Console.WriteLine(string.Join(' ', tokenizer is Gpt2Tokenizer bpe ? bpe.Encode(input, allowSpecialTokens: true) : Encode(tokenizer, input, p.GetValue(file) ?? "--text")));
            return 0;
        });
        return command;
    }

    /// <summary>The files of a published GPT-2, each with its SHA-256 pinned here: Hugging Face's config and
    /// weights at a fixed revision, OpenAI's tokenizer files (the same as tiktoken's). Only gpt2 is pinned; the
    /// larger sizes need a --manifest that lists their hashes, since a file that cannot be verified is refused.</summary>
    public static IReadOnlyList<RemoteFile> OfficialFiles(string name, string? baseUrl = null)
    {
        if (PublishedClassifier.Find(name) is { } classifier) return [classifier.Weights(baseUrl)];
        const string gpt2Revision = "607a30d783dfa663caf39e06633721c8d4cfcd7e";
        var repo = name switch
        {
            "gpt2" => $"https://huggingface.co/openai-community/gpt2/resolve/{gpt2Revision}/",
            "gpt2-medium" or "gpt2-large" or "gpt2-xl" => throw new CliException(
                $"{name}: no pinned SHA-256 for its weights in this version of nabla; pass --manifest FILE listing name, url and sha256 of each file."),
            _ => throw new CliException($"Unknown model '{name}' (gpt2, {string.Join(", ", PublishedClassifier.All.Select(m => m.Name))}; gpt2-medium, gpt2-large and gpt2-xl with --manifest)."),
        };
        const string openai = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/";
        return
        [
            new("config.json", (baseUrl ?? repo) + "config.json", "0daed7749b4f02b8f76240d5444551d7b08712dab4d0adb8239c56ba823bb7b4"),
            new("model.safetensors", (baseUrl ?? repo) + "model.safetensors", "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707"),
            new("encoder.json", (baseUrl ?? openai) + "encoder.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
            new("vocab.bpe", (baseUrl ?? openai) + "vocab.bpe", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
        ];
    }

    /// <summary>Reads a --manifest: a JSON list of {name, url, sha256}; every entry is checked before anything is downloaded.</summary>
    public static IReadOnlyList<RemoteFile> ReadManifest(string path)
    {
        List<RemoteFile?>? files;
        try
        {
            files = JsonSerializer.Deserialize<List<RemoteFile?>>(BoundedFile.ReadAllText(path, 1 << 20, "a download manifest"),
                new JsonSerializerOptions { PropertyNameCaseInsensitive = true });
        }
        catch (JsonException e)
        {
            throw new CliException($"{path}: not a manifest (a JSON list of {{\"name\", \"url\", \"sha256\"}}): {ErrorText.Json(e)}.");
        }
        if (files is not { Count: > 0 }) throw new CliException($"{path}: the manifest lists no files.");
        var names = new HashSet<string>();
        foreach (var file in files)
        {
            if (file is null) throw new CliException($"{path}: an entry of the manifest is null.");
            try { Downloader.Validate(file, path); }
            catch (DownloadException e) { throw new CliException(e.Message); }
            if (!names.Add(file.Name)) throw new CliException($"{path}: {file.Name} is listed twice.");
        }
        return files!;
    }

    public static Command ModelFetch()
    {
        var name = new Argument<string>("name") { Description = "gpt2, resnet18 or vit-tiny (or with --manifest, the folder name under the cache)." };
        var cache = new Option<string?>("--cache") { Description = "Where to put it (default: $NABLA_DATA/models/NAME, or ~/.cache/nabla/models/NAME)." };
        var baseUrl = new Option<string?>("--base-url") { Description = "Download from this mirror (one folder with all files) instead of the official hosts; the pinned hashes still apply." };
        var manifest = new Option<string?>("--manifest") { Description = "JSON list of {name, url, sha256} to fetch instead of the built-in list; every file needs its sha256." };
        var stallTimeout = new Option<double>("--stall-timeout") { Description = "Seconds without receiving data after which a download is abandoned.", DefaultValueFactory = _ => Downloader.DefaultStallTimeout.TotalSeconds };
        stallTimeout.Positive(24 * 3600);
        var command = new Command("fetch", "Download a published GPT-2 (weights, config, tokenizer) or image classifier and check every file's SHA-256.") { name, cache, baseUrl, manifest, stallTimeout };
        command.SetAction(async (p, cancel) =>
        {
            var model = p.GetValue(name)!;
            var files = p.GetValue(manifest) is { } m ? ReadManifest(m) : OfficialFiles(model, p.GetValue(baseUrl));
            if (p.GetValue(cache) == null && (model is "" or "." or ".." || model.IndexOfAny(['/', '\\']) >= 0))
                throw new CliException($"'{model}' is not a plain name for a folder of the cache (give --cache DIR).");
            var dir = p.GetValue(cache) ?? Path.Combine(Downloader.CacheRoot, "models", model);
            // No overall timeout: a large file on a slow line may take hours; a stall is caught by --stall-timeout.
            using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
            foreach (var file in files)
            {
                try
                {
                    var path = await Downloader.FetchAsync(file, dir, http, stallTimeout: TimeSpan.FromSeconds(p.GetValue(stallTimeout)), cancel: cancel);
                    Console.WriteLine($"{file.Name}: ok ({new FileInfo(path).Length:N0} bytes, sha256 {file.Sha256})");
                }
                catch (DownloadException e)
                {
                    throw new CliException(e.Message);
                }
            }
            var classifier = PublishedClassifier.Find(model);
            classifier?.WriteConfig(dir);
            Console.WriteLine(classifier != null ? $"{model} is in {dir}; run it with: nabla classify --model {model} IMAGE"
                : $"{model} is in {dir}; run it with: nabla generate --model {dir} --prompt \"Hello\"");
            return 0;
        });
        var group = new Command("model", "Manage pretrained models.");
        group.Subcommands.Add(command);
        return group;
    }
}
