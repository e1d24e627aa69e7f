using System.CommandLine;
using Nabla.Training;

namespace Nabla.Cli.Runs;

/// <summary>
/// The options every GPT training command shares (`nabla train gpt`, `nabla finetune gpt`): run directory and
/// resume (<see cref="RunOptions"/>), batch shape, AdamW and its schedule, intervals, seed. Defaults that differ between the commands are
/// given when the values are read.
/// </summary>
internal sealed class GptTrainingOptions
{
    /// <summary>--out and --resume.</summary>
    public RunOptions Run { get; }
    public Option<int?> BatchSize { get; } = new("--batch-size") { Description = "Sequences per micro-batch." };
    public Option<int?> SequenceLength { get; } = new("--seq-len") { Description = "Tokens per training sequence." };
    public Option<int> Accumulation { get; } = new("--grad-accum") { Description = "Micro-batches per optimisation step.", DefaultValueFactory = _ => 1 };
    public Option<int?> Steps { get; } = new("--steps") { Description = "Optimisation steps." };
    public Option<float?> LearningRate { get; } = new("--lr") { Description = "Peak learning rate." };
    public Option<float?> MinLearningRate { get; } = new("--min-lr") { Description = "Learning rate at the end of the cosine decay (default lr/10)." };
    public Option<int?> Warmup { get; } = new("--warmup") { Description = "Linear warm-up steps." };
    public Option<float> WeightDecay { get; }
    public Option<float> Clip { get; } = new("--clip") { Description = "Clip the global gradient norm to this (0: off).", DefaultValueFactory = _ => 1f };
    public Option<int?> EvalEvery { get; } = new("--eval-every") { Description = "Validation loss every N steps." };
    public Option<int> EvalBatches { get; } = new("--eval-batches") { Description = "Batches per validation.", DefaultValueFactory = _ => 10 };
    public Option<int?> SampleEvery { get; } = new("--sample-every") { Description = "Print a sample every N steps (0: never)." };
    public Option<int?> CheckpointEvery { get; } = new("--checkpoint-every") { Description = "Checkpoint every N steps." };
    public Option<ulong> Seed { get; } = new("--seed") { Description = "Seed for initial weights, data order and samples.", DefaultValueFactory = _ => 1337 };

    /// <param name="runPrefix">Name of a run directory made when --out is not given: runs/PREFIX-TIME.</param>
    /// <param name="defaultWeightDecay">AdamW's weight decay unless --weight-decay says otherwise.</param>
    public GptTrainingOptions(string runPrefix, float defaultWeightDecay)
    {
        Run = new RunOptions(runPrefix);
        WeightDecay = new("--weight-decay") { Description = "AdamW weight decay (matrices and embeddings only).", DefaultValueFactory = _ => defaultWeightDecay };
        BatchSize.Positive(1 << 20);
        SequenceLength.Positive(1 << 20);
        Accumulation.Positive(1 << 20);
        Steps.Positive(int.MaxValue);
        LearningRate.Positive(100);
        MinLearningRate.NonNegative(100);
        WeightDecay.NonNegative(100);
        Clip.NonNegative(1e6);
        foreach (var every in new[] { Warmup, EvalEvery, SampleEvery, CheckpointEvery }) every.NonNegative(int.MaxValue);
        EvalBatches.NonNegative(1 << 20);
    }

    /// <param name="sessionOptions">Options of the command that --resume accepts (see <see cref="RunOptions.AddTo"/>).</param>
    public void AddTo(Command command, params Option[] sessionOptions)
    {
        Run.AddTo(command, sessionOptions);
        foreach (var option in new Option[] { BatchSize, SequenceLength, Accumulation, Steps, LearningRate, MinLearningRate, Warmup,
                     WeightDecay, Clip, EvalEvery, EvalBatches, SampleEvery, CheckpointEvery, Seed })
            command.Options.Add(option);
    }

    /// <summary>The optimisation settings from the options, with the command's defaults for those not given.</summary>
    public LanguageModelTrainingOptions Training(ParseResult p, int steps, float learningRate, int evalEvery, int checkpointEvery)
    {
        int totalSteps = p.GetValue(Steps) ?? steps;
        float lr = p.GetValue(LearningRate) ?? learningRate;
        return new LanguageModelTrainingOptions
        {
            Steps = totalSteps,
            GradientAccumulation = p.GetValue(Accumulation),
            LearningRate = lr,
            MinLearningRate = p.GetValue(MinLearningRate) ?? lr / 10,
            WarmupSteps = p.GetValue(Warmup) ?? Math.Min(100, totalSteps / 10),
            WeightDecay = p.GetValue(WeightDecay),
            ClipGradNorm = p.GetValue(Clip),
            EvalEvery = p.GetValue(EvalEvery) ?? evalEvery,
            EvalBatches = p.GetValue(EvalBatches),
            CheckpointEvery = p.GetValue(CheckpointEvery) ?? checkpointEvery,
        };
    }
}
