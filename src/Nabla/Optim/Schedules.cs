namespace Nabla.Optim;

/// <summary>Sets an optimizer's learning rate as a function of the step. Call <see cref="Step"/> once per
/// optimizer step (after it), as with PyTorch's schedulers.</summary>
public abstract class LRScheduler
{
    protected LRScheduler(Optimizer optimizer)
    {
        Optimizer = optimizer;
        BaseLearningRate = optimizer.LearningRate;
        optimizer.LearningRate = LearningRateAt(0);
    }

    public Optimizer Optimizer { get; }
    public float BaseLearningRate { get; }
    /// <summary>Steps taken so far.</summary>
    public int CurrentStep { get; private set; }

    /// <summary>The learning rate for step <paramref name="step"/> (0-based).</summary>
    public abstract float LearningRateAt(int step);

    public void Step()
    {
        CurrentStep++;
        Optimizer.LearningRate = LearningRateAt(CurrentStep);
    }

    /// <summary>Jumps to a step (resuming from a checkpoint).</summary>
    public void SetStep(int step)
    {
        CurrentStep = step;
        Optimizer.LearningRate = LearningRateAt(step);
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
