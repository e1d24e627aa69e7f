using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nabla.Cli.Runs;
using Nabla.Cli.Ui;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Quantization;
using Nabla.Text;
using Nabla.Training;

namespace Nabla.Cli.Commands;

/// <summary>Everything that defines a GPT fine-tuning run; saved as config.json so --resume rebuilds the same run.</summary>
public sealed record GptFinetuneConfig
{
    /// <summary>The base model (never written to: a checkpoint holds only what trains).</summary>
    public string Model { get; init; } = "";
    public string Text { get; init; } = "";
    /// <summary>SHA-256 of the text when the run started, so a resume on a changed file is refused.</summary>
    public string TextSha256 { get; init; } = "";
    /// <summary>Share of the text's tokens (its end) held out for validation.</summary>
    public double ValFraction { get; init; }
    /// <summary>The adapter to train; null trains every weight (full fine-tuning, the baseline LoRA is measured against).</summary>
    public LoraConfig? Lora { get; init; }
    /// <summary>--trainable-tokens: how many rows of the token embedding train whole beside the adapter; the run picks
    /// them (<see cref="Lora.MostMispredictedTokens"/>) and records them in <see cref="LoraConfig.TrainableTokenIndices"/>.</summary>
    public int TrainableTokens { get; init; }
    /// <summary>QLoRA: the format (nf4, q4_0, q8_0) the base's linear layers are held in while the adapter trains; null keeps them float.</summary>
    public string? Quantize { get; init; }
    public int BatchSize { get; init; }
    public int SequenceLength { get; init; }
    public int SampleEvery { get; init; }
    public ulong Seed { get; init; }
    public LanguageModelTrainingOptions Training { get; init; } = new();

    public string? Problem()
    {
        if (string.IsNullOrEmpty(Model) || string.IsNullOrEmpty(Text)) return "\"Model\" or \"Text\" is missing";
        if (ValFraction is < 0 or >= 1 || double.IsNaN(ValFraction)) return $"validation fraction {ValFraction} is not in [0, 1)";
        if (Lora is { } l && (l.R is < 1 or > 1 << 16 || !(l.LoraAlpha > 0) || !float.IsFinite(l.LoraAlpha) || l.LoraDropout is < 0 or >= 1 || l.TargetModules.Count == 0
                || l.Bias is not (NN.Lora.BiasNone or NN.Lora.BiasAll) || l.ModulesToSave is null))
            return "the LoRA settings are out of range";
        if (Training is { LoraPlusRatio: not 1 } && Lora == null) return "a LoRA+ ratio is set without a LoRA adapter";
        if (TrainableTokens < 0 || (TrainableTokens > 0 && Lora == null)) return $"{TrainableTokens} trainable tokens need a LoRA adapter and a count of at least 0";
        if (Quantize != null && (Lora == null || !QuantizationFormats.TryParse(Quantize, out _)))
            return $"quantisation \"{Quantize}\" needs a LoRA adapter and one of nf4, q4_0, q8_0";
        if (BatchSize is < 1 or > 1 << 20 || SequenceLength is < 1 or > 1 << 20 || SampleEvery < 0)
            return $"batch size {BatchSize}, sequence length {SequenceLength} or sample interval {SampleEvery} is out of range";
        return Training is null ? "\"Training\" is missing" : GptRunConfig.TrainingProblem(Training);
    }
}

/// <summary>
/// `nabla finetune gpt`: trains a LoRA adapter (or, with --full, every weight) of a GPT-2 on a text file, with the
/// progress, metrics, charts, checkpoints and resume of `nabla train gpt`. The adapter goes into the run directory in
/// PEFT's layout, for `nabla generate --model BASE --adapter RUN` and `nabla lora merge`.
/// </summary>
public static class FinetuneGptCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "The base model: a Hugging Face GPT-2 directory or a run directory of `nabla train gpt` (required for a new run)." };
        var text = new Option<string?>("--text") { Description = "Text file to fine-tune on, tokenized with the base model's tokenizer (required for a new run)." };
        var valFraction = new Option<double>("--val-fraction") { Description = "Share of the text (its end) held out for validation.", DefaultValueFactory = _ => 0.1 };
        var rank = new Option<int>("--lora-r") { Description = "Rank r of the adapter's matrices A (r × in) and B (out × r).", DefaultValueFactory = _ => 8 };
        var alpha = new Option<float>("--lora-alpha") { Description = "LoRA alpha: the update B·A is scaled by alpha/r.", DefaultValueFactory = _ => 16 };
        var targets = new Option<string>("--targets") { Description = "Comma-separated module names (or name endings, as PEFT matches them) that get an adapter; '*' matches within a name part (mlp.*); lm_head (or wte): the tied token embedding and head, one adapter for both.", DefaultValueFactory = _ => "c_attn,c_proj" };
        var dropout = new Option<float>("--lora-dropout") { Description = "Dropout on the adapter's input.", DefaultValueFactory = _ => 0 };
        var rsLora = new Option<bool>("--rslora") { Description = "Scale by alpha/√r (rank-stabilised LoRA) instead of alpha/r." };
        var dora = new Option<bool>("--dora") { Description = "DoRA (PEFT's use_dora): each adapted linear layer also learns the length of each output's weight row (out parameters per layer)." };
        var loraPlus = new Option<float>("--loraplus-ratio") { Description = "LoRA+: the B matrices and the trained vectors (biases, norms, DoRA magnitudes) learn at this multiple of --lr (PEFT's create_loraplus_optimizer; its authors suggest 16).", DefaultValueFactory = _ => 1 };
        var loraBias = new Option<string>("--lora-bias") { Description = "PEFT's bias: none, or all (every bias of the model, layer norms' too, trains and is saved with the adapter).", DefaultValueFactory = _ => Lora.BiasNone };
        var modulesToSave = new Option<string?>("--modules-to-save") { Description = "Comma-separated modules (matched as --targets are) that train whole and are saved with the adapter, PEFT's modules_to_save (e.g. ln_f)." };
        loraBias.Require(v => v is Lora.BiasNone or Lora.BiasAll, v => $"--lora-bias must be none or all, got {v}{(v == "lora_only" ? " (PEFT saves no bias for lora_only: see docs/lora.md)" : "")}.");
        var trainableTokens = new Option<int>("--trainable-tokens") { Description = "Also train whole the token-embedding rows (tied to the head) of the N tokens whose frequency in --text the base mispredicts most (PEFT's trainable_token_indices)." };
        trainableTokens.NonNegative(1 << 20);
        var full = new Option<bool>("--full") { Description = "Train every weight instead of an adapter (the baseline LoRA is compared against); writes model/ instead of an adapter." };
        var quantize = new Option<string?>("--quantize") { Description = "QLoRA: hold the base's linear layers in nf4, q4_0 or q8_0 (frozen, gradients flow through them) while the adapter trains; the adapter applies to the float base." };
        valFraction.Within(0, 1, maxExclusive: true);
        rank.Positive(1 << 16);
        alpha.Positive(1e6);
        dropout.Within(0, 1, maxExclusive: true);
        loraPlus.Positive(1e6);
        var shared = new GptTrainingOptions("finetune-gpt", defaultWeightDecay: 0);

        var command = new Command("gpt", "Fine-tune a GPT-2 on a text file with a LoRA adapter (PEFT's file layout) or, with --full, every weight.")
        {
            model, text, valFraction, rank, alpha, targets, dropout, rsLora, dora, loraPlus, loraBias, modulesToSave, trainableTokens, full, quantize,
        };
        shared.AddTo(command);
        command.SetAction((p, cancel) =>
        {
            var device = shared.Run.TrainingDevice(p); // first: a missing GPU is the error to report
            var (dir, resume) = shared.Run.RunDirectory(p);
            var configPath = Path.Combine(dir, "config.json");
            GptFinetuneConfig config;
            if (resume) config = RunConfigFile.Read<GptFinetuneConfig>(configPath, c => c.Problem());
            else
            {
                var basePath = p.GetValue(model) ?? throw new CliException("--model is required: the base model to fine-tune.");
                var textPath = p.GetValue(text) ?? throw new CliException("--text is required: the text file to fine-tune on.");
                if (!File.Exists(textPath)) throw new CliException($"--text {textPath}: file not found.");
                bool lora = !p.GetValue(full);
                if (!lora && (p.GetValue(dora) || p.GetValue(loraPlus) != 1))
                    throw new CliException("--dora and --loraplus-ratio shape an adapter's training; --full trains every weight without one, so give one or the other.");
                if (!lora && p.GetValue(trainableTokens) > 0)
                    throw new CliException("--trainable-tokens trains some embedding rows beside an adapter; --full trains them all already, so give one or the other.");
                var quantizeFormat = p.GetValue(quantize);
                if (quantizeFormat != null)
                {
                    if (!lora) throw new CliException("--quantize trains an adapter on a quantised base (QLoRA); --full trains every weight in float, so give one or the other.");
                    if (!QuantizationFormats.TryParse(quantizeFormat, out var parsed)) throw new CliException($"--quantize: unknown format '{quantizeFormat}' (nf4, q4_0, q8_0).");
                    quantizeFormat = parsed.Name();
                }
                config = new GptFinetuneConfig
                {
                    Model = basePath,
                    Text = textPath,
                    TextSha256 = RunConfigFile.Sha256(textPath),
                    ValFraction = p.GetValue(valFraction),
                    Lora = lora ? new LoraConfig
                    {
                        R = p.GetValue(rank), LoraAlpha = p.GetValue(alpha), LoraDropout = p.GetValue(dropout), UseRsLora = p.GetValue(rsLora), UseDora = p.GetValue(dora),
                        TargetModules = ParseNames("--targets", p.GetValue(targets)!),
                        Bias = p.GetValue(loraBias)!,
                        ModulesToSave = p.GetValue(modulesToSave) is { } names ? ParseNames("--modules-to-save", names) : [],
                        FanInFanOut = true, // GPT-2's projections are Hugging Face Conv1D layers, stored (in, out)
                        BaseModelNameOrPath = basePath,
                    } : null,
                    TrainableTokens = p.GetValue(trainableTokens),
                    Quantize = quantizeFormat,
                    BatchSize = p.GetValue(shared.BatchSize) ?? 8,
                    SequenceLength = p.GetValue(shared.SequenceLength) ?? 128,
                    SampleEvery = p.GetValue(shared.SampleEvery) ?? 0,
                    Seed = p.GetValue(shared.Seed),
                    // A rank-r adapter takes a larger step than the whole network can (LoRA paper; PEFT's examples use 1e-4 to 1e-3).
                    Training = shared.Training(p, steps: 500, learningRate: lora ? 1e-3f : 3e-4f, evalEvery: 50, checkpointEvery: 100) with { LoraPlusRatio = p.GetValue(loraPlus) },
                };
                RunDirectory.RefuseExistingRun(dir, configPath);
            }
            return Task.FromResult(Finetune(config, dir, newRun: !resume, device, CliErrors.CommandPath(p), cancel));
        });
        return command;
    }

    // Token text quoted as JSON strings, so spaces and newlines show, without escaping apostrophes and letters.
    private static readonly JsonSerializerOptions ReadableJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static IReadOnlyList<string> ParseNames(string option, string list)
    {
        var names = list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        return names.Length > 0 ? names : throw new CliException($"{option}: give at least one module name (e.g. {(option == "--targets" ? "c_attn,c_proj" : "ln_f")}).");
    }

    /// <param name="newRun">Write config.json once the base, the text and the targets have been checked, so a
    /// mistyped option does not leave a run directory that only --resume would accept.</param>
    private static int Finetune(GptFinetuneConfig config, string dir, bool newRun, Device device, string command, CancellationToken cancel)
    {
        if (config.Quantize != null && !device.IsCpu)
            throw new CliException($"--device {device}: a quantised base (--quantize {config.Quantize}) runs on the CPU only (its kernels are CPU kernels); use --device cpu.");
        if (config.TrainableTokens > 0 && !device.IsCpu)
            throw new CliException($"--device {device}: --trainable-tokens replaces rows of the table on the host (no device kernel for it yet); use --device cpu.");
        Generator.ManualSeed(config.Seed); // the adapter's initial A (drawn by Lora.Apply from the default generator)
        // A Q8_0/Q4_0 GGUF base stays quantised for an adapter (QLoRA as it stands); --full and --quantize need float weights.
        var (model, tokenizer) = Gpt2ModelFiles.Load(config.Model, dequantizeGguf: config.Lora == null || config.Quantize != null);
        if (config.Quantize is { } formatName)
        {
            QuantizationFormats.TryParse(formatName, out var format); // checked when the run was configured
            if (Gpt2Quantization.FormatOf(model) is { } already)
                throw new CliException($"--quantize {formatName}: {config.Model} is already quantised ({already.Name()}); give the float model.");
            try { Gpt2Quantization.Quantize(model, format, doubleQuantizeScales: format == QuantizationFormat.Nf4); }
            catch (ArgumentException e) { throw new CliException($"--quantize {formatName}: {config.Model}: {e.Message}"); }
        }
        if (config.SequenceLength > model.Config.MaxSequenceLength)
            throw new CliException($"--seq-len {config.SequenceLength} is longer than the context of {config.Model} ({model.Config.MaxSequenceLength}).");
        RunConfigFile.RequireUnchanged(config.Text, config.TextSha256, dir);
        var tokens = LanguageModelCommands.Encode(tokenizer, LanguageModelCommands.ReadText(config.Text), config.Text);
        int cut = (int)(tokens.Length * (1 - config.ValFraction));
        var train = new TokenBatchLoader(tokens[..cut], config.BatchSize, config.SequenceLength, config.Seed, $"{config.Text} (training part)");
        var validation = config.ValFraction > 0
            ? new TokenBatchLoader(tokens[cut..], config.BatchSize, config.SequenceLength, source: $"{config.Text} (validation part, --val-fraction {config.ValFraction})")
            : null;

        LoraSummary summary;
        if (config.Lora is { TrainableTokenIndices.Count: 0 } fresh && config.TrainableTokens > 0) // a new run: pick them once, for config.json
        {
            if (config.TrainableTokens > model.Config.VocabSize)
                throw new CliException($"--trainable-tokens {config.TrainableTokens} is more than the vocabulary of {config.Model} ({model.Config.VocabSize}).");
            model.Eval();
            var chosen = Lora.MostMispredictedTokens(ids => model.Forward(ids), tokens.AsSpan(0, cut), model.Config.VocabSize, config.TrainableTokens,
                window: Math.Min(config.SequenceLength, model.Config.MaxSequenceLength));
            config = config with { Lora = fresh with { TrainableTokenIndices = chosen } };
        }
        if (config.Lora is { } lora)
        {
            try { summary = Lora.Apply(model, lora.TargetModules, lora.R, lora.LoraAlpha, lora.LoraDropout, lora.UseRsLora, bias: lora.Bias, modulesToSave: lora.ModulesToSave, trainableTokens: lora.TrainableTokenIndices, useDora: lora.UseDora); }
            catch (ArgumentException e) when (e.GetType() == typeof(ArgumentException))
            { throw new CliException($"{(lora.ModulesToSave.Count > 0 || lora.Bias != Lora.BiasNone ? "--targets/--modules-to-save/--lora-bias" : "--targets")}: {e.Message}"); }
        }
        else summary = new LoraSummary([], model.TrainableParameterCount, model.ParameterCount);

        model.To(device); // the adapter's matrices with it
        var validationBatches = validation == null ? null : DeviceBatchSource.On(validation, device);

        if (newRun) RunConfigFile.WriteNew(dir, Path.Combine(dir, "config.json"), config);
        // Checkpoints hold the trainable parameters and the optimizer; the base comes from --model again on resume.
        var trainer = LanguageModelTraining.CreateTrainer(model, DeviceBatchSource.On(train, device), validationBatches, config.Training, dir, checkpointTrainableOnly: true);
        var resumed = trainer.TryResume();
        Console.WriteLine($"base: {config.Model}: GPT-2 {model.Config.Layers} layers, {model.Config.Heads} heads, {model.Config.Channels} channels, " +
            $"vocabulary {model.Config.VocabSize}, context {model.Config.MaxSequenceLength}{(device.IsCpu ? "" : $"; on {device}")}");
        Console.WriteLine(config.Lora is { } l
            ? $"{(l.UseDora ? "DoRA" : "LoRA")} r={l.R}, alpha={l.LoraAlpha}{(l.UseRsLora ? " (rsLoRA)" : "")}{(config.Training.LoraPlusRatio != 1 ? $", LoRA+ ratio {config.Training.LoraPlusRatio}" : "")}, dropout {l.LoraDropout} on {summary.WrappedModules.Count} layers ({string.Join(", ", l.TargetModules)})" +
              (l.Bias != Lora.BiasNone ? $"; bias {l.Bias}" : "") + (l.ModulesToSave.Count > 0 ? $"; trained whole: {string.Join(", ", l.ModulesToSave)}" : "")
            : "full fine-tuning: every weight trains");
        if (config.Lora is { TrainableTokenIndices: { Count: > 0 } picked })
            Console.WriteLine($"trainable tokens: {picked.Count} rows of the tied embedding, the most mispredicted first: " +
                string.Join(" ", picked.Take(12).Select(t => JsonSerializer.Serialize(tokenizer.Decode([t]), ReadableJson))) + (picked.Count > 12 ? " …" : ""));
        if (Gpt2Quantization.FormatOf(model) is { } held)
            Console.WriteLine($"QLoRA: the base's linear layers are held in {held.Name()}, {Mib(model.Modules().OfType<QuantizedLinear>().Sum(q => q.Weight.ByteCount))} (frozen; the adapter trains through them)");
        Console.WriteLine(summary);
        Console.WriteLine($"data: {config.Text}: {cut:N0} training and {tokens.Length - cut:N0} validation tokens; " +
            $"{config.Training.Steps} steps of {config.BatchSize * config.SequenceLength * config.Training.GradientAccumulation:N0} tokens");
        TrainingLoop.PrintResume(resumed);

        BufferPool.ResetPeak();
        var sampleGenerator = new Generator(config.Seed + 1);
        if (!GptTrainCommand.RunTrainer(trainer, dir, config.SequenceLength, config.SampleEvery,
                () => GptTrainCommand.Sample(model, tokenizer, null, sampleGenerator), command, cancel))
            return 130;
        long peak = BufferPool.PeakLiveBytes;
        long optimizerBytes = trainer.Optimizer.StateDict().Values.Sum(t => (long)t.Count * t.DType.SizeInBytes());

        string saved;
        if (config.Lora is { } adapter)
        {
            Lora.SaveAdapter(model, dir, adapter);
            saved = $"{Lora.WeightsFile} + {Lora.ConfigFile} for `nabla generate --model {config.Model} --adapter {dir}`";
        }
        else
        {
            Gpt2ModelFiles.Save(model, tokenizer, Path.Combine(dir, Gpt2ModelFiles.RunModelFolder));
            saved = $"model/ for `nabla generate --model {dir}`";
        }
        GptTrainCommand.WriteLossChart(dir);
        double? valLoss = validationBatches != null ? trainer.Evaluate(validationBatches, config.Training.EvalBatches).Loss : null;
        WriteSummary(dir, summary, peak, optimizerBytes, valLoss, resumed != null);
        Console.WriteLine($"peak tensor memory while training{(resumed != null ? " (since the resume)" : "")}: {Mib(peak)}; optimizer state: {Mib(optimizerBytes)}" +
            (valLoss is { } v ? $"; validation loss {v:F4}" : ""));
        Console.WriteLine($"run saved to {dir} (config.json, checkpoints/, metrics.jsonl, loss.png, summary.json, {saved})");
        return 0;
    }

    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024):F2} MiB";

    /// <summary>summary.json: the numbers a LoRA-versus-full comparison needs, as this run measured them.</summary>
    private static void WriteSummary(string dir, LoraSummary summary, long peakBytes, long optimizerBytes, double? valLoss, bool resumed)
    {
        var json = new JsonObject
        {
            ["trainable_parameters"] = summary.TrainableParameters,
            ["total_parameters"] = summary.TotalParameters,
            ["trainable_percent"] = summary.TrainablePercent,
            ["peak_tensor_bytes"] = peakBytes,
            ["peak_measured_since_resume"] = resumed,
            ["optimizer_state_bytes"] = optimizerBytes,
            ["val_loss"] = valLoss,
        };
        AtomicFile.WriteAllText(Path.Combine(dir, "summary.json"), json.ToJsonString(RunConfigFile.Json));
    }
}
