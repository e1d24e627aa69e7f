using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Nabla.Cli.Runs;
using Nabla.Cli.Ui;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Text;
using Nabla.Optim;
using Nabla.Text;
using Nabla.Training;

namespace Nabla.Cli.Commands;

/// <summary>Everything that defines a char-lstm run; saved as config.json.</summary>
public sealed record CharLstmConfig
{
    public string Text { get; init; } = "";
    /// <summary>SHA-256 of the text when the run started, so a resume on a changed file is refused.</summary>
    public string TextSha256 { get; init; } = "";
    public double ValFraction { get; init; } = 0.05;
    public int SequenceLength { get; init; } = 128;
    public int BatchSize { get; init; } = 32;
    public int Steps { get; init; } = 2000;
    public double TimeLimitMinutes { get; init; }
    public int EmbeddingDim { get; init; } = 64;
    public int Hidden { get; init; } = 256;
    public int Layers { get; init; } = 2;
    public float Dropout { get; init; } = 0.1f;
    public float LearningRate { get; init; } = 2e-3f;
    public float Clip { get; init; } = 1f;
    public int EvalEvery { get; init; } = 100;
    public int EvalBatches { get; init; } = 10;
    public float[] Temperatures { get; init; } = [0.5f, 0.8f, 1.0f];
    public int SampleLength { get; init; } = 300;
    public ulong Seed { get; init; } = 1;

    /// <summary>What is wrong with a configuration read back for --resume (the options' ranges), or null.</summary>
    public string? Problem()
    {
        if (string.IsNullOrEmpty(Text) || Temperatures is null) return "\"Text\" or \"Temperatures\" is missing";
        if (ValFraction is <= 0 or >= 1 || double.IsNaN(ValFraction) || SequenceLength is < 1 or > 1 << 16 || BatchSize is < 1 or > 1 << 16 || Steps < 1)
            return $"validation fraction {ValFraction}, sequence length {SequenceLength}, batch size {BatchSize} or steps {Steps} is out of range";
        if (EmbeddingDim is < 1 or > 1 << 14 || Hidden is < 1 or > 1 << 14 || Layers is < 1 or > 64 || !(Dropout is >= 0 and < 1))
            return "a model size or the dropout is out of range";
        if (!(LearningRate is > 0 and <= 100) || !(Clip is >= 0 and <= 1e6f) || !(TimeLimitMinutes is >= 0 and <= 1e6) || EvalEvery < 1 || EvalBatches is < 1 or > 1 << 20
            || SampleLength is < 0 or > 1 << 20 || Temperatures.Any(t => !(t is >= 0 and <= 100)))
            return "a learning rate, clipping norm, time limit, interval, sample length or temperature is out of range";
        return null;
    }
}

/// <summary>`nabla train char-lstm --text FILE`: a character-level LSTM language model, its validation bits per
/// character and samples at several temperatures.</summary>
public static class CharLstmCommand
{
    public static Command Create()
    {
        var d = new CharLstmConfig();
        var text = new Option<string?>("--text") { Description = "Text file to model (UTF-8; required for a new run)." };
        var valFraction = new Option<double>("--val-fraction") { Description = "Share of the text (its end) held out for validation, as `nabla data prepare`.", DefaultValueFactory = _ => d.ValFraction };
        var seqLen = new Option<int>("--seq-len") { Description = "Characters per training sequence (backpropagation through time).", DefaultValueFactory = _ => d.SequenceLength };
        var batchSize = new Option<int>("--batch-size") { Description = "Sequences per step.", DefaultValueFactory = _ => d.BatchSize };
        var steps = new Option<int>("--steps") { Description = "Optimisation steps.", DefaultValueFactory = _ => d.Steps };
        var timeLimit = new Option<double>("--time-limit") { Description = "Stop after this many minutes of training, wherever the steps are (0: no limit); --resume continues for as long again." };
        var embeddingDim = new Option<int>("--embedding-dim") { Description = "Character vector size.", DefaultValueFactory = _ => d.EmbeddingDim };
        var hidden = new Option<int>("--hidden") { Description = "LSTM hidden size.", DefaultValueFactory = _ => d.Hidden };
        var layers = new Option<int>("--layers") { Description = "Stacked LSTM layers.", DefaultValueFactory = _ => d.Layers };
        var dropout = new Option<float>("--dropout") { Description = "Dropout between layers and before the output.", DefaultValueFactory = _ => d.Dropout };
        var lr = new Option<float>("--lr") { Description = "Peak AdamW learning rate (warm-up, then cosine decay over --steps).", DefaultValueFactory = _ => d.LearningRate };
        var clip = new Option<float>("--clip") { Description = "Clip the global gradient norm to this (0: off).", DefaultValueFactory = _ => d.Clip };
        var evalEvery = new Option<int>("--eval-every") { Description = "Validation every N steps.", DefaultValueFactory = _ => d.EvalEvery };
        var evalBatches = new Option<int>("--eval-batches") { Description = "Validation batches (the first ones of the held-out text).", DefaultValueFactory = _ => d.EvalBatches };
        var temperatures = new Option<float[]>("--temperatures") { Description = "Sampling temperatures of the final samples (0: greedy).", DefaultValueFactory = _ => d.Temperatures, AllowMultipleArgumentsPerToken = true };
        var sampleLength = new Option<int>("--sample-length") { Description = "Characters per sample.", DefaultValueFactory = _ => d.SampleLength };
        var seed = new Option<ulong>("--seed") { Description = "Seed for the initial weights, the batch order and the samples.", DefaultValueFactory = _ => d.Seed };
        var run = new RunOptions("char-lstm");
        var quiet = new Option<bool>("--quiet") { Description = "Print only the final result." };
        valFraction.Within(0, 1, minExclusive: true, maxExclusive: true);
        seqLen.Positive(1 << 16);
        batchSize.Positive(1 << 16);
        steps.Positive(int.MaxValue);
        timeLimit.NonNegative(1e6);
        embeddingDim.Positive(1 << 14);
        hidden.Positive(1 << 14);
        layers.Positive(64);
        dropout.Within(0, 1, maxExclusive: true);
        lr.Positive(100);
        clip.NonNegative(1e6);
        evalEvery.Positive(int.MaxValue);
        evalBatches.Positive(1 << 20);
        temperatures.Require(ts => ts.All(t => float.IsFinite(t) && t is >= 0 and <= 100), ts => $"--temperatures must be numbers from 0 to 100, got {string.Join(' ', ts)}.");
        sampleLength.NonNegative(1 << 20);

        var command = new Command("char-lstm", "Train a character-level LSTM language model on a text file; report validation bits per character and samples.")
        {
            text, valFraction, seqLen, batchSize, steps, timeLimit, embeddingDim, hidden, layers, dropout, lr, clip, evalEvery, evalBatches,
            temperatures, sampleLength, seed, quiet,
        };
        run.AddTo(command, quiet);
        command.SetAction((p, cancel) =>
        {
            var device = run.TrainingDevice(p); // first: a missing GPU is the error to report
            var (directory, resume) = run.RunDirectory(p);
            var configPath = Path.Combine(directory, "config.json");
            var config = resume ? RunConfigFile.Read<CharLstmConfig>(configPath, c => c.Problem()) : new CharLstmConfig
            {
                Text = p.GetValue(text) ?? throw new CliException("--text is required: the text file to model."), ValFraction = p.GetValue(valFraction), SequenceLength = p.GetValue(seqLen), BatchSize = p.GetValue(batchSize),
                Steps = p.GetValue(steps), TimeLimitMinutes = p.GetValue(timeLimit), EmbeddingDim = p.GetValue(embeddingDim), Hidden = p.GetValue(hidden),
                Layers = p.GetValue(layers), Dropout = p.GetValue(dropout), LearningRate = p.GetValue(lr), Clip = p.GetValue(clip),
                EvalEvery = p.GetValue(evalEvery), EvalBatches = p.GetValue(evalBatches), Temperatures = p.GetValue(temperatures)!,
                SampleLength = p.GetValue(sampleLength), Seed = p.GetValue(seed),
            };
            if (!resume) RunDirectory.RefuseExistingRun(directory, configPath);
            return Task.FromResult(Train(config, directory, resume, p.GetValue(quiet), device, CliErrors.CommandPath(p), cancel));
        });
        return command;
    }

    private static double BitsPerCharacter(double nats) => nats / Math.Log(2);

    /// <param name="resume">Continue the run in <paramref name="directory"/>: <paramref name="config"/> is its config.json,
    /// and the same text gives the same vocabulary and batches again.</param>
    private static int Train(CharLstmConfig config, string directory, bool resume, bool quiet, Device device, string command, CancellationToken cancel)
    {
        if (resume) RunConfigFile.RequireUnchanged(config.Text, config.TextSha256, directory);
        var corpus = BoundedFile.ReadAllText(config.Text, BoundedFile.TextFileLimit, "a text file");
        var tokenizer = CharTokenizer.FromText(corpus);
        var ids = tokenizer.Encode(corpus);
        int split = (int)(ids.Length * (1 - config.ValFraction));
        int window = config.SequenceLength + 1;
        if (split < window * config.BatchSize || ids.Length - split < window)
            throw new CliException($"{config.Text}: {ids.Length:N0} characters are too few for batches of {config.BatchSize} × {window} characters and a held-out {config.ValFraction:P0} of at least {window}.");
        var train = new TokenBatchLoader(ids[..split], config.BatchSize, config.SequenceLength, config.Seed, config.Text);
        var validation = new TokenBatchLoader(ids[split..], config.BatchSize, config.SequenceLength, source: config.Text);

        Generator.ManualSeed(config.Seed);
        var model = new CharLstm(tokenizer.VocabSize, config.EmbeddingDim, config.Hidden, config.Layers, config.Dropout);
        model.To(device);
        var validationBatches = DeviceBatchSource.On(validation, device);
        if (!resume)
        {
            config = config with { TextSha256 = RunConfigFile.Sha256(config.Text) };
            RunConfigFile.WriteNew(directory, Path.Combine(directory, "config.json"), config);
            tokenizer.Save(Path.Combine(directory, "tokenizer.json"));
        }
        var options = new TrainerOptions
        {
            Steps = config.Steps, ClipGradNorm = config.Clip, EvalEvery = config.EvalEvery, EvalBatches = config.EvalBatches,
            CheckpointEvery = config.EvalEvery * 10, Seed = config.Seed,
        };
        var optimizer = new AdamW(model.Parameters(), config.LearningRate, weightDecay: 0f);
        var schedule = new CosineWithWarmup(optimizer, Math.Max(1, Math.Min(100, config.Steps / 20)), config.Steps, config.LearningRate / 10);
        var trainer = new Trainer(model, CharLstm.Loss, DeviceBatchSource.On(train, device), optimizer, options, schedule, validationBatches, directory);
        var resumed = trainer.TryResume();
        if (!quiet)
        {
            Console.WriteLine($"data: {config.Text} — {split:N0} training and {ids.Length - split:N0} validation characters, {tokenizer.VocabSize} distinct");
            Console.WriteLine($"model: char LSTM, {config.Layers} layer(s) of {config.Hidden}, embedding {config.EmbeddingDim}, {model.ParameterCount:N0} parameters; " +
                $"{config.Steps} steps of {config.BatchSize}×{config.SequenceLength} characters{(config.TimeLimitMinutes > 0 ? $", at most {config.TimeLimitMinutes} minutes" : "")}" +
                (device.IsCpu ? "" : $"; on {device}"));
        }
        TrainingLoop.PrintResume(resumed, quiet);
        var progress = new TrainingProgress(options.Steps, "chars");
        trainer.AfterStep += s =>
        {
            if (!quiet) progress.Step(s.Step, $"loss {BitsPerCharacter(s.Loss):F3} bits/char  lr {s.LearningRate:0.0e+0}", s.SamplesPerSecond * config.SequenceLength);
        };
        trainer.AfterEvaluation += e =>
        {
            if (!quiet) progress.Line($"step {e.Step}: validation {BitsPerCharacter(e.Loss):F3} bits/char");
        };
        var clock = Stopwatch.StartNew();
        var outcome = TrainingLoop.Run(trainer, progress, command, cancel, config.TimeLimitMinutes > 0 ? TimeSpan.FromMinutes(config.TimeLimitMinutes) : null);
        if (outcome == TrainingOutcome.Interrupted) return 130;
        double minutes = clock.Elapsed.TotalMinutes;
        model.Save(Path.Combine(directory, "model.safetensors"), new Dictionary<string, string>
        {
            ["format"] = "nabla-char-lstm", ["step"] = trainer.Step.ToString(CultureInfo.InvariantCulture), ["config"] = JsonSerializer.Serialize(config),
        });
        WriteChart(directory, trainer.MetricsPath!);
        double bits = BitsPerCharacter(trainer.Evaluate(validationBatches, config.EvalBatches).Loss);
        Console.WriteLine($"validation: {bits:F3} bits/char after {trainer.Step} steps in {minutes:F1} minutes " +
            $"({config.EvalBatches} batches of {config.BatchSize}×{config.SequenceLength} held-out characters)");

        using var samples = new StringWriter();
        var generator = new Generator(config.Seed + 1);
        var prompt = tokenizer.Encode(SamplePrompt(tokenizer.Decode(ids[split..Math.Min(ids.Length, split + 1000)])));
        foreach (var temperature in config.Temperatures)
        {
            var generated = tokenizer.Decode(prompt.Concat(model.Generate(prompt, config.SampleLength, temperature, generator)));
            samples.WriteLine($"--- temperature {temperature.ToString(CultureInfo.InvariantCulture)} ---");
            samples.WriteLine(generated);
        }
        AtomicFile.WriteAllText(Path.Combine(directory, "samples.txt"), samples.ToString());
        if (!quiet) Console.Write(samples.ToString());
        if (!quiet) Console.WriteLine($"run saved to {directory} (config.json, tokenizer.json, model.safetensors, checkpoints/, metrics.jsonl, bits.png, samples.txt)");
        return 0;
    }

    /// <summary>The start (up to 20 characters) of the first whole line of the held-out text, else its first character.</summary>
    private static string SamplePrompt(string heldOut)
    {
        var lines = heldOut.Split('\n');
        var line = lines.Length > 2 && lines[1].Length > 0 ? lines[1] : heldOut;
        return line[..Math.Min(20, line.Length)];
    }

    /// <summary>bits.png: training and validation bits per character over the steps.</summary>
    private static void WriteChart(string directory, string metricsPath)
    {
        var records = MetricsLog.Read(metricsPath).ToList();
        var x = records.Where(r => r["loss"] != null).Select(r => r["step"]!.GetValue<double>()).ToArray();
        var train = records.Where(r => r["loss"] != null).Select(r => BitsPerCharacter(r["loss"]!.GetValue<double>())).ToArray();
        var validation = records.Where(r => r.ContainsKey("val_loss")).ToDictionary(r => r["step"]!.GetValue<double>(), r => r["val_loss"]?.GetValue<double>() ?? double.NaN);
        Charts.Line(Path.Combine(directory, "bits.png"), "Character LSTM", "step", "bits per character", x,
            ("train", train), ("validation", x.Select(s => validation.TryGetValue(s, out var v) ? BitsPerCharacter(v) : double.NaN).ToArray()));
    }
}
