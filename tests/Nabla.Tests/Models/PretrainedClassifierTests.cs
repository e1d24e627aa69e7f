using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Vision;
using Nabla.Tests.Parity;
using Close = Nabla.Tests.Ops.Close;

namespace Nabla.Tests.Models;

/// <summary>
/// The `nabla classify` path against PyTorch (tests/reference/make_vision_fixtures.py, classifiers()): directories in
/// the hub's layout (model.safetensors + timm's config.json) holding a torchvision ResNet-18 (channels / 8) and a
/// timm-layout ViT, both with random weights and 1000 classes, are rebuilt from their tensors' shapes and give
/// PyTorch's logits for torchvision's preprocessing of a real PNG file; Nabla's own preprocessing of that file
/// (timm's eval transform read from config.json) matches torchvision's.
/// </summary>
public class PretrainedClassifierTests
{
    private static string Dir(string name) => TestData.Fixture(Path.Combine("classify", name));
    private static ParityFixture Expected => ParityFixture.Get(Path.Combine("classify", "expected.safetensors"));

    [Theory]
    [InlineData("resnet", "resnet18")]
    [InlineData("vit", "vit_tiny_patch16_224")]
    public void LoadsFromTheHubLayoutAndGivesPyTorchsLogits(string name, string architecture)
    {
        var classifier = PretrainedClassifier.Load(Dir(name));
        Assert.Equal(architecture, classifier.Architecture);
        Assert.Equal(1000, classifier.Classes.Count);
        var logits = classifier.Model.Forward(Expected[name + "/input"].Unsqueeze(0));
        Close.Assert(Expected[name + "/logits"], logits, 1e-4, name + " logits");
    }

    [Fact]
    public void ResNetPreprocessingIsTorchvisionsResizeCropAndNormalize()
    {
        // The image's shorter side is already 256, so the resize keeps every pixel and only float rounding differs.
        var preprocessing = PretrainedClassifier.Load(Dir("resnet")).Preprocessing;
        Assert.Equal(new ImagePreprocessing(256, 224, preprocessing.Normalization, ResizeFilter.Bilinear), preprocessing);
        Assert.Equal(Normalization.ImageNet.Mean, preprocessing.Normalization.Mean);
        Close.Assert(Expected["resnet/input"], preprocessing.Load(Dir("image.png")), 1e-5, "preprocessed image");
    }

    [Fact]
    public void VitPreprocessingFollowsItsConfig()
    {
        // crop_pct 0.9 → resize to ⌊224 / 0.9⌋ = 248, bicubic, mean = std = 0.5. ImageSharp's bicubic and PIL's
        // differ by a few grey levels at most, so the mean difference is small and the prediction the same.
        var classifier = PretrainedClassifier.Load(Dir("vit"));
        Assert.Equal((248, 224, ResizeFilter.Bicubic), (classifier.Preprocessing.Resize, classifier.Preprocessing.Crop, classifier.Preprocessing.Filter));
        var mine = classifier.Preprocessing.Load(Dir("image.png")).ToArray();
        var torch = Expected["vit/input"].ToArray();
        double meanError = mine.Zip(torch, (a, b) => Math.Abs(a - b)).Average();
        Assert.True(meanError < 0.02, $"mean |difference| {meanError:F4} from torchvision's bicubic resize (in units of 0.5 = 64 grey levels)");
    }

    [Fact]
    public void TopClassesOfTheImageFileAreTorchs()
    {
        var classifier = PretrainedClassifier.Load(Dir("resnet"));
        var probabilities = classifier.Probabilities(classifier.Preprocessing.Load(Dir("image.png")).Unsqueeze(0)).ToArray();
        var expected = Expected["resnet/logits"].Softmax(-1).ToArray();
        int[] Top5(float[] p) => Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).Take(5).ToArray();
        Assert.Equal(Top5(expected), Top5(probabilities));
    }

    [Fact]
    public void ImageNetClassNamesAreTorchvisionsTable()
    {
        Assert.Equal(1000, ImageNet.Classes.Count);
        Assert.Equal(1000, ImageNet.Classes.Distinct().Count());
        // The order is the logits' order: a name out of place would print the wrong class.
        Assert.Equal("tench", ImageNet.Classes[0]);
        Assert.Equal("toilet tissue", ImageNet.Classes[999]);
    }

    [Fact]
    public void ABadDirectoryIsOneErrorNamingTheFile()
    {
        var dir = Directory.CreateTempSubdirectory("nabla-classifier-").FullName;
        try
        {
            Assert.Contains("model.safetensors: not found", Assert.Throws<CheckpointException>(() => PretrainedClassifier.Load(dir)).Message);
            File.Copy(Path.Combine(Dir("resnet"), "model.safetensors"), Path.Combine(dir, "model.safetensors"));
            Assert.Contains("config.json: not found", Assert.Throws<CheckpointException>(() => PretrainedClassifier.Load(dir)).Message);
            File.WriteAllText(Path.Combine(dir, "config.json"), "{\"architecture\": \"convnext_tiny\", \"pretrained_cfg\": {}}");
            Assert.Contains("architecture 'convnext_tiny'", Assert.Throws<CheckpointException>(() => PretrainedClassifier.Load(dir)).Message);
            File.WriteAllText(Path.Combine(dir, "config.json"), "{\"architecture\": \"vit_tiny_patch16_224\", \"pretrained_cfg\": {}}");
            Assert.Contains("no tensor 'patch_embed.proj.weight'", Assert.Throws<CheckpointException>(() => PretrainedClassifier.Load(dir)).Message);
            File.WriteAllText(Path.Combine(dir, "config.json"), "{\"architecture\": \"resnet18\", \"pretrained_cfg\": {\"input_size\": [3, 224, 224]}}");
            Assert.Contains("no \"mean\"", Assert.Throws<CheckpointException>(() => PretrainedClassifier.Load(dir)).Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void PublishedModelsArePinnedToARevisionAndAHash()
    {
        foreach (var model in PublishedClassifier.All)
        {
            var file = model.Weights();
            Downloader.Validate(file, model.Name);
            Assert.Contains($"/resolve/{model.Revision}/", file.Url);
            Assert.Matches("^[0-9a-f]{40}$", model.Revision);
        }
    }
}
