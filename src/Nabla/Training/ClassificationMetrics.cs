using Nabla.Autograd;
using Nabla.Data;
using Nabla.NN;

namespace Nabla.Training;

/// <summary>One class's precision (of the rows predicted as it, the share that are it), recall (of its rows, the share
/// predicted as it), F1 (their harmonic mean; 0 when both are 0) and support (its rows).</summary>
public sealed record ClassMetrics(double Precision, double Recall, double F1, int Support);

/// <summary>Accuracy and per-class metrics from a confusion matrix counts[true class, predicted class].</summary>
public sealed class ClassificationMetrics
{
    public int[,] Confusion { get; }
    public IReadOnlyList<ClassMetrics> PerClass { get; }
    public int Total { get; }
    public int Correct { get; }
    public double Accuracy => (double)Correct / Math.Max(1, Total);
    /// <summary>The unweighted mean of the classes' F1 (classes without rows count too, as in scikit-learn).</summary>
    public double MacroF1 => PerClass.Average(c => c.F1);

    public ClassificationMetrics(int[,] confusion)
    {
        int n = confusion.GetLength(0);
        if (confusion.GetLength(1) != n) throw new ArgumentException($"the confusion matrix must be square, got {n}×{confusion.GetLength(1)}.");
        Confusion = confusion;
        var perClass = new ClassMetrics[n];
        for (int c = 0; c < n; c++)
        {
            int truePositives = confusion[c, c];
            int actual = Enumerable.Range(0, n).Sum(p => confusion[c, p]);
            int predicted = Enumerable.Range(0, n).Sum(t => confusion[t, c]);
            double precision = predicted == 0 ? 0 : (double)truePositives / predicted;
            double recall = actual == 0 ? 0 : (double)truePositives / actual;
            double f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            perClass[c] = new ClassMetrics(precision, recall, f1, actual);
            Total += actual;
            Correct += truePositives;
        }
        PerClass = perClass;
    }

    /// <summary>The model's confusion matrix over the first <paramref name="batches"/> batches of <paramref name="source"/>
    /// (targets: class indices; prediction: the largest logit), in eval mode without a graph.</summary>
    public static ClassificationMetrics Evaluate(Module model, IBatchSource source, int batches, int classes)
    {
        bool wasTraining = model.Training;
        model.Eval();
        using var _ = GradMode.NoGrad();
        var counts = new int[classes, classes];
        for (int i = 0; i < batches; i++)
        {
            using var memory = MemoryScope.Begin();
            var (x, y) = source.Batch(i);
            var predicted = model.Forward(x).ArgMax(-1).ToIntArray();
            var truth = y.ToIntArray();
            for (int row = 0; row < truth.Length; row++) counts[truth[row], predicted[row]]++;
        }
        model.Train(wasTraining);
        return new ClassificationMetrics(counts);
    }
}
