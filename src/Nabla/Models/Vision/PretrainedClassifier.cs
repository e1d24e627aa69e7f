using System.Text.Json;
using System.Text.Json.Nodes;
using Nabla.Data;
using Nabla.IO;
using Nabla.NN;

namespace Nabla.Models.Vision;

/// <summary>How a pretrained classifier's images are prepared: the shorter side resized to <paramref name="Resize"/>
/// (with <paramref name="Filter"/>), the central <paramref name="Crop"/>×<paramref name="Crop"/> square kept, and each
/// channel normalised — timm's evaluation transform, Resize(⌊crop / crop_pct⌋) + CenterCrop(crop).</summary>
public sealed record ImagePreprocessing(int Resize, int Crop, Normalization Normalization, ResizeFilter Filter)
{
    /// <summary>The image file as the model expects it: (3, Crop, Crop).</summary>
    public Tensor Load(string path) => ImageFile.Load(path, Resize, Crop, Normalization, Normalization.Channels, Filter);
}

/// <summary>
/// An image classifier stored as the Hugging Face hub stores timm's models: a directory with <c>model.safetensors</c>
/// (the state dict in timm's names, which for ResNets are torchvision's) and timm's <c>config.json</c>
/// (<c>architecture</c>, optional <c>model_args</c>, and <c>pretrained_cfg</c>: input_size, interpolation, crop_pct,
/// mean, std, optionally label_names). ResNets (resnet18/34/50, any width) are built from the shapes of their
/// tensors; ViTs too, except for the number of heads, which is <c>model_args.num_heads</c> or, as in every timm
/// ViT, one per 64 channels.
/// </summary>
public sealed class PretrainedClassifier
{
    public const string WeightsFile = "model.safetensors", ConfigFile = "config.json";

    public Module Model { get; }
    public ImagePreprocessing Preprocessing { get; }
    public IReadOnlyList<string> Classes { get; }
    public string Architecture { get; }

    private PretrainedClassifier(Module model, ImagePreprocessing preprocessing, IReadOnlyList<string> classes, string architecture)
    {
        Model = model;
        Preprocessing = preprocessing;
        Classes = classes;
        Architecture = architecture;
    }

    /// <summary>Loads the model in <paramref name="directory"/> (in evaluation mode).</summary>
    public static PretrainedClassifier Load(string directory)
    {
        var weightsPath = Path.Combine(directory, WeightsFile);
        var configPath = Path.Combine(directory, ConfigFile);
        foreach (var path in new[] { weightsPath, configPath })
            if (!File.Exists(path)) throw new CheckpointException($"{path}: not found (a classifier directory holds {WeightsFile} and timm's {ConfigFile}).");
        JsonObject config;
        try
        {
            config = JsonNode.Parse(BoundedFile.ReadAllText(configPath, BoundedFile.SmallFileLimit, "a model configuration")) as JsonObject
                ?? throw new CheckpointException($"{configPath}: not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{configPath}: corrupt JSON ({ErrorText.Json(e)}).");
        }
        var architecture = Read(config, "architecture", configPath, n => n.GetValue<string>());
        var state = SafeTensors.Load(weightsPath);
        Module model = architecture.StartsWith("resnet", StringComparison.Ordinal) ? BuildResNet(state, weightsPath)
            : architecture.StartsWith("vit_", StringComparison.Ordinal) ? BuildViT(state, weightsPath, config["model_args"]?["num_heads"], configPath)
            : throw new CheckpointException($"{configPath}: architecture '{architecture}' is not one this reader builds (resnet18/34/50, vit_*).");
        model.Eval();
        var pretrained = Read(config, "pretrained_cfg", configPath, n => n.AsObject());
        var preprocessing = ReadPreprocessing(pretrained, configPath);
        int classes = state.TryGetValue("fc.weight", out var fc) ? fc.Size(0) : state["head.weight"].Size(0);
        var names = pretrained["label_names"] is JsonArray labels ? labels.Select(l => l?.GetValue<string>() ?? "").ToArray()
            : classes == ImageNet.Classes.Count ? ImageNet.Classes
            : Enumerable.Range(0, classes).Select(i => $"class {i}").ToArray();
        if (names.Count != classes) throw new CheckpointException($"{configPath}: {names.Count} label_names for a model of {classes} classes.");
        return new PretrainedClassifier(model, preprocessing, names, architecture);
    }

    /// <summary>Class probabilities (B, classes) for images (B, 3, crop, crop) prepared by <see cref="Preprocessing"/>.</summary>
    public Tensor Probabilities(Tensor images)
    {
        using var _ = Autograd.GradMode.NoGrad();
        return Model.Forward(images).Softmax(-1);
    }

    private static ImagePreprocessing ReadPreprocessing(JsonObject cfg, string path)
    {
        var size = Read(cfg, "input_size", path, n => n.AsArray().Select(v => v!.GetValue<int>()).ToArray());
        float[] Floats(string key) => Read(cfg, key, path, n => n.AsArray().Select(v => v!.GetValue<float>()).ToArray());
        var (mean, std) = (Floats("mean"), Floats("std"));
        double cropPct = cfg["crop_pct"] is null ? 0.875 : Read(cfg, "crop_pct", path, n => n.GetValue<double>()); // timm's default
        var interpolation = cfg["interpolation"]?.GetValue<string>() ?? "bilinear";
        if (size.Length != 3 || size[0] != mean.Length || mean.Length != std.Length || size[1] != size[2] || size[1] <= 0 || !(cropPct > 0 && cropPct <= 1))
            throw new CheckpointException($"{path}: pretrained_cfg needs input_size [channels, side, side], mean and std per channel and crop_pct in (0, 1].");
        var filter = interpolation switch
        {
            "bilinear" => ResizeFilter.Bilinear,
            "bicubic" => ResizeFilter.Bicubic,
            _ => throw new CheckpointException($"{path}: interpolation '{interpolation}' is not supported (bilinear, bicubic)."),
        };
        // timm: scale_size = floor(img_size / crop_pct)
        return new ImagePreprocessing((int)Math.Floor(size[1] / cropPct), size[1], new Normalization(mean, std), filter);
    }

    private static T Read<T>(JsonObject json, string key, string path, Func<JsonNode, T> read)
    {
        try { return json[key] is { } node ? read(node) : throw new CheckpointException($"{path}: no \"{key}\"."); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
        {
            throw new CheckpointException($"{path}: \"{key}\" has the wrong type or form ({e.Message}).");
        }
    }

    private static Tensor Required(IReadOnlyDictionary<string, Tensor> state, string name, string path, string kind) =>
        state.TryGetValue(name, out var t) ? t : throw new CheckpointException($"{path}: no tensor '{name}'; is it a {kind} state dict?");

    /// <summary>A ResNet shaped like the state dict: stem from conv1, block kind from conv3's presence, blocks per
    /// stage from the layerN.i names, width from conv1, classes from fc.</summary>
    private static ResNet BuildResNet(IReadOnlyDictionary<string, Tensor> state, string path)
    {
        var stem = Required(state, "conv1.weight", path, "ResNet");
        var block = state.ContainsKey("layer1.0.conv3.weight") ? ResidualBlock.Bottleneck : ResidualBlock.Basic;
        var layers = new List<int>();
        for (int stage = 1; state.ContainsKey($"layer{stage}.0.conv1.weight"); stage++)
            layers.Add(Enumerable.Range(0, int.MaxValue).TakeWhile(i => state.ContainsKey($"layer{stage}.{i}.conv1.weight")).Count());
        if (layers.Count == 0) throw new CheckpointException($"{path}: no layer1.0.conv1.weight; is it a ResNet state dict?");
        int classes = Required(state, "fc.weight", path, "ResNet").Size(0);
        var model = new ResNet(block, layers.ToArray(), classes, inChannels: stem.Size(1), width: stem.Size(0), imageNetStem: stem.Size(2) == 7);
        model.LoadStateDict(state, strict: true, source: path);
        return model;
    }

    /// <summary>A ViT shaped like the state dict (timm's names); heads from model_args or 64 channels per head.</summary>
    private static VisionTransformer BuildViT(IReadOnlyDictionary<string, Tensor> state, string path, JsonNode? heads, string configPath)
    {
        var patch = Required(state, "patch_embed.proj.weight", path, "timm ViT");
        int dim = patch.Size(0), patchSize = patch.Size(2);
        int tokens = Required(state, "pos_embed", path, "timm ViT").Size(1);
        int side = (int)Math.Round(Math.Sqrt(tokens - 1));
        if (side * side != tokens - 1) throw new CheckpointException($"{path}: pos_embed has {tokens} positions, not a class token and a square grid of patches.");
        int depth = Enumerable.Range(0, int.MaxValue).TakeWhile(i => state.ContainsKey($"blocks.{i}.norm1.weight")).Count();
        int hidden = Required(state, "blocks.0.mlp.fc1.weight", path, "timm ViT").Size(0);
        int classes = Required(state, "head.weight", path, "timm ViT").Size(0);
        int headCount;
        try { headCount = heads?.GetValue<int>() ?? dim / 64; }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{configPath}: model_args.num_heads is not a whole number ({e.Message}).");
        }
        if (headCount <= 0 || dim % headCount != 0) throw new CheckpointException($"{configPath}: {headCount} heads do not split the width {dim} (give model_args.num_heads).");
        var model = new VisionTransformer(side * patchSize, patchSize, dim, depth, headCount, classes, patch.Size(1), hidden);
        model.LoadTimmStateDict(state, strict: true, source: path);
        return model;
    }
}

/// <summary>ImageNet-1k's class names in index order (torchvision's table), for classifiers of 1000 classes.</summary>
public static class ImageNet
{
    private static readonly Lazy<string[]> Names = new(() =>
    {
        using var stream = typeof(ImageNet).Assembly.GetManifestResourceStream("Nabla.Models.Vision.imagenet_classes.txt")!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    });

    public static IReadOnlyList<string> Classes => Names.Value;
}

/// <summary>
/// A classifier published on the Hugging Face hub that <c>nabla model fetch NAME</c> downloads: timm's
/// model.safetensors at a fixed revision, checked against its SHA-256, and beside it the config.json timm publishes
/// with it (architecture and preprocessing, written from the values here, so only the weights travel).
/// </summary>
public sealed record PublishedClassifier(string Name, string Repository, string Revision, string Sha256, string Description,
    string Architecture, string Interpolation, double CropPct, float[] Mean, float[] Std)
{
    /// <summary>torchvision's ImageNet ResNet-18 (IMAGENET1K_V1, 69.8% top-1) as timm republished it. SHA-256 and
    /// revision as pinned, independently of each other, by several public projects that load this file.</summary>
    public static PublishedClassifier ResNet18 { get; } = new("resnet18", "timm/resnet18.tv_in1k", "bbd144b3e5565108aad885f145491d11bc6ce807",
        "694f673df6520a3158624e8a89af086f59923ee4cd7436fe5bc3bc71d295ad81", "torchvision's ImageNet ResNet-18 (timm/resnet18.tv_in1k)",
        "resnet18", "bilinear", 0.875, [0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);

    /// <summary>ViT-Ti/16 (Steiner et al., 2021, "How to train your ViT?"): ImageNet-21k, fine-tuned on ImageNet-1k;
    /// 5.7 M parameters, 75.5% top-1. SHA-256 and revision as pinned by public projects that load this file.</summary>
    public static PublishedClassifier VitTiny { get; } = new("vit-tiny", "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k",
        "7d3afdd0cf93ad84d986eb2d6bcc5812ebd0b106", "fecf81b492bd13ee7a5297cb74d1d417aac8bf7e1b7d96aed89c4691984587ed",
        "a ViT-Tiny/16 trained on ImageNet-21k and fine-tuned on ImageNet-1k (timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k)",
        "vit_tiny_patch16_224", "bicubic", 0.9, [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f]);

    public static IReadOnlyList<PublishedClassifier> All { get; } = [ResNet18, VitTiny];

    public static PublishedClassifier? Find(string name) => All.FirstOrDefault(m => m.Name == name);

    /// <summary>The weights file at the pinned revision (or in <paramref name="baseUrl"/>, a mirror folder).</summary>
    public RemoteFile Weights(string? baseUrl = null) =>
        new(PretrainedClassifier.WeightsFile, (baseUrl ?? $"https://huggingface.co/{Repository}/resolve/{Revision}/") + PretrainedClassifier.WeightsFile, Sha256);

    /// <summary>Writes timm's config.json for the model into <paramref name="directory"/>.</summary>
    public void WriteConfig(string directory)
    {
        var config = new JsonObject
        {
            ["architecture"] = Architecture,
            ["num_classes"] = 1000,
            ["pretrained_cfg"] = new JsonObject
            {
                ["hf_hub_id"] = Repository, ["input_size"] = new JsonArray(3, 224, 224), ["interpolation"] = Interpolation,
                ["crop_pct"] = CropPct, ["crop_mode"] = "center", ["mean"] = new JsonArray(Mean.Select(v => (JsonNode)v).ToArray()),
                ["std"] = new JsonArray(Std.Select(v => (JsonNode)v).ToArray()), ["num_classes"] = 1000,
            },
        };
        AtomicFile.WriteAllText(Path.Combine(directory, PretrainedClassifier.ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
