using Nabla.Autograd;
using Nabla.Data;
using Nabla.Models.Vision;
using Nabla.NN;
using Nabla.Optim;

namespace Nabla.Tests.Models;

/// <summary>
/// <see cref="FineTunedClassifier"/>: training touches only the new layers (adapter and head) — every parameter and
/// batch-norm statistic of the body stays bit-identical — and a few dozen steps on 30 digits per class already
/// classify held-out digits far above chance; unfreezing the last stage trains exactly that stage.
/// </summary>
public class FineTuningTests
{
    /// <summary>A stand-in for a pretrained body, cheap enough for a test: random convolutions whose batch-norm
    /// statistics were measured on images (so its features are well scaled and its statistics not the initial
    /// zeros and ones, and a changed statistic would show).</summary>
    private static ResNet Body(ulong seed)
    {
        Generator.ManualSeed(seed);
        var body = ResNet.ResNet20(numClasses: 10, inChannels: 1, width: 8);
        using var _ = GradMode.NoGrad();
        body.Train();
        for (int i = 0; i < 30; i++) body.Forward(Tensor.Randn(32, 1, 16, 16));
        return body;
    }

    private static Dictionary<string, float[]> Snapshot(Module module) =>
        module.StateDict().Where(kv => kv.Value.DType == DType.Float32).ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());

    private static double Accuracy(Module model, ImageClassificationData data)
    {
        model.Eval();
        using var _ = GradMode.NoGrad();
        var predicted = model.Forward(data.Images).ArgMax(-1).ToIntArray();
        return predicted.Zip(data.Labels.ToIntArray(), (p, t) => p == t ? 1.0 : 0).Average();
    }

    [Fact]
    public void TrainsOnlyTheNewLayersAndBeatsChanceQuickly()
    {
        var (train, test) = Digits.Load(TestData.File("sklearn/digits.csv.gz")).HoldOut(5);
        train = train.FirstPerClass(30);
        var model = new FineTunedClassifier(Body(7), inChannels: 1, imageSize: 16, numClasses: 10, new Normalization([0.3f], [0.4f]));
        var body = Snapshot(model.Body);
        var adapter = Snapshot(model.GetSubmodule("adapter"));
        Assert.Equal(model.GetSubmodule("adapter").ParameterCount + model.GetSubmodule("head").ParameterCount, model.TrainableParameterCount);

        var optimizer = new AdamW(model.Parameters(), 1e-2f);
        using var loader = new ImageLoader(train.Images, train.Labels, 50, shuffleSeed: 1);
        for (int step = 0; step < 60; step++)
        {
            using var scope = MemoryScope.Begin();
            model.Train();
            var (images, labels) = loader.Batch(step);
            var loss = F.CrossEntropy(model.Forward(images), labels);
            optimizer.ZeroGrad();
            loss.Backward();
            optimizer.Step();
        }

        foreach (var (name, values) in Snapshot(model.Body))
            Assert.True(body[name].AsSpan().SequenceEqual(values), $"body tensor {name} changed");
        Assert.Contains(Snapshot(model.GetSubmodule("adapter")), kv => !adapter[kv.Key].AsSpan().SequenceEqual(kv.Value));
        double accuracy = Accuracy(model, test);
        Assert.True(accuracy > 0.3, $"held-out accuracy {accuracy:P1} after 60 steps; chance is 10%");
    }

    [Fact]
    public void TheAdapterStartsAsTheBodysNormalization()
    {
        // Grey in [0, 1] → (x − mean_c) / std_c in each of an RGB body's channels, at the body's size.
        var model = new FineTunedClassifier(ResNet.ResNet20(10, inChannels: 3, width: 8), 1, 12, 4, Normalization.ImageNet);
        var grey = Tensor.Rand(2, 1, 12, 12);
        var adapted = model.GetSubmodule("adapter").Forward(grey);
        Assert.Equal([2, 3, 12, 12], adapted.Shape.ToArray());
        for (int c = 0; c < 3; c++)
        {
            var expected = grey.Sub(Normalization.ImageNet.Mean[c]).Div(Normalization.ImageNet.Std[c]);
            Ops.Close.Assert(expected, adapted.Narrow(1, c, 1), 1e-5, $"channel {c}");
        }
    }

    [Fact]
    public void UnfreezingTheLastStageTrainsItAndItsBatchNorm()
    {
        var model = new FineTunedClassifier(Body(3), 1, 28, 10, new Normalization([0.5f], [0.5f]));
        model.UnfreezeLastStage();
        var trainable = model.NamedParameters().Where(p => p.Parameter.RequiresGrad).Select(p => p.Name.Split('.')[0] + "." + p.Name.Split('.')[1]).Distinct();
        Assert.Equal(["adapter.1", "body.layer3", "head.weight", "head.bias"], trainable);
        model.Train();
        Assert.True(model.GetSubmodule("body.layer3.0.bn1").Training);
        Assert.False(model.GetSubmodule("body.layer2.0.bn1").Training);
        Assert.False(model.GetSubmodule("body.bn1").Training);
    }

    [Fact]
    public void TheParameterGroupsSeparateTheNewLayersFromTheTrainedBody()
    {
        var model = new FineTunedClassifier(Body(3), 1, 16, 10, new Normalization([0.5f], [0.5f]));
        var frozen = model.ParameterGroups(bodyLearningRate: null);
        Assert.Single(frozen);
        Assert.Equal(model.TrainableParameterCount, frozen[0].Parameters.Sum(p => p.Count));

        model.UnfreezeLastStage();
        var groups = model.ParameterGroups(bodyLearningRate: 1e-3f);
        Assert.Equal(2, groups.Count);
        Assert.Null(groups[0].LearningRate);
        Assert.Equal(1e-3f, groups[1].LearningRate);
        var lastStage = model.GetSubmodule("body.layer3").Parameters().ToHashSet(ReferenceEqualityComparer.Instance);
        Assert.True(groups[1].Parameters.All(lastStage.Contains));
        Assert.Equal(lastStage.Count, groups[1].Parameters.Count);
        Assert.Equal(model.GetSubmodule("adapter").ParameterCount + model.GetSubmodule("head").ParameterCount, groups[0].Parameters.Sum(p => p.Count));
    }

    [Fact]
    public void RecomputedBatchNormStatisticsAreThoseOfTheNewImages()
    {
        var (train, _) = Digits.Load(TestData.File("sklearn/digits.csv.gz")).HoldOut(5);
        var images = train.FirstPerClass(4).Images;
        var model = new FineTunedClassifier(Body(11), 1, 16, 10, new Normalization([0.3f], [0.4f]));
        var parameters = Snapshot(model).Where(kv => !kv.Key.Contains("running_")).ToDictionary();
        model.Train();
        model.RecomputeBatchNormStatistics(images);

        // The stem's batch norm: exactly the mean and the (unbiased, as PyTorch keeps it) variance of conv1's output.
        using var _ = GradMode.NoGrad();
        var stem = model.Body.GetSubmodule("conv1").Forward(model.GetSubmodule("adapter").Forward(images));
        int perChannel = stem.Size(0) * stem.Size(2) * stem.Size(3);
        var mean = stem.Mean([0, 2, 3]);
        var variance = stem.Sub(mean.Reshape(1, -1, 1, 1)).Square().Sum([0, 2, 3]).Div(perChannel - 1);
        var bn1 = (BatchNorm)model.Body.GetSubmodule("bn1");
        Ops.Close.Assert(mean, bn1.RunningMean, 1e-4, "bn1 running mean");
        Ops.Close.Assert(variance, bn1.RunningVar, 1e-4, "bn1 running variance");
        Assert.All(model.Body.Modules().OfType<BatchNorm>(), n => Assert.Equal(0.1f, n.Momentum));
        // Every later layer too: in evaluation mode the model now computes on these images what it computes with
        // each batch norm using the batch's own statistics (up to the unbiased variance's factor n/(n−1)).
        model.Eval();
        var withRunning = model.Forward(images);
        foreach (var norm in model.Body.Modules().OfType<BatchNorm>()) norm.Train();
        var withBatch = model.Forward(images);
        Ops.Close.Assert(withBatch, withRunning, 2e-2, "logits with running vs batch statistics");
        foreach (var (name, values) in Snapshot(model).Where(kv => parameters.ContainsKey(kv.Key)))
            Assert.True(parameters[name].AsSpan().SequenceEqual(values), $"{name} changed");
    }

    [Fact]
    public void ProbingFitsTheHeadAloneOnTheBodysFeatures()
    {
        var (train, _) = Digits.Load(TestData.File("sklearn/digits.csv.gz")).HoldOut(5);
        train = train.FirstPerClass(30);
        var model = new FineTunedClassifier(Body(7), 1, 16, 10, new Normalization([0.3f], [0.4f]));
        model.RequiresGrad_(true).Train();
        var before = Snapshot(model);
        double Loss() { model.Eval(); using var _ = GradMode.NoGrad(); var loss = F.CrossEntropy(model.Forward(train.Images), train.Labels).Item(); model.Train(); return loss; }
        double lossBefore = Loss();
        model.FitHead(train.Images, train.Labels, steps: 100, learningRate: 1e-2f, weightDecay: 0f);
        double lossAfter = Loss();
        Assert.True(lossAfter < 0.7 * lossBefore, $"training loss {lossBefore:F3} → {lossAfter:F3} after probing");
        Assert.True(model.Training);
        foreach (var (name, values) in Snapshot(model))
            Assert.True(name.StartsWith("head.") != before[name].AsSpan().SequenceEqual(values), $"{name}: only the head must change");
    }
}
