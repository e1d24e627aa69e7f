using Nabla.Models.Vision;
using Nabla.NN;

namespace Nabla.Tests.Models;

/// <summary>The 28×28 models: output shapes, parameter counts worked out from their papers' layer lists, a training
/// step that reaches every parameter, and errors naming the expected input.</summary>
public class VisionModelTests
{
    public static TheoryData<string> Models() => ["lenet", "vgg", "resnet20", "vit"];

    private static Module Create(string name) => name switch
    {
        "lenet" => new LeNet5(generator: new Generator(1)),
        "vgg" => new Vgg(generator: new Generator(1)),
        "resnet20" => ResNet.ResNet20(),
        _ => new VisionTransformer(28, 7, 32, 2, 4, 10, inChannels: 1, generator: new Generator(1)),
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void TrainingStepReachesEveryParameter(string name)
    {
        var model = Create(name);
        var images = Tensor.Randn(new Generator(2), 4, 1, 28, 28);
        var logits = model.Forward(images);
        Assert.Equal([4, 10], logits.Shape.ToArray());
        F.CrossEntropy(logits, Tensor.FromArray([0, 3, 7, 9])).Backward();
        foreach (var (parameter, tensor) in model.NamedParameters())
            Assert.True(tensor.Grad != null && tensor.Grad.Abs().Sum().Item() > 0, $"{name}: {parameter} got no gradient");
        model.Eval();
        Assert.Equal([4, 10], model.Forward(images).Shape.ToArray());
    }

    [Fact]
    public void ParameterCountsFollowThePapers()
    {
        // LeNet-5: C1 6·(25+1), C3 16·(6·25+1), C5 120·(400+1), F6 84·(120+1), output 10·(84+1).
        Assert.Equal(156 + 2416 + 48120 + 10164 + 850, new LeNet5().ParameterCount);
        // ResNet-20 with projection shortcuts at the two stage changes.
        Assert.Equal(272_186, ResNet.ResNet20().ParameterCount);
    }

    [Fact]
    public void WrongInputsAreNamed()
    {
        Assert.Equal("LeNet-5 takes (batch, channels, 28, 28) images, got [2, 1, 32, 32].",
            Assert.Throws<ArgumentException>(() => new LeNet5().Forward(Tensor.Zeros(2, 1, 32, 32))).Message);
        Assert.Equal("ViT: images must be (batch, channels, 28, 28), got [1, 1, 14, 14].",
            Assert.Throws<ArgumentException>(() => new VisionTransformer(28, 7, 8, 1, 2, 10, inChannels: 1).Forward(Tensor.Zeros(1, 1, 14, 14))).Message);
        Assert.Throws<ArgumentException>(() => new VisionTransformer(30, 7, 8, 1, 2, 10));
        Assert.Throws<InvalidOperationException>(() => new SelfAttention(8, 2, causal: false).Forward(Tensor.Zeros(1, 3, 8), new KvCache(1, 1, 2, 4, 4), 0));
    }
}
