using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nabla.Cli.Runs;
using Nabla.Cli.Ui;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.Text;
using Nabla.Training;

namespace Nabla.Cli.Commands;

/// <summary>Everything that defines a GPT training run; saved as config.json so --resume rebuilds the same run.</summary>
public sealed record GptRunConfig
{
    /// <summary>Directory of token shards from `nabla data prepare`, or null for the built-in addition task.</summary>
    public string? Data { get; init; }
    /// <summary>A pretrained model to start from (fine-tuning) instead of random weights.</summary>
    public string? From { get; init; }
    public int Layers { get; init; }
    public int Heads { get; init; }
    public int Channels { get; init; }
    public int Context { get; init; }
    public int BatchSize { get; init; }
    public int SequenceLength { get; init; }
    public int MaxDigits { get; init; } = 3;
    public LanguageModelTrainingOptions Training { get; init; } = new();
    public int SampleEvery { get; init; }
    public ulong Seed { get; init; } = 1337;

    /// <summary>What is wrong with a run configuration read back for --resume (the same ranges as the options), or null.</summary>
    public string? Problem()
    {
        if (Training is not { } t) return "\"Training\" is missing";
        if (Layers is < 1 or > 1024 || Heads is < 1 or > 1024 || Channels is < 1 or > 1 << 16 || Context is < 1 or > 1 << 20)
            return $"model sizes (layers {Layers}, heads {Heads}, channels {Channels}, context {Context}) are out of range";
        if (BatchSize is < 1 or > 1 << 20 || SequenceLength is < 0 or > 1 << 20 || MaxDigits is < 1 or > 9 || SampleEvery < 0)
            return $"batch size {BatchSize}, sequence length {SequenceLength}, digits {MaxDigits} or sample interval {SampleEvery} is out of range";
        return TrainingProblem(t);
    }

    /// <summary>What is wrong with the optimisation settings of a run configuration read back for --resume, or null.</summary>
    internal static string? TrainingProblem(LanguageModelTrainingOptions t)
    {
        static bool Finite(float v, float min) => float.IsFinite(v) && v >= min;
        if (t.Steps < 1 || t.GradientAccumulation is < 1 or > 1 << 20 || t.WarmupSteps < 0 || t.EvalEvery < 0 || t.EvalBatches < 0 || t.CheckpointEvery < 0)
            return $"training steps {t.Steps}, accumulation {t.GradientAccumulation} or an interval is out of range";
        if (!Finite(t.LearningRate, float.Epsilon) || !Finite(t.MinLearningRate, 0) || !Finite(t.WeightDecay, 0) || !Finite(t.ClipGradNorm, 0)
            || !Finite(t.Beta1, 0) || !Finite(t.Beta2, 0) || t.Beta1 >= 1 || t.Beta2 >= 1 || !Finite(t.LoraPlusRatio, float.Epsilon))
            return "a learning rate, weight decay, clipping norm, beta or LoRA+ ratio is not a finite number in range";
        return null;
    }
}

/// <summary>`nabla train gpt`: GPT-2 training from scratch (or fine-tuning) with checkpoints and resume.</summary>
public static class GptTrainCommand
{
    public static Command Create()
    {
        var data = new Option<string?>("--data") { Description = "Token shards from `nabla data prepare` (default: the built-in addition task)." };
        var from = new Option<string?>("--from") { Description = "Fine-tune this model (Hugging Face GPT-2 directory or run) instead of starting from random weights." };
        var layers = new Option<int?>("--layers") { Description = "Transformer blocks." };
        var heads = new Option<int?>("--heads") { Description = "Attention heads." };
        var channels = new Option<int?>("--channels") { Description = "Embedding width." };
        var context = new Option<int?>("--context") { Description = "Longest sequence the model handles." };
        var digits = new Option<int>("--digits") { Description = "Addition task: largest operand length.", DefaultValueFactory = _ => 3 };
        var ranks = DistributedRun.RanksOption();
        var zero = new Option<bool>("--zero") { Description = "With several ranks: ZeRO-1, each rank keeps the AdamW moments of its share of the parameters only (chosen anew by each --resume: checkpoints hold the whole state)." };
        layers.Positive(1024);
        heads.Positive(1024);
        channels.Positive(1 << 16);
        context.Positive(1 << 20);
        digits.Within(1, 9);
        var shared = new GptTrainingOptions("gpt", defaultWeightDecay: 0.1f);

        var command = new Command("gpt", "Train a GPT-2: with no --data, a small model learns multi-digit addition in a few minutes.")
        {
            data, from, layers, heads, channels, context, digits, ranks, zero,
        };
        shared.AddTo(command, ranks, zero); // how many ranks it trains on is this session's choice, like --device
        command.SetAction((p, cancel) => Task.FromResult(
            DistributedRun.Launch(p, ranks, shared.Run, (dir, resume, distributed) => Configure(p, dir, resume, distributed, cancel))));
        return command;

        int Configure(ParseResult p, string dir, bool resume, DistributedRun distributed, CancellationToken cancel)
        {
            var on = shared.Run.TrainingDevice(p, distributed);
            GptRunConfig config;
            var configPath = Path.Combine(dir, "config.json");
            if (resume)
            {
                config = RunConfigFile.Read<GptRunConfig>(configPath, c => c.Problem());
                config = config with { Training = config.Training with { ShardOptimizerState = p.GetValue(zero) } };
            }
            else
            {
                bool addition = p.GetValue(data) == null;
                config = new GptRunConfig
                {
                    Data = p.GetValue(data),
                    From = p.GetValue(from),
                    Layers = p.GetValue(layers) ?? (addition ? 2 : 4),
                    Heads = p.GetValue(heads) ?? 4,
                    Channels = p.GetValue(channels) ?? (addition ? 128 : 256),
                    Context = p.GetValue(context) ?? (addition ? 16 : 256),
                    BatchSize = p.GetValue(shared.BatchSize) ?? (addition ? 128 : 8),
                    SequenceLength = p.GetValue(shared.SequenceLength) ?? (addition ? 0 : 128),
                    MaxDigits = p.GetValue(digits),
                    SampleEvery = p.GetValue(shared.SampleEvery) ?? (addition ? 300 : 200),
                    Seed = p.GetValue(shared.Seed),
                    Training = shared.Training(p, steps: addition ? 1200 : 1000, learningRate: addition ? 3e-3f : 6e-4f,
                        evalEvery: addition ? 0 : 100, checkpointEvery: addition ? 300 : 200) with { ShardOptimizerState = p.GetValue(zero) },
                };
                if (distributed.IsWriter) RunConfigFile.WriteNew(dir, configPath, config);
            }
            return Train(config, dir, distributed, on, CliErrors.CommandPath(p), cancel);
        }
    }

    private static int Train(GptRunConfig config, string dir, DistributedRun distributed, Device device, string command, CancellationToken cancel)
    {
        Generator.ManualSeed(config.Seed);
        ITokenizer tokenizer;
        IBatchSource train;
        IBatchSource? validation = null;
        AdditionDataset? addition = null;
        if (config.Data == null)
        {
            addition = new AdditionDataset(config.MaxDigits, config.BatchSize, config.Seed);
            tokenizer = new CharTokenizer(AdditionDataset.Vocabulary.Select(c => c.ToString()));
            train = addition;
        }
        else
        {
            tokenizer = TokenizerFiles.Load(config.Data);
            var trainFiles = Directory.Exists(config.Data) ? Directory.GetFiles(config.Data, "train_*.bin") : [];
            var valFiles = Directory.Exists(config.Data) ? Directory.GetFiles(config.Data, "val_*.bin") : [];
            if (trainFiles.Length == 0) throw new CliException($"{config.Data}: no train_*.bin shards (make them with `nabla data prepare`).");
            train = TokenBatchLoader.FromShards(trainFiles, config.BatchSize, config.SequenceLength, config.Seed, tokenizer.VocabSize);
            if (valFiles.Length > 0) validation = TokenBatchLoader.FromShards(valFiles, config.BatchSize, config.SequenceLength, vocabularySize: tokenizer.VocabSize);
        }

        Gpt2Model model;
        if (config.From != null)
        {
            (model, var pretrainedTokenizer) = Gpt2ModelFiles.Load(config.From, config.Data, dequantizeGguf: true);
            if (pretrainedTokenizer.VocabSize != tokenizer.VocabSize)
                throw new CliException($"--from {config.From} has a vocabulary of {pretrainedTokenizer.VocabSize}, the data's tokenizer {tokenizer.VocabSize}.");
        }
        else
        {
            int T = addition?.SequenceLength ?? config.SequenceLength;
            model = new Gpt2Model(new Gpt2Config
            {
                VocabSize = tokenizer.VocabSize, MaxSequenceLength = Math.Max(config.Context, T),
                Layers = config.Layers, Heads = config.Heads, Channels = config.Channels,
            }, new Generator(config.Seed));
        }

        model.To(device);
        train = DeviceBatchSource.On(train, device);
        if (validation != null) validation = DeviceBatchSource.On(validation, device);
        var trainer = LanguageModelTraining.CreateTrainer(model, train, validation, config.Training, dir, distributed.Communicator);
        var resumed = trainer.TryResume();
        var steps = config.Training.Steps;
        int sequenceLength = addition?.SequenceLength ?? config.SequenceLength;
        int tokensPerStep = config.BatchSize * sequenceLength * config.Training.GradientAccumulation;
        Console.WriteLine($"model: GPT-2 {model.Config.Layers} layers, {model.Config.Heads} heads, {model.Config.Channels} channels, " +
            $"vocabulary {model.Config.VocabSize}, context {model.Config.MaxSequenceLength}: {model.ParameterCount:N0} parameters" +
            (device.IsCpu ? "" : $", on {device}"));
        if (distributed.Size > 1)
            Console.WriteLine($"data parallel: {distributed.Size} ranks, {config.BatchSize / distributed.Size} sequences of each batch per rank, {Nabla.Kernels.Cpu.WorkerPool.Threads} threads per rank" +
                (config.Training.ShardOptimizerState ? ", optimizer state sharded (ZeRO-1)" : ""));
        Console.WriteLine(addition != null
            ? $"data: built-in addition of up to {config.MaxDigits}-digit numbers, {addition.HeldOut.Count} held-out problems; {steps} steps of {config.BatchSize} problems"
            : $"data: {config.Data}; {steps} steps of {tokensPerStep:N0} tokens");
        TrainingLoop.PrintResume(resumed);

        var sampleGenerator = new Generator(config.Seed + 1);
        if (!RunTrainer(trainer, dir, sequenceLength, config.SampleEvery, () => Sample(model, tokenizer, addition, sampleGenerator), command, cancel))
            return 130;
        if (!distributed.IsWriter) return 0;
        Gpt2ModelFiles.Save(model, tokenizer, Path.Combine(dir, Gpt2ModelFiles.RunModelFolder));
        WriteLossChart(dir);
        if (addition != null) ReportAddition(model, addition);
        Console.WriteLine($"run saved to {dir} (config.json, checkpoints/, metrics.jsonl, loss.png, model/ for `nabla generate --model {Path.Combine(dir, "model")}`)");
        return 0;
    }

    /// <summary>Runs the trainer's remaining steps (<see cref="TrainingLoop"/>) with a progress bar, samples every
    /// <paramref name="sampleEvery"/> steps, validation lines and a loss chart at every checkpoint; false when stopped
    /// early. Of several data-parallel ranks only the writer samples (the others print nothing, and write no chart).</summary>
    internal static bool RunTrainer(Trainer trainer, string dir, int sequenceLength, int sampleEvery, Func<string> sample, string command, CancellationToken cancel)
    {
        var progress = new TrainingProgress(trainer.Options.Steps, "tokens");
        trainer.AfterStep += s =>
        {
            progress.Step(s.Step, $"loss {s.Loss:F4}  lr {s.LearningRate:0.0e+0}  norm {s.GradNorm:F2}", s.SamplesPerSecond * sequenceLength);
            if (sampleEvery > 0 && s.Step % sampleEvery == 0 && trainer.IsWriter) progress.Line($"step {s.Step}: sample: {sample()}");
        };
        trainer.AfterEvaluation += e => progress.Line($"step {e.Step}: validation loss {e.Loss:F4}");
        trainer.AfterCheckpoint += _ => WriteLossChart(dir);
        return TrainingLoop.Run(trainer, progress, command, cancel) == TrainingOutcome.Finished;
    }

    internal static string Sample(Gpt2Model model, ITokenizer tokenizer, AdditionDataset? addition, Generator g)
    {
        int[] prompt;
        if (addition != null)
        {
            var (a, b) = addition.HeldOut[g.NextInt(addition.HeldOut.Count)];
            prompt = AdditionDataset.Encode(addition.Question(a, b));
        }
        else prompt = tokenizer is Gpt2Tokenizer { EndOfTextId: { } eot } ? [eot] : tokenizer.Encode("\n");
        var ids = Sampler.Generate(model, prompt, new SamplingOptions { Temperature = addition != null ? 0 : 1, TopK = 40, MaxNewTokens = addition != null ? addition.MaxDigits + 2 : 48 },
            g, stopToken: addition != null ? AdditionDataset.Encode('\n') : null).ToList();
        model.Train();
        var text = tokenizer.Decode(prompt.Concat(ids));
        return text.Replace("\n", "⏎");
    }

    private static void ReportAddition(Gpt2Model model, AdditionDataset data)
    {
        Console.WriteLine("samples (greedy decoding on held-out problems):");
        var score = AdditionEvaluation.Score(model, data, examples: 6);
        foreach (var e in score.Examples) Console.WriteLine($"  {e.Question}{e.Answer}  {(e.Correct ? "✓" : $"✗ (expected {e.Expected})")}");
        Console.WriteLine($"exact-match accuracy on {data.HeldOut.Count} held-out problems: {100 * score.Accuracy:F1}%");
    }

    internal static void WriteLossChart(string dir)
    {
        var train = new List<(double, double)>();
        var val = new List<(double, double)>();
        foreach (var node in MetricsLog.Read(Path.Combine(dir, "metrics.jsonl")))
        {
            double step = node["step"]!.GetValue<double>();
            if (node["loss"] is { } l) train.Add((step, l.GetValue<double>()));
            if (node["val_loss"] is { } v) val.Add((step, v.GetValue<double>()));
        }
        if (train.Count == 0) return;
        var x = train.Select(t => t.Item1).ToArray();
        var valSeries = x.Select(s => val.FirstOrDefault(v => v.Item1 == s) is var m && m != default ? m.Item2 : double.NaN).ToArray();
        Charts.Line(Path.Combine(dir, "loss.png"), "Training loss", "step", "cross-entropy", x,
            ("train", train.Select(t => t.Item2).ToArray()), ("validation", valSeries));
    }
}
