using Nabla.NN;

namespace Nabla.Models.Vision;

/// <summary>
/// A VGG-style network (Simonyan and Zisserman, 2015, "Very deep convolutional networks for large-scale image
/// recognition") sized for 28×28 images: stages of two 3×3 convolutions (each followed by batch normalisation,
/// as in torchvision's vgg*_bn, and ReLU) and a 2×2 max pool, the width doubling from stage to stage; then a
/// classifier of two fully connected layers with dropout. VGG's point: depth from small 3×3 filters — two of
/// them see 5×5 with fewer parameters and one more non-linearity. Names follow torchvision
/// (features.N, classifier.N).
/// </summary>
public sealed class Vgg : Module
{
    /// <param name="widths">Channels of each stage (default 32, 64, 128: 28 → 14 → 7 → 3 pixels).</param>
    public Vgg(int numClasses = 10, int inChannels = 1, int[]? widths = null, int imageSize = 28, int hidden = 256,
        float dropout = 0.5f, Generator? generator = null)
    {
        widths ??= [32, 64, 128];
        var features = RegisterModule("features", new Sequential());
        int channels = inChannels, size = imageSize;
        foreach (var width in widths)
        {
            for (int i = 0; i < 2; i++)
            {
                features.Add(new Conv2d(channels, width, 3, padding: 1, generator: generator));
                features.Add(new BatchNorm2d(width));
                features.Add(new ReLU());
                channels = width;
            }
            features.Add(new MaxPool2d(2));
            size /= 2;
        }
        if (size < 1) throw new ArgumentException($"VGG: {widths.Length} stages of 2×2 pooling do not fit {imageSize}×{imageSize} images.");
        RegisterModule("classifier", new Sequential(
            new Linear(channels * size * size, hidden, generator: generator), new ReLU(), new Dropout(dropout, generator),
            new Linear(hidden, numClasses, generator: generator)));
    }

    /// <summary>Logits (B, classes) for images (B, C, H, W).</summary>
    public override Tensor Forward(Tensor images) =>
        ForwardChild("classifier", ForwardChild("features", images).Flatten(1));
}
