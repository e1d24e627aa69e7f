using Nabla.Autograd;
using Nabla.Data;
using Nabla.Models.Vision;
using Nabla.Optim;
using Nabla.Tests.Data;
using Nabla.Training;
using Xunit.Abstractions;

namespace Nabla.Tests.Models;

/// <summary>
/// LeNet-5 learns real Fashion-MNIST: one epoch of the Trainer on 6,000 training images (batches of 16, flipped, from the
/// prefetching loader) must reach well above chance (10 %) on 2,000 test images. Any broken forward or backward of convolution,
/// pooling, linear layers, cross-entropy or the optimizer keeps it near chance, so this cannot pass by accident.
/// </summary>
public class LeNetTrainingTests(ITestOutputHelper output)
{
    [FashionMnistFact]
    public void LeNetLearnsFashionMnistInSeconds()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var train = IdxDataset.FashionMnist.Load(DatasetSplit.Train);
        var test = IdxDataset.FashionMnist.Load(DatasetSplit.Test);
        var statistics = IdxDataset.FashionMnist.Statistics;
        output.WriteLine($"loaded in {clock.Elapsed.TotalSeconds:F1} s");
        var model = new LeNet5(generator: new Generator(1));
        var optimizer = new Adam(model.Parameters(), learningRate: 2e-3f);
        using var loader = new ImageLoader(train.Images.Narrow(0, 0, 6000), train.Labels.Narrow(0, 0, 6000), 16, shuffleSeed: 1,
            augmentation: new ImageAugmentation { HorizontalFlip = true }, normalization: statistics, augmentationSeed: 2);
        new Trainer(model, (logits, labels) => F.CrossEntropy(logits, labels), loader, optimizer,
            new TrainerOptions { Steps = loader.BatchesPerEpoch, Seed = 1 }).Train();
        output.WriteLine($"trained at {clock.Elapsed.TotalSeconds:F1} s; waited {loader.Waited.TotalSeconds:F2} s for batches");
        model.Eval();
        using var evaluation = new ImageLoader(test.Images.Narrow(0, 0, 2000), test.Labels.Narrow(0, 0, 2000), 500, normalization: statistics);
        int correct = 0;
        using (GradMode.NoGrad())
            foreach (var (images, labels) in evaluation.Epoch(0))
            {
                var predicted = model.Forward(images).ArgMax(1).ToIntArray();
                correct += predicted.Zip(labels.ToIntArray()).Count(p => p.First == p.Second);
            }
        double accuracy = correct / 2000.0;
        output.WriteLine($"test accuracy {accuracy:P1} at {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(accuracy >= 0.70, $"LeNet-5 reached {accuracy:P1} test accuracy after one epoch on 6,000 images; ≥ 70 % expected (chance: 10 %).");
    }
}
