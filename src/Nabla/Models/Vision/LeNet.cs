using Nabla.NN;

namespace Nabla.Models.Vision;

/// <summary>
/// LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998, "Gradient-based learning applied to document recognition"):
/// C1 convolution 5×5 → 6 maps, S2 subsampling, C3 convolution 5×5 → 16 maps, S4 subsampling, C5 fully connected
/// → 120, F6 → 84, output → classes. The paper's 32×32 input is the 28×28 digit padded by 2, which C1's padding
/// does here. Two modern substitutions, as in most re-implementations: ReLU for the scaled tanh, and max pooling
/// for the trainable average subsampling; the Euclidean RBF output becomes a linear layer for a softmax loss.
/// </summary>
public sealed class LeNet5 : Module
{
    public LeNet5(int numClasses = 10, int inChannels = 1, Generator? generator = null)
    {
        RegisterModule("c1", new Conv2d(inChannels, 6, 5, padding: 2, generator: generator)); // (B, 6, 28, 28)
        RegisterModule("s2", new MaxPool2d(2));                                                // (B, 6, 14, 14)
        RegisterModule("c3", new Conv2d(6, 16, 5, generator: generator));                      // (B, 16, 10, 10)
        RegisterModule("s4", new MaxPool2d(2));                                                // (B, 16, 5, 5)
        RegisterModule("c5", new Linear(16 * 5 * 5, 120, generator: generator));
        RegisterModule("f6", new Linear(120, 84, generator: generator));
        RegisterModule("output", new Linear(84, numClasses, generator: generator));
    }

    /// <summary>Logits (B, classes) for images (B, C, 28, 28).</summary>
    public override Tensor Forward(Tensor images)
    {
        if (images.Rank != 4 || images.Size(2) != 28 || images.Size(3) != 28)
            throw new ArgumentException($"LeNet-5 takes (batch, channels, 28, 28) images, got {images.ShapeString}.");
        var x = ForwardChild("s2", ForwardChild("c1", images).Relu());
        x = ForwardChild("s4", ForwardChild("c3", x).Relu());
        x = ForwardChild("c5", x.Flatten(1)).Relu();                 // (B, 120)
        x = ForwardChild("f6", x).Relu();                             // (B, 84)
        return ForwardChild("output", x);                             // (B, classes)
    }
}
