using Nabla.Training;

namespace Nabla.Tests.Training;

public sealed class ClassificationMetricsTests
{
    [Fact]
    public void PrecisionRecallAndF1OfEachClass()
    {
        // rows: true class, columns: predicted. Class 2 is never predicted; worked by hand:
        // class 0: precision 5/7, recall 5/6; class 1: precision 3/4, recall 3/4; class 2: precision 0 (none predicted), recall 0.
        var metrics = new ClassificationMetrics(new[,] { { 5, 1, 0 }, { 1, 3, 0 }, { 1, 0, 0 } });
        Assert.Equal(11, metrics.Total);
        Assert.Equal(8, metrics.Correct);
        Assert.Equal(8 / 11.0, metrics.Accuracy, 12);
        Assert.Equal(5 / 7.0, metrics.PerClass[0].Precision, 12);
        Assert.Equal(5 / 6.0, metrics.PerClass[0].Recall, 12);
        Assert.Equal(2 * (5 / 7.0) * (5 / 6.0) / (5 / 7.0 + 5 / 6.0), metrics.PerClass[0].F1, 12);
        Assert.Equal(0.75, metrics.PerClass[1].F1, 12);
        Assert.Equal(new ClassMetrics(0, 0, 0, 1), metrics.PerClass[2]);
        Assert.Equal((metrics.PerClass[0].F1 + 0.75 + 0) / 3, metrics.MacroF1, 12);
    }
}
