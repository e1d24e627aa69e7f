using Nabla.NN;

namespace Nabla.Models.Vision;

/// <summary>
/// ResNet's basic block (He, Zhang, Ren and Sun, 2016, "Deep residual learning for image recognition", Fig. 2):
/// two 3×3 convolutions with batch norm, and the input added back before the last ReLU: y = relu(F(x) + x). The
/// block only has to learn the residual F, so a deep stack can start as (nearly) the identity and still train.
/// When the block changes the resolution or width, the shortcut is a 1×1 convolution with batch norm
/// ("downsample", the paper's option B). Names as in torchvision.
/// </summary>
public sealed class BasicBlock : Module
{
    public const int Expansion = 1;
    private readonly bool _projectShortcut;

    public BasicBlock(int inChannels, int planes, int stride = 1)
    {
        RegisterModule("conv1", new Conv2d(inChannels, planes, 3, stride: stride, padding: 1, bias: false));
        RegisterModule("bn1", new BatchNorm2d(planes));
        RegisterModule("conv2", new Conv2d(planes, planes, 3, padding: 1, bias: false));
        RegisterModule("bn2", new BatchNorm2d(planes));
        _projectShortcut = stride != 1 || inChannels != planes * Expansion;
        if (_projectShortcut) RegisterModule("downsample", ResNet.Shortcut(inChannels, planes * Expansion, stride));
    }

    public override Tensor Forward(Tensor x)
    {
        var z = ForwardChild("conv1", x);
        var y = ForwardChild<Module, Tensor>("bn1", bn => ResNet.NormalizeRelu(bn, z));
        z = ForwardChild("conv2", y);
        var identity = _projectShortcut ? ForwardChild("downsample", x) : x;
        return ForwardChild<Module, Tensor>("bn2", bn => ResNet.NormalizeRelu(bn, z, identity));
    }
}

/// <summary>
/// ResNet's bottleneck block (He et al., 2016, Fig. 5, for ResNet-50 and deeper): a 1×1 convolution reduces the
/// width, a 3×3 convolution works at the reduced width, a 1×1 convolution expands it 4×, then the shortcut is
/// added. Most of the depth costs little because the 3×3 runs on a quarter of the channels. The stride sits on the
/// 3×3 convolution ("ResNet v1.5", as in torchvision). Names as in torchvision.
/// </summary>
public sealed class Bottleneck : Module
{
    public const int Expansion = 4;
    private readonly bool _projectShortcut;

    public Bottleneck(int inChannels, int planes, int stride = 1)
    {
        RegisterModule("conv1", new Conv2d(inChannels, planes, 1, bias: false));
        RegisterModule("bn1", new BatchNorm2d(planes));
        RegisterModule("conv2", new Conv2d(planes, planes, 3, stride: stride, padding: 1, bias: false));
        RegisterModule("bn2", new BatchNorm2d(planes));
        RegisterModule("conv3", new Conv2d(planes, planes * Expansion, 1, bias: false));
        RegisterModule("bn3", new BatchNorm2d(planes * Expansion));
        _projectShortcut = stride != 1 || inChannels != planes * Expansion;
        if (_projectShortcut) RegisterModule("downsample", ResNet.Shortcut(inChannels, planes * Expansion, stride));
    }

    public override Tensor Forward(Tensor x)
    {
        var z = ForwardChild("conv1", x);
        var y = ForwardChild<Module, Tensor>("bn1", bn => ResNet.NormalizeRelu(bn, z));
        z = ForwardChild("conv2", y);
        y = ForwardChild<Module, Tensor>("bn2", bn => ResNet.NormalizeRelu(bn, z));
        z = ForwardChild("conv3", y);
        var identity = _projectShortcut ? ForwardChild("downsample", x) : x;
        return ForwardChild<Module, Tensor>("bn3", bn => ResNet.NormalizeRelu(bn, z, identity));
    }
}

/// <summary>Which residual block a <see cref="ResNet"/> stacks.</summary>
public enum ResidualBlock { Basic, Bottleneck }

/// <summary>
/// A residual network (He et al., 2016): a stem, stages of residual blocks — each stage after the first halves
/// the resolution with a stride-2 block and doubles the width — global average pooling and a linear classifier.
/// Two stems: ImageNet's (7×7 stride-2 convolution, batch norm, ReLU, 3×3 stride-2 max pool: ResNet-18/34/50,
/// with torchvision's parameter names conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0/1, fc, so
/// torchvision's and timm's state dicts load strictly) and the paper's small-image one (§4.2, CIFAR: one 3×3
/// convolution, no pooling, three stages of 16, 32, 64 channels: ResNet-20 is three stages of three basic blocks).
/// </summary>
public sealed class ResNet : Module
{
    public ResidualBlock Block { get; }
    public IReadOnlyList<int> Layers { get; }
    /// <summary>The stages' module names, first to last: layer1, layer2, ...</summary>
    public IReadOnlyList<string> StageNames => _stageNames;
    /// <summary>Channels of the pooled features the classifier (fc) reads.</summary>
    public int FeatureCount { get; }
    /// <summary>Channels of the images it takes.</summary>
    public int InChannels { get; }
    /// <summary>Channels of the stem and the first stage's planes.</summary>
    public int Width { get; }
    /// <summary>ImageNet's 7×7 stride-2 stem with max pooling (else the small-image 3×3 stem).</summary>
    public bool ImageNetStem => _imageNetStem;
    private readonly bool _imageNetStem;
    private readonly string[] _stageNames;

    /// <param name="layers">Blocks per stage (ResNet-18: 2, 2, 2, 2).</param>
    /// <param name="width">Channels of the stem and the first stage's planes (64 for ImageNet, 16 for ResNet-20);
    /// stage i has width·2^i planes.</param>
    /// <param name="imageNetStem">ImageNet's 7×7 stride-2 stem with max pooling, or the small-image 3×3 stem.</param>
    public ResNet(ResidualBlock block, int[] layers, int numClasses = 1000, int inChannels = 3, int width = 64,
        bool imageNetStem = true, Generator? generator = null)
    {
        if (layers.Length == 0 || layers.Any(n => n <= 0) || width <= 0 || numClasses <= 0 || inChannels <= 0)
            throw new ArgumentException($"ResNet: every stage needs at least one block, and widths and classes must be positive (layers [{string.Join(", ", layers)}], width {width}).");
        Block = block;
        Layers = layers.ToArray();
        _imageNetStem = imageNetStem;
        RegisterModule("conv1", imageNetStem
            ? new Conv2d(inChannels, width, 7, stride: 2, padding: 3, bias: false)
            : new Conv2d(inChannels, width, 3, padding: 1, bias: false));
        RegisterModule("bn1", new BatchNorm2d(width));
        if (imageNetStem) RegisterModule("maxpool", new MaxPool2d(3, stride: 2, padding: 1));
        int expansion = block == ResidualBlock.Basic ? BasicBlock.Expansion : Bottleneck.Expansion;
        int channels = width;
        _stageNames = new string[layers.Length];
        for (int stage = 0; stage < layers.Length; stage++)
        {
            int planes = width << stage;
            var blocks = new Sequential();
            for (int i = 0; i < layers[stage]; i++)
            {
                int stride = stage > 0 && i == 0 ? 2 : 1;
                blocks.Add(block == ResidualBlock.Basic ? new BasicBlock(channels, planes, stride) : new Bottleneck(channels, planes, stride));
                channels = planes * expansion;
            }
            _stageNames[stage] = $"layer{stage + 1}";
            RegisterModule(_stageNames[stage], blocks);
        }
        FeatureCount = channels;
        InChannels = inChannels;
        Width = width;
        RegisterModule("avgpool", new AdaptiveAvgPool2d(1));
        RegisterModule("fc", new Linear(channels, numClasses, generator: generator));
        InitializeWeights(generator);
    }

    /// <summary>relu(norm(x) + residual): while <paramref name="norm"/> is a batch norm (module surgery may have put
    /// anything there), in one pass over the data, forward and backward (<see cref="F.BatchNorm"/>).</summary>
    internal static Tensor NormalizeRelu(Module norm, Tensor x, Tensor? residual = null) => norm is BatchNorm bn
        ? bn.Forward(x, residual, relu: true)
        : (residual == null ? norm.Forward(x) : norm.Forward(x).Add(residual)).Relu();

    /// <summary>The 1×1 convolution + batch norm shortcut of a block that changes resolution or width.</summary>
    internal static Sequential Shortcut(int inChannels, int outChannels, int stride) =>
        new(new Conv2d(inChannels, outChannels, 1, stride: stride, bias: false), new BatchNorm2d(outChannels));

    /// <summary>He (Kaiming) normal initialisation of the convolutions, fan-out mode, as torchvision does; batch
    /// norm starts as the identity and the classifier keeps PyTorch's Linear default.</summary>
    private void InitializeWeights(Generator? generator)
    {
        foreach (var module in Modules())
            if (module is Conv2d conv)
                Init.KaimingNormal(conv.Weight, mode: FanMode.FanOut, nonlinearity: Nonlinearity.Relu, generator: generator);
    }

    /// <summary>ResNet-18: basic blocks, 2-2-2-2 (11.7 M parameters at 1000 classes).</summary>
    public static ResNet ResNet18(int numClasses = 1000, int inChannels = 3) => new(ResidualBlock.Basic, [2, 2, 2, 2], numClasses, inChannels);
    /// <summary>ResNet-34: basic blocks, 3-4-6-3.</summary>
    public static ResNet ResNet34(int numClasses = 1000, int inChannels = 3) => new(ResidualBlock.Basic, [3, 4, 6, 3], numClasses, inChannels);
    /// <summary>ResNet-50: bottleneck blocks, 3-4-6-3.</summary>
    public static ResNet ResNet50(int numClasses = 1000, int inChannels = 3) => new(ResidualBlock.Bottleneck, [3, 4, 6, 3], numClasses, inChannels);
    /// <summary>ResNet-20 for small images such as 28×28 (He et al., 2016, §4.2): 3×3 stem, three stages of three
    /// basic blocks with 16, 32 and 64 channels (0.27 M parameters).</summary>
    public static ResNet ResNet20(int numClasses = 10, int inChannels = 1, int width = 16) =>
        new(ResidualBlock.Basic, [3, 3, 3], numClasses, inChannels, width, imageNetStem: false);

    /// <summary>Logits (B, classes) for images (B, C, H, W).</summary>
    public override Tensor Forward(Tensor images)
    {
        if (images.Rank != 4) throw new ArgumentException($"ResNet takes (batch, channels, height, width) images, got {images.ShapeString}.");
        var stem = ForwardChild("conv1", images);
        var x = ForwardChild<Module, Tensor>("bn1", bn => NormalizeRelu(bn, stem));
        if (_imageNetStem) x = ForwardChild("maxpool", x);
        foreach (var stage in _stageNames) x = ForwardChild(stage, x);
        return ForwardChild("fc", ForwardChild("avgpool", x).Flatten(1)); // (B, classes)
    }
}
