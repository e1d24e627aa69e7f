namespace Nabla.Optim;

/// <summary>Sets an optimizer's learning rate as a function of the step. Call <see cref="Step"/> once per
/// optimizer step (after it), as with PyTorch's schedulers. A parameter group with its own learning rate
/// (<see cref="ParamGroup.LearningRate"/>, e.g. a smaller one for a pretrained body) follows the schedule scaled
/// to that rate, as PyTorch's LambdaLR scales each group's initial rate by the same factor.</summary>
public abstract class LRScheduler
{
    /// <summary>Each group's own initial learning rate, or null for a group that uses the optimizer's.</summary>
    private readonly float?[] _groupBaseRates;

    protected LRScheduler(Optimizer optimizer)
    {
        Optimizer = optimizer;
        BaseLearningRate = optimizer.LearningRate;
        _groupBaseRates = optimizer.Groups.Select(g => g.LearningRate).ToArray();
        Apply(0);
    }

    public Optimizer Optimizer { get; }
    public float BaseLearningRate { get; }
    /// <summary>Steps taken so far.</summary>
    public int CurrentStep { get; private set; }

    /// <summary>The optimizer's learning rate for step <paramref name="step"/> (0-based).</summary>
    public abstract float LearningRateAt(int step);

    public void Step()
    {
        CurrentStep++;
        Apply(CurrentStep);
    }

    /// <summary>Jumps to a step (resuming from a checkpoint).</summary>
    public void SetStep(int step)
    {
        CurrentStep = step;
        Apply(step);
    }

    private void Apply(int step)
    {
        float rate = LearningRateAt(step);
        Optimizer.LearningRate = rate;
        float factor = BaseLearningRate > 0 ? rate / BaseLearningRate : 0f;
        for (int i = 0; i < _groupBaseRates.Length; i++)
            if (_groupBaseRates[i] is { } groupBase) Optimizer.Groups[i].LearningRate = groupBase * factor;
    }
}

/// <summary>Multiplies the learning rate by gamma every <c>stepSize</c> steps.</summary>
public sealed class StepLR(Optimizer optimizer, int stepSize, float gamma = 0.1f) : LRScheduler(optimizer)
{
    public override float LearningRateAt(int step) => BaseLearningRate * MathF.Pow(gamma, step / Math.Max(1, stepSize));
}

/// <summary>
/// Linear warm-up from 0 to the base rate over <c>warmupSteps</c>, then a cosine decay to
/// <c>minLearningRate</c> at <c>totalSteps</c> (and constant after), the schedule GPT-style training uses.
/// </summary>
public sealed class CosineWithWarmup(Optimizer optimizer, int warmupSteps, int totalSteps, float minLearningRate = 0f) : LRScheduler(optimizer)
{
    public override float LearningRateAt(int step)
    {
        float lr = BaseLearningRate;
        if (step < warmupSteps) return lr * (step + 1) / warmupSteps;
        if (step >= totalSteps) return minLearningRate;
        float progress = (float)(step - warmupSteps) / Math.Max(1, totalSteps - warmupSteps);
        return minLearningRate + 0.5f * (lr - minLearningRate) * (1 + MathF.Cos(MathF.PI * progress));
    }
}
