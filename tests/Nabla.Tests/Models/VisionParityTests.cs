using Nabla.Models.Vision;
using Nabla.Tests.Parity;
using Close = Nabla.Tests.Ops.Close;

namespace Nabla.Tests.Models;

/// <summary>
/// ResNet and ViT against torchvision (tests/reference/make_vision_fixtures.py): state dicts made by torchvision's
/// own ResNet class (BasicBlock and Bottleneck, channel counts reduced to keep the file small) and by a timm-layout
/// ViT pinned to torchvision's VisionTransformer load strictly under their own names (num_batches_tracked as
/// int64), and the logits of a random batch match. A training-mode step of the ResNet-18 matches too: logits with
/// batch statistics, gradients through every block, running statistics and num_batches_tracked after it.
/// </summary>
public class VisionParityTests
{
    private static ParityFixture Fixture => ParityFixture.Get("vision_models.safetensors");

    private static Dictionary<string, Tensor> State(string model)
    {
        var prefix = model + "/state/";
        return Fixture.Tensors.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[prefix.Length..], kv => Fixture.Fresh(kv.Key));
    }

    private static ResNet LoadResNet(string name)
    {
        var meta = Fixture.Meta(name);
        var block = meta.GetProperty("block").GetString() == "BasicBlock" ? ResidualBlock.Basic : ResidualBlock.Bottleneck;
        var layers = meta.GetProperty("layers").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var model = new ResNet(block, layers, meta.GetProperty("classes").GetInt32(), width: meta.GetProperty("width").GetInt32());
        model.LoadStateDict(State(name), strict: true, source: name);
        return model;
    }

    [Theory]
    [InlineData("resnet18")]
    [InlineData("resnet50")]
    public void TorchvisionResNetLoadsStrictlyAndGivesItsLogits(string name)
    {
        var model = LoadResNet(name);
        model.Eval();
        Close.Assert(Fixture[name + "/logits"], model.Forward(Fixture[name + "/x"]), 1e-4, name + " logits");
    }

    [Fact]
    public void TorchvisionResNetTrainingStepMatches()
    {
        var model = LoadResNet("resnet18");
        model.Train();
        var logits = model.Forward(Fixture["resnet18/x"]);
        Close.Assert(Fixture["resnet18/train/logits"], logits, 1e-4, "training logits");
        logits.Backward(Fixture["resnet18/train/dy"]);
        var parameters = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var name in new[] { "conv1.weight", "layer1.0.bn1.weight", "layer2.0.downsample.0.weight", "fc.weight" })
            Close.Assert(Fixture["resnet18/train/grad/" + name], parameters[name].Grad!, 1e-3, "gradient of " + name);
        var buffers = model.NamedBuffers().ToDictionary(b => b.Name, b => b.Buffer);
        foreach (var name in new[] { "bn1.running_mean", "bn1.running_var", "layer4.1.bn2.running_var" })
            Close.Assert(Fixture["resnet18/train/after/" + name], buffers[name], 1e-4, name);
        Assert.Equal(Fixture["resnet18/train/after/bn1.num_batches_tracked"].ToIntArray(), buffers["bn1.num_batches_tracked"].ToIntArray());
    }

    [Fact]
    public void TimmVitLoadsStrictlyAndGivesItsLogitsAndGradients()
    {
        var c = Fixture.Meta("vit");
        int Get(string key) => c.GetProperty(key).GetInt32();
        var model = new VisionTransformer(Get("image"), Get("patch"), Get("dim"), Get("depth"), Get("heads"), Get("classes"), mlpHidden: Get("hidden"));
        model.LoadTimmStateDict(State("vit"), strict: true, source: "vit");
        model.Eval();
        var logits = model.Forward(Fixture["vit/x"]);
        Close.Assert(Fixture["vit/logits"], logits, 1e-4, "ViT logits");
        logits.Backward(Fixture["vit/dy"]);
        var parameters = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var name in new[] { "cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc1.bias", "norm.weight" })
            Close.Assert(Fixture["vit/grad/" + name], parameters[VisionTransformer.FromTimmName(name)].Grad!, 1e-3, "gradient of " + name);
    }

    [Fact]
    public void TorchvisionNamesAreTheModelsOwn()
    {
        var resnet50 = ResNet.ResNet50();
        var names = resnet50.StateDict().Keys.ToHashSet();
        foreach (var name in new[] { "conv1.weight", "bn1.num_batches_tracked", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
                     "layer1.0.downsample.1.running_var", "layer4.2.bn3.bias", "fc.weight", "fc.bias" })
            Assert.Contains(name, names);
        Assert.Equal(25_557_032, resnet50.ParameterCount);   // torchvision's resnet50
        Assert.Equal(11_689_512, ResNet.ResNet18().ParameterCount);   // torchvision's resnet18
        Assert.Equal(21_797_672, ResNet.ResNet34().ParameterCount);   // torchvision's resnet34
        Assert.Equal("blocks.3.attn.c_attn.weight", VisionTransformer.FromTimmName("blocks.3.attn.qkv.weight"));
        Assert.Equal("blocks.0.mlp.c_proj.bias", VisionTransformer.FromTimmName("blocks.0.mlp.fc2.bias"));
        Assert.Equal("patch_embed.proj.weight", VisionTransformer.FromTimmName("patch_embed.proj.weight"));
    }
}
