using System.Text.Json.Nodes;
using Nabla.Cli.Runs;
using Nabla.IO;

namespace Nabla.Tests.Cli;

/// <summary>`nabla finetune resnet` on the 8×8 digits, from a ResNet-20 run directory as `nabla train resnet` leaves
/// it (random weights here: what is checked is the command, not the transfer).</summary>
[Collection("Console")]
public class FinetuneCliTests : CliTest
{
    private string BaseRun()
    {
        var dir = Path.Combine(TempDir, "base");
        Directory.CreateDirectory(dir);
        var config = VisionRunConfig.Defaults("resnet");
        var run = new VisionRun(dir);
        config.Save(run.ConfigPath);
        Generator.ManualSeed(5);
        run.SaveModel(VisionRun.BuildModel(config, 10), config, epoch: 1);
        return dir;
    }

    [Fact]
    public void FineTunesTheNewLayersOfARunAndWritesAVisionRun()
    {
        var baseRun = BaseRun();
        var digits = TestData.File("sklearn/digits.csv.gz");
        var before = SafeTensors.Load(Path.Combine(baseRun, "model.safetensors"));
        var output = Path.Combine(TempDir, "tuned");
        var (exit, stdout, stderr) = CliRunner.Run("finetune", "resnet", "--base", baseRun, "--dataset", digits, "--examples-per-class", "10",
            "--epochs", "2", "--out", output);
        Assert.True(exit == 0, stderr);
        // Every 5th digit of each class is held out: 35+36+35+36+36+36+36+35+34+36 of the 1,797.
        Assert.Contains("100 training images (10 per class), 355 test images", stdout);
        Assert.Contains("test accuracy:", stdout);
        foreach (var file in new[] { "config.json", "model.safetensors", "metrics.jsonl", "loss.png", "accuracy.png", "confusion.png" })
            Assert.True(File.Exists(Path.Combine(output, file)), $"{file} missing");
        Assert.Equal(2, File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Count(l => l.Contains("val_accuracy")));
        Assert.Equal(10, JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["ExamplesPerClass"]!.GetValue<int>());

        // The saved body is the base model, untouched (its fc replaced by the identity, so absent).
        var tuned = SafeTensors.Load(Path.Combine(output, "model.safetensors"));
        foreach (var (name, tensor) in before.Where(kv => !kv.Key.StartsWith("fc.")))
            Assert.True(tensor.ToArray().AsSpan().SequenceEqual(tuned["body." + name].ToArray()), $"body.{name} changed");
        Assert.DoesNotContain(tuned.Keys, k => k.StartsWith("body.fc."));
        Assert.Contains("head.weight", tuned.Keys);

        // eval rebuilds the model from the run and its base, to the same test accuracy.
        string Accuracy(string text) => System.Text.RegularExpressions.Regex.Match(text, @"test accuracy: (\d+\.\d+)%").Groups[1].Value;
        var (evalExit, evalOut, evalErr) = CliRunner.Run("eval", "--run", output);
        Assert.True(evalExit == 0, evalErr);
        Assert.Equal(Accuracy(stdout), Accuracy(evalOut));
    }

    [Fact]
    public void UnfreezeAllTrainsEveryLayerStartingFromThePretrainedWeights()
    {
        var baseRun = BaseRun();
        var before = SafeTensors.Load(Path.Combine(baseRun, "model.safetensors"));
        var output = Path.Combine(TempDir, "full");
        var (exit, stdout, stderr) = CliRunner.Run("finetune", "resnet", "--base", baseRun, "--dataset", TestData.File("sklearn/digits.csv.gz"),
            "--examples-per-class", "5", "--epochs", "1", "--unfreeze-all", "--out", output);
        Assert.True(exit == 0, stderr);
        var counts = System.Text.RegularExpressions.Regex.Match(stdout, @"([\d,]+) of ([\d,]+) parameters trained");
        Assert.True(counts.Success, stdout);
        Assert.Equal(counts.Groups[2].Value, counts.Groups[1].Value);
        // Two AdamW steps at lr ≤ 1e-2 move each weight by at most ~0.02: the body moved, but from the base's weights,
        // not from a fresh random draw (which differs from them by the weights' own size, ~0.1–1).
        var tuned = SafeTensors.Load(Path.Combine(output, "model.safetensors"));
        var baseWeights = before["conv1.weight"].ToArray();
        var tunedWeights = tuned["body.conv1.weight"].ToArray();
        double largestChange = baseWeights.Zip(tunedWeights, (a, b) => Math.Abs(a - b)).Max();
        Assert.InRange(largestChange, 1e-6, 0.05);
    }

    [Fact]
    public void TheFineTuningRecipeOptionsApplyAndValidationLeavesTheTestSetAlone()
    {
        var baseRun = BaseRun();
        var before = SafeTensors.Load(Path.Combine(baseRun, "model.safetensors"));
        var output = Path.Combine(TempDir, "recipe");
        var (exit, stdout, stderr) = CliRunner.Run("finetune", "resnet", "--base", baseRun, "--dataset", TestData.File("sklearn/digits.csv.gz"),
            "--examples-per-class", "5", "--epochs", "2", "--eval-every", "2", "--unfreeze-all", "--body-lr", "1e-7", "--adapt-batch-norm",
            "--probe-steps", "3", "--shift", "1", "--validate", "--out", output);
        Assert.True(exit == 0, stderr);
        // The training split keeps 1,442 of the 1,797 digits; 50 are trained on, the other 1,392 validate.
        Assert.Contains("50 training images (5 per class), 1,392 validation images", stdout);
        Assert.Contains("(pretrained layers 1E-07)", stdout);
        Assert.Contains("validation accuracy:", stdout);
        Assert.DoesNotContain("test accuracy:", stdout);
        Assert.Single(File.ReadAllLines(Path.Combine(output, "metrics.jsonl")), l => l.Contains("val_accuracy"));
        // At a body learning rate of 1e-7 four AdamW steps move a body weight by less than 1e-5; the adapter, at
        // the full rate, moves by orders of magnitude more.
        var tuned = SafeTensors.Load(Path.Combine(output, "model.safetensors"));
        double LargestChange(string baseName, string tunedName) => before.TryGetValue(baseName, out var b)
            ? b.ToArray().Zip(tuned[tunedName].ToArray(), (x, y) => Math.Abs(x - y)).Max() : throw new KeyNotFoundException(baseName);
        Assert.InRange(LargestChange("layer1.0.conv1.weight", "body.layer1.0.conv1.weight"), 0, 1e-5);
        // --adapt-batch-norm replaced the base's statistics with the digits'.
        Assert.InRange(LargestChange("bn1.running_mean", "body.bn1.running_mean"), 1e-3, double.MaxValue);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!;
        Assert.Equal(3, config["ProbeSteps"]!.GetValue<int>());
        Assert.True(config["Validate"]!.GetValue<bool>());
    }

    [Fact]
    public void AStoppedRunResumesToTheModelOfAnUninterruptedOne()
    {
        // 50 training digits in batches of 16: 4 steps an epoch, stopped in the second. The last stage trains, its batch
        // norm statistics move; the rest of the body stays frozen: the checkpoint must restore all of it.
        var baseRun = BaseRun();
        string[] command = ["finetune", "resnet", "--base", baseRun, "--dataset", TestData.File("sklearn/digits.csv.gz"), "--examples-per-class", "5",
            "--epochs", "2", "--batch-size", "16", "--unfreeze-last-stage", "--quiet"];
        ResumeCheck.StoppedAndResumedMatchesStraight(TempDir, command, commandWords: 2, stopAt: 6, "model.safetensors");
        var stopped = Path.Combine(TempDir, "stopped");
        Assert.Contains("error: --from-scratch: --resume", CliRunner.Run("finetune", "resnet", "--out", stopped, "--resume", "--from-scratch").Err);
        Assert.Contains("holds another kind of run", CliRunner.Run("finetune", "resnet", "--out", baseRun, "--resume").Err);
    }

    [Fact]
    public void FineTunesAClassifierInTheHubLayoutWithAGreyToRgbAdapter()
    {
        // A torchvision ResNet-18 (channels / 8, random weights) as `nabla model fetch resnet18` leaves one: ImageNet
        // normalisation, 3 channels, so the adapter maps the grey digits to RGB; --image-size keeps it small.
        var output = Path.Combine(TempDir, "from-hub");
        var (exit, stdout, stderr) = CliRunner.Run("finetune", "resnet", "--base", TestData.Fixture(Path.Combine("classify", "resnet")),
            "--dataset", TestData.File("sklearn/digits.csv.gz"), "--examples-per-class", "5", "--image-size", "32", "--epochs", "1", "--unfreeze-last-stage", "--out", output);
        Assert.True(exit == 0, stderr);
        Assert.Contains("resized to 32×32", stdout);
        var tuned = SafeTensors.Load(Path.Combine(output, "model.safetensors"));
        Assert.Equal([3, 1, 1, 1], tuned["adapter.1.weight"].Shape.ToArray());
        Assert.Equal([10, 64], tuned["head.weight"].Shape.ToArray());
    }

    [Fact]
    public void BadBasesAndDatasetsAreOneLine()
    {
        var missing = CliRunner.Run("finetune", "resnet", "--base", Path.Combine(TempDir, "nowhere"), "--dataset", "digits");
        Assert.Equal(1, missing.Exit);
        Assert.Contains("--base", missing.Err);
        var baseRun = BaseRun();
        var dataset = CliRunner.Run("finetune", "resnet", "--base", baseRun, "--dataset", Path.Combine(TempDir, "no-such-data"), "--out", Path.Combine(TempDir, "x"));
        Assert.Equal(1, dataset.Exit);
        Assert.Contains("--dataset", dataset.Err);
        var both = CliRunner.Run("finetune", "resnet", "--base", baseRun, "--from-scratch", "--unfreeze-last-stage", "--out", Path.Combine(TempDir, "y"));
        Assert.Equal(1, both.Exit);
        Assert.Contains("--from-scratch", both.Err);
        var twoWays = CliRunner.Run("finetune", "resnet", "--base", baseRun, "--from-scratch", "--unfreeze-all", "--out", Path.Combine(TempDir, "z"));
        Assert.Equal(1, twoWays.Exit);
        Assert.Contains("--from-scratch and --unfreeze-all exclude each other", twoWays.Err);
        var frozenBodyRate = CliRunner.Run("finetune", "resnet", "--base", baseRun, "--body-lr", "1e-3", "--out", Path.Combine(TempDir, "w"));
        Assert.Equal(1, frozenBodyRate.Exit);
        Assert.Contains("--body-lr needs a trained body", frozenBodyRate.Err);
        var scratchProbe = CliRunner.Run("finetune", "resnet", "--base", baseRun, "--from-scratch", "--probe-steps", "10", "--out", Path.Combine(TempDir, "v"));
        Assert.Equal(1, scratchProbe.Exit);
        Assert.Contains("which --from-scratch has not", scratchProbe.Err);
        var validateAll = CliRunner.Run("finetune", "resnet", "--base", baseRun, "--validate", "--out", Path.Combine(TempDir, "u"));
        Assert.Equal(1, validateAll.Exit);
        Assert.Contains("--validate", validateAll.Err);
    }
}
