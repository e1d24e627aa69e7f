using Nabla.Autograd;
using Nabla.Data;
using Nabla.NN;

namespace Nabla.Training;

/// <summary>Loss and other metrics of a model over a number of batches.</summary>
public sealed record EvaluationResult(double Loss, IReadOnlyDictionary<string, double> Metrics);

public static class Evaluation
{
    /// <summary>
    /// Mean loss (and each metric) over the first <paramref name="batches"/> batches of <paramref name="source"/>,
    /// weighting each batch by its rows, in eval mode and without a graph. The model's mode is restored after.
    /// </summary>
    public static EvaluationResult Run(Module model, Func<Tensor, Tensor, Tensor> loss, IBatchSource source, int batches,
        IReadOnlyDictionary<string, Func<Tensor, Tensor, double>>? metrics = null)
    {
        bool wasTraining = model.Training;
        model.Eval();
        using var _ = GradMode.NoGrad();
        double lossSum = 0;
        long rows = 0;
        var sums = new Dictionary<string, double>();
        for (int i = 0; i < batches; i++)
        {
            using var memory = MemoryScope.Begin();
            var (x, y) = source.Batch(i);
            var output = model.Forward(x);
            int n = x.Size(0);
            lossSum += (double)loss(output, y).Item() * n;
            foreach (var (name, metric) in metrics ?? new Dictionary<string, Func<Tensor, Tensor, double>>())
                sums[name] = sums.GetValueOrDefault(name) + metric(output, y) * n;
            rows += n;
        }
        model.Train(wasTraining);
        long total = Math.Max(1, rows);
        return new EvaluationResult(lossSum / total, sums.ToDictionary(kv => kv.Key, kv => kv.Value / total));
    }

    /// <summary>Share of rows whose largest logit is at the label's index (classification accuracy).</summary>
    public static double Accuracy(Tensor logits, Tensor labels)
    {
        var predicted = logits.ArgMax(-1).ToIntArray();
        var truth = labels.ToIntArray();
        long correct = 0;
        for (int i = 0; i < truth.Length; i++) if (predicted[i] == truth[i]) correct++;
        return (double)correct / Math.Max(1, truth.Length);
    }
}
