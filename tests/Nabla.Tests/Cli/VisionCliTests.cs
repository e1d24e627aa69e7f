using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Nabla.Cli.Runs;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Vision;
using Nabla.Tests.Data;

namespace Nabla.Tests.Cli;

[Collection("Console")]
public class VisionCliTests : CliTest
{
    private static string TestAccuracy(string output) => Regex.Match(output, @"test accuracy: (\d+\.\d+)%").Groups[1].Value;

    private static bool IsPng(string path) => File.ReadAllBytes(path).AsSpan(0, 8).SequenceEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A });

    /// <summary>One run through the whole life of a vision run (kept in one test: each step reads the ~50 MB of images).</summary>
    [FashionMnistFact]
    public void TrainLeNetWritesARunThatEvalReproducesAndResumeContinues()
    {
        var run = Path.Combine(TempDir, "lenet");
        var (exit, output, error) = CliRunner.Run("train", "lenet", "--subset", "2000", "--epochs", "1", "--out", run);
        Assert.True(exit == 0, error);
        foreach (var file in new[] { "config.json", "model.safetensors", "metrics.jsonl", "loss.png", "accuracy.png", "confusion.png" })
            Assert.True(File.Exists(Path.Combine(run, file)), $"{file} missing from the run directory");
        foreach (var chart in new[] { "loss.png", "accuracy.png", "confusion.png" }) Assert.True(IsPng(Path.Combine(run, chart)), $"{chart} is not a PNG");
        var metrics = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(16, metrics.Count(l => l.Contains("\"loss\""))); // 2000 images in batches of 128
        Assert.Single(metrics, l => l.Contains("\"val_accuracy\""));   // the test set after the epoch

        // The final test accuracy is the epoch's evaluation, well above chance (10 %) after 16 steps,
        // and the per-class table names Fashion-MNIST's classes.
        var trained = TestAccuracy(output);
        double logged = JsonNode.Parse(metrics.Last(l => l.Contains("val_accuracy")))!["val_accuracy"]!.GetValue<double>();
        Assert.Equal((100 * logged).ToString("F2", System.Globalization.CultureInfo.InvariantCulture), trained);
        Assert.True(double.Parse(trained, System.Globalization.CultureInfo.InvariantCulture) > 35, $"LeNet should pass 35% after one short epoch, got {trained}%");
        foreach (var name in IdxDataset.FashionMnist.Classes) Assert.Contains(name, output);

        // The saved model carries its config, and eval rebuilds it to the same test accuracy.
        var metadata = SafeTensors.ReadHeader(Path.Combine(run, "model.safetensors")).Metadata;
        Assert.Equal("nabla-vision", metadata["format"]);
        Assert.Contains("\"Architecture\":\"lenet\"", metadata["config"]);
        File.Delete(Path.Combine(run, "confusion.png"));
        var (evalExit, evalOut, evalErr) = CliRunner.Run("eval", "--run", run);
        Assert.True(evalExit == 0, evalErr);
        Assert.Equal(trained, TestAccuracy(evalOut));
        Assert.True(File.Exists(Path.Combine(run, "confusion.png")));

        // A run stopped after its first epoch (its config asks for 2; a crash tore the metrics line being written) continues.
        var config = Path.Combine(run, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"Epochs\": 1", "\"Epochs\": 2"));
        File.AppendAllText(Path.Combine(run, "metrics.jsonl"), "{\"step\":17,\"lo");
        var (resumeExit, resumeOut, resumeErr) = CliRunner.Run("train", "lenet", "--out", run, "--resume");
        Assert.True(resumeExit == 0, resumeErr);
        Assert.Contains("resumed from the checkpoint at epoch 1", resumeOut);
        metrics = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(Enumerable.Range(1, 32), metrics.Where(l => l.Contains("\"loss\"")).Select(l => JsonNode.Parse(l)!["step"]!.GetValue<int>()));
        Assert.Equal(2, metrics.Count(l => l.Contains("\"val_accuracy\"")));
        Assert.Equal("2", SafeTensors.ReadHeader(Path.Combine(run, "model.safetensors")).Metadata["epoch"]);

        // Resuming as another model, or training over the run, is refused in one line.
        var wrongModel = CliRunner.Run("train", "resnet", "--out", run, "--resume");
        Assert.Equal(1, wrongModel.Exit);
        Assert.Contains("is a lenet run", wrongModel.Err);
        var again = CliRunner.Run("train", "lenet", "--out", run);
        Assert.Equal(1, again.Exit);
        Assert.Contains("already holds a training run", again.Err);
    }

    /// <summary>`train mlp --dataset` trains the MLP on the pixels through the image trainer: a vision run that eval reads.</summary>
    [FashionMnistFact]
    public void TrainMlpOnImagesWritesAVisionRun()
    {
        var run = Path.Combine(TempDir, "mlp");
        var (exit, output, error) = CliRunner.Run("train", "mlp", "--dataset", "fashion-mnist", "--hidden", "32", "--epochs", "1", "--out", run);
        Assert.True(exit == 0, error);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!;
        Assert.Equal("mlp", config["Architecture"]!.GetValue<string>());
        Assert.Equal([32], config["Hidden"]!.AsArray().Select(h => h!.GetValue<int>()));
        Assert.False(config["Augment"]!.GetValue<bool>());
        // 784 → 32 → 10; one epoch of 60,000 images takes a linear model well past chance.
        Assert.Contains("MLP 784 → 32 → 10, 25,450 parameters", output);
        double accuracy = double.Parse(TestAccuracy(output), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(accuracy > 75, $"an MLP should pass 75% on Fashion-MNIST after one epoch, got {accuracy}%");
        var (evalExit, evalOut, evalErr) = CliRunner.Run("eval", "--run", run);
        Assert.True(evalExit == 0, evalErr);
        Assert.Equal(TestAccuracy(output), TestAccuracy(evalOut));
    }

    /// <summary>--patch sets the ViT's patches (4: 7×7 = 49 of them, plus the class token); a config.json written before the
    /// option existed has no PatchSize and rebuilds the 7×7-patch ViT it was trained as (4×4 + 1 positions).</summary>
    [Fact]
    public void VitPatchSizeSetsTheTokensAndOldRunsKeepSevenPixelPatches()
    {
        var vit = VisionRunConfig.Defaults("vit");
        Assert.Equal([1, 50, 64], ((VisionTransformer)VisionRun.BuildModel(vit with { PatchSize = 4 }, 10)).PositionEmbedding.Shape.ToArray());
        var saved = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(vit))!.AsObject();
        Assert.True(saved.Remove(nameof(VisionRunConfig.PatchSize)));
        var path = Path.Combine(TempDir, "config.json");
        File.WriteAllText(path, saved.ToJsonString());
        Assert.Equal([1, 17, 64], ((VisionTransformer)VisionRun.BuildModel(VisionRunConfig.Load(path), 10)).PositionEmbedding.Shape.ToArray());
    }

    /// <summary>--width and --depth size the ViT (token width, MLP twice as wide, encoder blocks); 0 keeps 64 and 6.</summary>
    [Fact]
    public void VitWidthAndDepthSizeTheEncoder()
    {
        var vit = VisionRunConfig.Defaults("vit");
        var wide = VisionRun.BuildModel(vit with { Width = 96, Depth = 2 }, 10);
        Assert.Equal([1, 17, 96], ((VisionTransformer)wide).PositionEmbedding.Shape.ToArray());
        // Counted by hand for width d = 96, 2 blocks, 7×7 patches: patch projection 49d + d, class token and 17 positions 18d,
        // per block 8d² + 11d (qkv 3d² + 3d, projection d² + d, MLP 2d² + 2d and 2d² + d, two norms 4d), final norm 2d, head 10d + 10.
        Assert.Equal(49L * 96 + 96 + 18 * 96 + 2 * (8 * 96 * 96 + 11 * 96) + 2 * 96 + 10 * 96 + 10, wide.ParameterCount);
        Assert.Equal(205_962L, VisionRun.BuildModel(vit, 10).ParameterCount); // the default: width 64, 6 blocks
        Assert.Equal("ViT (7×7 patches, 2 blocks, width 96)", VisionRun.Describe(vit with { Width = 96, Depth = 2 }));
    }

    [Theory]
    [InlineData("train lenet --epochs 0", "--epochs must be a positive integer")]
    [InlineData("train vgg --batch-size -3", "--batch-size must be a positive integer")]
    [InlineData("train resnet --lr -0.1", "--lr must be a finite positive number")]
    [InlineData("train vit --weight-decay -1", "--weight-decay must be a finite non-negative number")]
    [InlineData("train lenet --subset -5", "--subset must be a non-negative integer")]
    [InlineData("train lenet --augment maybe", "--augment must be on or off")]
    [InlineData("train lenet --dataset cifar10", "--dataset must be one of fashion-mnist, mnist")]
    [InlineData("train resnet --optimizer lion", "--optimizer must be one of")]
    [InlineData("train lenet --epochs many", "many")]
    [InlineData("train lenet --resume", "--resume needs --out")]
    [InlineData("train lenet --erasing 1.5", "--erasing must be a finite non-negative number no larger than 1")]
    [InlineData("train vgg --label-smoothing 1", "--label-smoothing must be a number in [0, 1)")]
    [InlineData("train vit --patch 5", "--patch must divide the image side 28")]
    [InlineData("train vgg --patch 4", "--patch applies to the vit model only")]
    [InlineData("train vit --width 90", "--width of a vit must be a multiple of its 4 attention heads")]
    [InlineData("train lenet --depth 2", "--depth applies to the resnet and vit models only")]
    [InlineData("train mlp --dataset cifar10", "--dataset must be one of fashion-mnist, mnist")]
    [InlineData("train mlp --dataset fashion-mnist --csv data.csv", "--csv does not apply to an MLP on images (--dataset)")]
    [InlineData("train mlp --augment on", "--augment applies to image datasets only (--dataset)")]
    [InlineData("train mlp --label-noise 0.2", "--label-noise applies to image datasets only (--dataset)")]
    public void BadOptionsGetOneClearLineNamingTheOption(string args, string expected)
    {
        var (exit, output, error) = CliRunner.Run(args.Split(' '));
        Assert.NotEqual(0, exit);
        Assert.Contains(expected, error);
        Assert.Single(error.Split('\n'), l => l.StartsWith("error:"));
        Assert.DoesNotContain("   at ", error); // no stack trace
        Assert.DoesNotContain("Usage:", output + error);
    }
}
