using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models;
using Nabla.Models.Vision;
using Nabla.NN;

namespace Nabla.Cli.Runs;

/// <summary>Everything that defines an image-classifier training run; saved as config.json in the run directory
/// (and in model.safetensors' metadata), so --resume and `nabla eval` rebuild the same model.</summary>
public sealed record VisionRunConfig
{
    /// <summary>lenet, vgg, resnet (ResNet-20), vit, or mlp (`nabla train mlp --dataset`).</summary>
    public string Architecture { get; init; } = "lenet";
    /// <summary>fashion-mnist or mnist.</summary>
    public string Dataset { get; init; } = "fashion-mnist";
    public int Epochs { get; init; }
    public int BatchSize { get; init; }
    public float LearningRate { get; init; }
    public string Optimizer { get; init; } = "adamw";
    public float WeightDecay { get; init; }
    public float Momentum { get; init; } = 0.9f;
    public bool Augment { get; init; } = true;
    /// <summary>Probability of random erasing when augmenting Fashion-MNIST (the shifts and flips stay on).</summary>
    public float Erasing { get; init; } = ImageAugmentation.FashionMnist.ErasingProbability;
    /// <summary>Label smoothing of the training loss (Szegedy et al., 2016): the target puts this much mass uniformly on all classes.</summary>
    public float LabelSmoothing { get; init; }
    /// <summary>Train on the first this many training images (0: all).</summary>
    public int Subset { get; init; }
    /// <summary>ResNet: channels of the first stage (0: 16, ResNet-20's); ViT: token width (0: 64). The knob of a width sweep.</summary>
    public int Width { get; init; }
    /// <summary>ResNet: basic blocks per stage (0: 3, ResNet-20's; n gives ResNet-(6n+2)); ViT: encoder blocks (0: 6). The knob of a depth sweep.</summary>
    public int Depth { get; init; }
    /// <summary>ViT only: side of its square patches (0: <see cref="VisionRun.DefaultPatchSize"/>), a divisor of the 28-pixel image side.</summary>
    public int PatchSize { get; init; }
    /// <summary>Share of training labels replaced by a random wrong class (<see cref="LabelNoise"/>); the test set stays clean.</summary>
    public double LabelNoise { get; init; }
    /// <summary>MLP only: hidden layer sizes.</summary>
    public int[] Hidden { get; init; } = [];
    /// <summary>MLP only: dropout probability after each hidden layer.</summary>
    public float Dropout { get; init; }
    public ulong Seed { get; init; } = 1;

    /// <summary>The image models with a `nabla train` command of their own; the MLP shares `nabla train mlp` with tabular data.</summary>
    public static readonly string[] Architectures = ["lenet", "vgg", "resnet", "vit"];
    public static readonly string[] Datasets = ["fashion-mnist", "mnist"];

    /// <summary>Settings that train each model well on Fashion-MNIST: AdamW for the small LeNet, VGG and the ViT
    /// (which needs more epochs and weight decay), SGD with momentum 0.9 and lr 0.1 for the ResNet, as in its paper.</summary>
    public static VisionRunConfig Defaults(string architecture) => architecture switch
    {
        "lenet" => new() { Architecture = "lenet", Epochs = 15, BatchSize = 128, LearningRate = 2e-3f, Optimizer = "adamw", WeightDecay = 5e-4f },
        "vgg" => new() { Architecture = "vgg", Epochs = 20, BatchSize = 128, LearningRate = 2e-3f, Optimizer = "adamw", WeightDecay = 5e-4f },
        "resnet" => new() { Architecture = "resnet", Epochs = 15, BatchSize = 128, LearningRate = 0.1f, Optimizer = "sgd", WeightDecay = 5e-4f },
        "vit" => new() { Architecture = "vit", Epochs = 30, BatchSize = 128, LearningRate = 1e-3f, Optimizer = "adamw", WeightDecay = 0.05f },
        "mlp" => new() { Architecture = "mlp", Epochs = 40, BatchSize = 128, LearningRate = 1e-3f, Optimizer = "adamw", WeightDecay = 1e-4f, Hidden = [1024, 1024], Dropout = 0.2f, Erasing = 0 },
        _ => throw new CliException($"unknown model '{architecture}' ({string.Join(", ", Architectures)})."),
    };

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public void Save(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, Json));

    public static VisionRunConfig Load(string path)
    {
        if (!File.Exists(path)) throw new CliException($"{path}: not found (is this a run directory written by `nabla train lenet|vgg|resnet|vit`?).");
        try
        {
            return JsonSerializer.Deserialize<VisionRunConfig>(BoundedFile.ReadAllText(path, BoundedFile.SmallFileLimit, "a run configuration"), Json) ?? throw new CliException($"{path}: empty config.");
        }
        catch (JsonException e)
        {
            throw new CliException($"{path}: corrupt config ({ErrorText.Json(e)}).");
        }
    }
}

/// <summary>
/// An image-classifier run directory: config.json, model.safetensors (the model of the last finished epoch, its
/// config in the metadata), checkpoints/ (for --resume), metrics.jsonl, loss.png, accuracy.png and
/// confusion.png (test set).
/// </summary>
public sealed class VisionRun(string directory)
{
    public string Directory { get; } = directory;
    public string ConfigPath => Path.Combine(Directory, "config.json");
    public string ModelPath => Path.Combine(Directory, "model.safetensors");
    public string ConfusionPath => Path.Combine(Directory, "confusion.png");

    /// <summary>Whether <paramref name="directory"/> holds a run of `nabla train lenet|vgg|resnet|vit` (its config names an architecture).</summary>
    public static bool IsVisionRun(string directory)
    {
        var path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) return false;
        // Not readable as a config (a pipe, a huge file, bad JSON): not a vision run; the MLP reader then names the problem.
        try { return JsonNode.Parse(BoundedFile.ReadAllText(path, BoundedFile.SmallFileLimit, "a run configuration")) is JsonObject o && o.ContainsKey(nameof(VisionRunConfig.Architecture)); }
        catch (Exception e) when (e is JsonException or InputFileException) { return false; }
    }

    public static IdxDataset Dataset(VisionRunConfig config) => config.Dataset switch
    {
        "fashion-mnist" => IdxDataset.FashionMnist,
        "mnist" => IdxDataset.Mnist,
        _ => throw new CliException($"--dataset: unknown dataset '{config.Dataset}' ({string.Join(", ", VisionRunConfig.Datasets)})."),
    };

    /// <summary>Training augmentation: shifts, flips and erasing for clothes; no flips for digits (a mirrored 2 is no 2).</summary>
    public static ImageAugmentation? Augmentation(VisionRunConfig config) =>
        !config.Augment ? null : config.Dataset == "mnist" ? new ImageAugmentation { CropPadding = 2 } : ImageAugmentation.FashionMnist with { ErasingProbability = config.Erasing };

    /// <summary>The untrained model the config describes, for 28×28 grey-scale images of <paramref name="classes"/> classes
    /// (initial weights from the default generator, which the caller seeds).</summary>
    public static Module BuildModel(VisionRunConfig config, int classes) => config.Architecture switch
    {
        "lenet" => new LeNet5(classes, inChannels: 1),
        "vgg" => new Vgg(classes, inChannels: 1),
        "resnet" => new ResNet(ResidualBlock.Basic, Enumerable.Repeat(config.Depth > 0 ? config.Depth : 3, 3).ToArray(), classes, inChannels: 1,
            width: config.Width > 0 ? config.Width : 16, imageNetStem: false),
        "vit" => new VisionTransformer(imageSize: ImageSide, patchSize: PatchSize(config), dim: VitWidth(config), depth: VitDepth(config), heads: VitHeads,
            numClasses: classes, inChannels: 1, mlpHidden: 2 * VitWidth(config)),
        // The pixels of a (1, 28, 28) image as 784 inputs.
        "mlp" => new Sequential(new Flatten(), new Mlp(28 * 28, config.Hidden, classes, dropout: config.Dropout)),
        _ => throw new CliException($"unknown model '{config.Architecture}' ({string.Join(", ", VisionRunConfig.Architectures)})."),
    };

    /// <summary>The side of Fashion-MNIST's and MNIST's images.</summary>
    public const int ImageSide = 28;

    /// <summary>The ViT's patches: 7×7, 16 of them to an image.</summary>
    public const int DefaultPatchSize = 7;

    public static int PatchSize(VisionRunConfig config) => config.PatchSize > 0 ? config.PatchSize : DefaultPatchSize;

    /// <summary>The ViT's default size: 6 blocks of width 64 (about 206k parameters), with 4 heads of 16 at that width.</summary>
    public const int DefaultVitWidth = 64, DefaultVitDepth = 6, VitHeads = 4;

    private static int VitWidth(VisionRunConfig config) => config.Width > 0 ? config.Width : DefaultVitWidth;
    private static int VitDepth(VisionRunConfig config) => config.Depth > 0 ? config.Depth : DefaultVitDepth;

    private static string DescribeVit(int patchSize, int depth = DefaultVitDepth, int width = DefaultVitWidth) =>
        $"ViT ({patchSize}×{patchSize} patches, {depth} blocks, width {width})";

    /// <summary>A human name for the model ("ResNet-20").</summary>
    public static string Describe(string architecture) => architecture switch
    {
        "lenet" => "LeNet-5", "vgg" => "VGG-style", "resnet" => "ResNet-20", "vit" => DescribeVit(DefaultPatchSize), "mlp" => "MLP", _ => architecture,
    };

    /// <summary>A human name for the model a config builds, with the sizes the options changed ("ResNet-8, width 32", "MLP 784 → 1024 → 10").</summary>
    public static string Describe(VisionRunConfig config) => config.Architecture switch
    {
        "resnet" => $"ResNet-{6 * (config.Depth > 0 ? config.Depth : 3) + 2}{(config.Width > 0 && config.Width != 16 ? $", width {config.Width}" : "")}",
        "vit" => DescribeVit(PatchSize(config), VitDepth(config), VitWidth(config)),
        "mlp" => $"MLP {string.Join(" → ", [28 * 28, .. config.Hidden, Dataset(config).Classes.Count])}",
        _ => Describe(config.Architecture),
    };

    public void SaveModel(Module model, VisionRunConfig config, int epoch) => model.Save(ModelPath, new Dictionary<string, string>
    {
        ["format"] = "nabla-vision",
        ["epoch"] = epoch.ToString(CultureInfo.InvariantCulture),
        ["config"] = JsonSerializer.Serialize(config),
    });

    /// <summary>The config and the trained model of a finished (or interrupted) run.</summary>
    public (VisionRunConfig Config, Module Model) Load()
    {
        if (!System.IO.Directory.Exists(Directory)) throw new CliException($"{Directory}: run directory not found.");
        var config = VisionRunConfig.Load(ConfigPath);
        if (!File.Exists(ModelPath)) throw new CliException($"{ModelPath}: not found; the run has not finished an epoch.");
        var model = BuildModel(config, Dataset(config).Classes.Count);
        model.Load(ModelPath);
        return (config, model);
    }
}
