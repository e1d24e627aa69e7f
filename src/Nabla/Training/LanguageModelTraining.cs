using Nabla.Data;
using Nabla.Distributed;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Optim;

namespace Nabla.Training;

/// <summary>The hyper-parameters of GPT-2 training (saved in a run's config.json by `nabla train gpt`).</summary>
public sealed record LanguageModelTrainingOptions
{
    public int Steps { get; init; } = 1000;
    /// <summary>Micro-batches summed into one optimisation step.</summary>
    public int GradientAccumulation { get; init; } = 1;
    public float LearningRate { get; init; } = 6e-4f;
    public float MinLearningRate { get; init; } = 6e-5f;
    public int WarmupSteps { get; init; } = 100;
    public float WeightDecay { get; init; } = 0.1f;
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float ClipGradNorm { get; init; } = 1f;
    /// <summary>Validation loss every this many steps (0: never).</summary>
    public int EvalEvery { get; init; } = 100;
    public int EvalBatches { get; init; } = 10;
    /// <summary>Checkpoint every this many steps (0: only at the end).</summary>
    public int CheckpointEvery { get; init; } = 200;
    /// <summary>With several ranks: ZeRO-1 (each rank keeps the optimizer state of its share of the parameters).</summary>
    public bool ShardOptimizerState { get; init; }
    /// <summary>LoRA+ (Hayou et al., 2024; PEFT's create_loraplus_optimizer): the adapters' B matrices and every
    /// trained vector (biases, layer norms, DoRA's magnitudes) learn at this multiple of the learning rate; 1 is off.</summary>
    public float LoraPlusRatio { get; init; } = 1;
}

/// <summary>
/// The GPT-2 pieces of a <see cref="Trainer"/>: next-token cross-entropy, AdamW with weight decay on matrices and
/// embeddings only, and a linear warm-up then cosine decay of the learning rate.
/// </summary>
public static class LanguageModelTraining
{
    public static Trainer CreateTrainer(Gpt2Model model, IBatchSource train, IBatchSource? validation, LanguageModelTrainingOptions options, string? runDirectory,
        ICommunicator? communicator = null, bool checkpointTrainableOnly = false)
    {
        // Frozen parameters (the base under a LoRA adapter) get no optimizer state: that is where an adapter saves memory.
        var (decay, noDecay) = model.WeightDecayGroups();
        List<ParamGroup> groups = [new(decay.Where(p => p.RequiresGrad), weightDecay: options.WeightDecay), new(noDecay.Where(p => p.RequiresGrad), weightDecay: 0)];
        if (options.LoraPlusRatio != 1)
        {
            // LoRA+'s groups, as PEFT forms them: B and the vectors at the larger rate, A and the rest at the base rate.
            var fast = Lora.Layers(model).Select(l => l.Layer.LoraB.Weight).ToHashSet(ReferenceEqualityComparer.Instance);
            float fastRate = options.LearningRate * options.LoraPlusRatio;
            groups = [
                new(decay.Where(p => p.RequiresGrad && !fast.Contains(p)), weightDecay: options.WeightDecay),
                new(decay.Where(p => p.RequiresGrad && fast.Contains(p)), fastRate, options.WeightDecay),
                new(noDecay.Where(p => p.RequiresGrad), fastRate, weightDecay: 0)];
        }
        var optimizer = new AdamW(groups, options.LearningRate, options.Beta1, options.Beta2, 1e-8f);
        var schedule = new CosineWithWarmup(optimizer, options.WarmupSteps, options.Steps, options.MinLearningRate);
        var trainerOptions = new TrainerOptions
        {
            Steps = options.Steps, GradientAccumulation = options.GradientAccumulation, ClipGradNorm = options.ClipGradNorm,
            EvalEvery = options.EvalEvery, EvalBatches = options.EvalBatches, CheckpointEvery = options.CheckpointEvery,
            ShardOptimizerState = options.ShardOptimizerState,
            CheckpointTrainableOnly = checkpointTrainableOnly,
        };
        return new Trainer(model, (logits, targets) => Gpt2Model.Loss(logits, targets), train, optimizer, trainerOptions, schedule, validation, runDirectory, communicator);
    }
}
