// Learning path, step 2: convolutional networks on Fashion-MNIST — LeNet-5, then VGG, then ResNet (and a ViT).
//
//   dotnet run -c Release --project examples/03-cnn-fashion-mnist                      # LeNet-5, 3 epochs
//   dotnet run -c Release --project examples/03-cnn-fashion-mnist -- resnet20 10       # model (lenet|vgg|resnet20|vit), epochs
//   dotnet run -c Release --project examples/03-cnn-fashion-mnist -- vgg 1 5000        # ... on the first 5,000 training images
//
// The data comes from Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist) or from the
// cache after IdxDataset.FashionMnist.DownloadAsync. The loader shuffles, augments (shifts, flips, random erasing)
// and normalises on a background thread while the model trains.
using Nabla;
using Nabla.Autograd;
using Nabla.Data;
using Nabla.Models.Vision;
using Nabla.NN;
using Nabla.Optim;

string name = args.Length > 0 ? args[0] : "lenet";
int epochs = args.Length > 1 ? int.Parse(args[1]) : 3;
var fashion = IdxDataset.FashionMnist;
var train = fashion.Load(DatasetSplit.Train);
var test = fashion.Load(DatasetSplit.Test);
int count = args.Length > 2 ? Math.Min(int.Parse(args[2]), train.Count) : train.Count;

Generator.ManualSeed(1);
Module model = name switch
{
    "lenet" => new LeNet5(),
    "vgg" => new Vgg(),
    "resnet20" => ResNet.ResNet20(),
    "vit" => new VisionTransformer(imageSize: 28, patchSize: 7, dim: 64, depth: 6, heads: 4, numClasses: 10, inChannels: 1, mlpHidden: 128),
    _ => throw new ArgumentException($"Unknown model '{name}': lenet, vgg, resnet20 or vit."),
};
Console.WriteLine($"{name}: {model.ParameterCount:N0} parameters, {count:N0} training images, {epochs} epochs");

using var loader = new ImageLoader(train.Images.Narrow(0, 0, count), train.Labels.Narrow(0, 0, count), batchSize: 128, shuffleSeed: 1,
    augmentation: ImageAugmentation.FashionMnist, normalization: fashion.Statistics, augmentationSeed: 2);
using var testLoader = new ImageLoader(test.Images, test.Labels, batchSize: 500, normalization: fashion.Statistics);
var optimizer = new AdamW(model.Parameters(), learningRate: 2e-3f, weightDecay: 5e-4f);
var schedule = new CosineWithWarmup(optimizer, warmupSteps: loader.BatchesPerEpoch / 2, totalSteps: epochs * loader.BatchesPerEpoch);

var clock = System.Diagnostics.Stopwatch.StartNew();
for (int epoch = 0; epoch < epochs; epoch++)
{
    model.Train();
    double lossSum = 0;
    foreach (var (images, labels) in loader.Epoch(epoch))
    {
        var loss = F.CrossEntropy(model.Forward(images), labels);
        optimizer.ZeroGrad();
        loss.Backward();
        optimizer.Step();
        schedule.Step();
        lossSum += loss.Item();
    }
    Console.WriteLine($"epoch {epoch + 1}: train loss {lossSum / loader.BatchesPerEpoch:F4}, test accuracy {TestAccuracy():P2} " +
                      $"({clock.Elapsed.TotalSeconds:F0} s; waited {loader.Waited.TotalSeconds:F1} s for batches)");
}

double TestAccuracy()
{
    model.Eval();
    using var _ = GradMode.NoGrad();
    int correct = 0;
    foreach (var (images, labels) in testLoader.Epoch(0))
        correct += model.Forward(images).ArgMax(1).ToIntArray().Zip(labels.ToIntArray()).Count(p => p.First == p.Second);
    return correct / (double)test.Count;
}
