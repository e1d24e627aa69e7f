using System.Diagnostics;
using Nabla.Autograd;
using Nabla.Data;
using Nabla.NN;
using Nabla.Optim;

namespace Nabla.Training;

/// <summary>Training stopped because a loss or gradient stopped being a finite number.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>Progress after one optimisation step.</summary>
public readonly record struct StepProgress(int Epoch, int Step, int StepInEpoch, int StepsPerEpoch, double Loss, double RunningAccuracy, double SamplesPerSecond);

/// <summary>What one epoch achieved.</summary>
public sealed record EpochMetrics(int Epoch, int Step, double TrainLoss, double TrainAccuracy, double ValidationLoss, double ValidationAccuracy,
    double LearningRate, double SamplesPerSecond, double Seconds);

/// <summary>
/// The classic loop for a model that maps a batch of inputs to predictions: forward, loss, backward,
/// optional gradient clipping, optimizer step, scheduler step. Classification uses cross-entropy on class
/// indices and reports accuracy; regression uses mean squared error (accuracy reported as NaN).
/// A non-finite loss or gradient stops training with the epoch, step and tensor named.
/// </summary>
public sealed class SupervisedTrainer(Module model, Optimizer optimizer, bool classification, LRScheduler? scheduler = null, float? clipGradNorm = null)
{
    public Module Model { get; } = model;
    public Optimizer Optimizer { get; } = optimizer;
    public int Step { get; private set; }

    /// <summary>Raised after every optimisation step (progress bars listen here).</summary>
    public event Action<StepProgress>? StepCompleted;

    public Tensor Loss(Tensor predictions, Tensor targets) =>
        classification ? F.CrossEntropy(predictions, targets) : F.MseLoss(predictions, targets);

    public EpochMetrics TrainEpoch(DataLoader loader, int epoch, (Tensor X, Tensor Y)? validation = null)
    {
        Model.Train();
        var clock = Stopwatch.StartNew();
        double lossSum = 0;
        long correct = 0, seen = 0;
        int stepInEpoch = 0;
        foreach (var (x, y) in loader)
        {
            // Each step's activations go back to the pool when it ends, whenever the collector runs.
            using var memory = MemoryScope.Begin();
            var output = Model.Forward(x);
            var loss = Loss(output, y);
            float lossValue = loss.Item();
            if (!float.IsFinite(lossValue))
                throw new TrainingDivergedException($"The loss became {lossValue} at epoch {epoch}, step {Step + 1}{FirstNonFinite(Model, gradients: false)}. Lower the learning rate or check the data for NaN/Inf.");
            Optimizer.ZeroGrad();
            loss.Backward();
            if (FirstNonFinite(Model, gradients: true) is { Length: > 0 } bad)
                throw new TrainingDivergedException($"A gradient became non-finite at epoch {epoch}, step {Step + 1}{bad}.");
            if (clipGradNorm is { } maxNorm) GradientClipping.ClipGradNorm(Model.Parameters(), maxNorm);
            Optimizer.Step();
            scheduler?.Step();
            Step++;
            stepInEpoch++;
            int n = x.Size(0);
            seen += n;
            lossSum += (double)lossValue * n;
            if (classification) correct += CountCorrect(output, y);
            StepCompleted?.Invoke(new StepProgress(epoch, Step, stepInEpoch, loader.BatchCount, lossValue,
                classification ? (double)correct / seen : double.NaN, seen / clock.Elapsed.TotalSeconds));
        }
        double trainSeconds = clock.Elapsed.TotalSeconds;
        var (valLoss, valAcc) = validation is { } v ? Evaluate(v.X, v.Y) : (double.NaN, double.NaN);
        return new EpochMetrics(epoch, Step, lossSum / Math.Max(1, seen), classification ? (double)correct / Math.Max(1, seen) : double.NaN,
            valLoss, valAcc, Optimizer.LearningRate, seen / trainSeconds, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Loss and accuracy (NaN for regression) over a whole dataset, in eval mode and without a graph.</summary>
    public (double Loss, double Accuracy) Evaluate(Tensor x, Tensor y, int batchSize = 4096)
    {
        bool wasTraining = Model.Training;
        Model.Eval();
        using var _ = GradMode.NoGrad();
        double lossSum = 0;
        long correct = 0;
        int n = x.Size(0);
        foreach (var (bx, by) in new DataLoader(x, y, batchSize, shuffle: false))
        {
            using var memory = MemoryScope.Begin();
            var output = Model.Forward(bx);
            lossSum += (double)Loss(output, by).Item() * bx.Size(0);
            if (classification) correct += CountCorrect(output, by);
        }
        Model.Train(wasTraining);
        return (lossSum / Math.Max(1, n), classification ? (double)correct / Math.Max(1, n) : double.NaN);
    }

    public static long CountCorrect(Tensor logits, Tensor labels)
    {
        var predicted = logits.ArgMax(-1).ToIntArray();
        var truth = labels.ToIntArray();
        long correct = 0;
        for (int i = 0; i < truth.Length; i++) if (predicted[i] == truth[i]) correct++;
        return correct;
    }

    /// <summary>", first non-finite: parameter 'name'" for the first parameter (or gradient) holding NaN/Inf, else "".</summary>
    public static string FirstNonFinite(Module model, bool gradients)
    {
        foreach (var (name, p) in model.NamedParameters())
        {
            var t = gradients ? p.Grad : p;
            if (t == null) continue;
            var values = t.Contiguous().AsSpan();
            if (float.IsFinite(System.Numerics.Tensors.TensorPrimitives.Sum<float>(values))) continue; // fast path: a finite sum means (almost always) finite values
            foreach (var v in values)
                if (!float.IsFinite(v)) return $" (first non-finite {(gradients ? "gradient" : "parameter")}: '{name}')";
        }
        return "";
    }
}
