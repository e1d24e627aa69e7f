using System.Text.Json.Nodes;
using Nabla.Tests.Data;

namespace Nabla.Tests.Cli;

/// <summary>`nabla sweep` and `nabla compare` on tiny grids: MLPs on the built-in iris data, and ResNets on a few
/// hundred Fashion-MNIST images.</summary>
[Collection("Console")]
public class SweepCliTests : CliTest
{
    private static JsonNode Config(string run) => JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!;

    [Fact]
    public void LearningRateSweepMakesARunPerValueComparesThemAndContinuesWhenRunAgain()
    {
        var sweep = Path.Combine(TempDir, "lr");
        string[] args = ["sweep", "--knob", "lr", "--values", "0.001,0.1", "--out", sweep, "--", "train", "mlp", "--epochs", "4", "--quiet"];
        var result = CliRunner.Run(args);
        Ok(result);
        foreach (var (value, lr) in new[] { ("0.001", 0.001), ("0.1", 0.1) })
        {
            var run = Path.Combine(sweep, $"lr={value}");
            Assert.Equal(lr, Config(run)["LearningRate"]!.GetValue<double>(), 6);
            Assert.Equal(4, Config(run)["Epochs"]!.GetValue<int>());
            Assert.True(File.Exists(Path.Combine(run, "metrics.jsonl")));
        }
        foreach (var file in new[] { "loss.png", "accuracy.png", "sweep.png", "compare.md" }) Assert.True(File.Exists(Path.Combine(sweep, file)), $"{file} missing");
        var table = File.ReadAllLines(Path.Combine(sweep, "compare.md"));
        Assert.Contains(table, l => l.StartsWith("| lr=0.001 | 4 | "));
        Assert.Contains(table, l => l.StartsWith("| lr=0.1 | 4 | "));
        // A 100 times larger step learns iris in 4 epochs; the small one barely moves: the table shows it.
        double ValAccuracy(string name) => double.Parse(table.Single(l => l.StartsWith($"| {name} |")).Split('|')[^2].Trim().TrimEnd('%'), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(ValAccuracy("lr=0.1") > ValAccuracy("lr=0.001"), string.Join('\n', table));

        // Run again: every point is resumed (already finished), nothing is retrained or lost.
        var metrics = File.ReadAllText(Path.Combine(sweep, "lr=0.1", "metrics.jsonl"));
        var again = CliRunner.Run(args);
        Ok(again);
        Assert.Contains("--out " + Path.Combine(sweep, "lr=0.1") + " --resume", again.Out);
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(sweep, "lr=0.1", "metrics.jsonl")));

        // compare on its own, on the same runs
        var compared = Path.Combine(TempDir, "compared");
        var compare = CliRunner.Run("compare", Path.Combine(sweep, "lr=0.001"), Path.Combine(sweep, "lr=0.1"), "--out", compared);
        Ok(compare);
        Assert.Equal(table[2..^2], File.ReadAllLines(Path.Combine(compared, "compare.md"))[2..^2]);
        Assert.True(File.Exists(Path.Combine(compared, "loss.png")) && File.Exists(Path.Combine(compared, "accuracy.png")));
    }

    [Fact]
    public void WidthAndDepthOfAnMlpSetItsHiddenLayers()
    {
        var width = Path.Combine(TempDir, "width");
        Ok(CliRunner.Run("sweep", "--knob", "width", "--values", "3,12", "--out", width, "--", "train", "mlp", "--epochs", "1", "--hidden", "8,8", "--quiet"));
        Assert.Equal("[3,3]", Config(Path.Combine(width, "width=3"))["Hidden"]!.ToJsonString());
        Assert.Equal("[12,12]", Config(Path.Combine(width, "width=12"))["Hidden"]!.ToJsonString());
        var depth = Path.Combine(TempDir, "depth");
        Ok(CliRunner.Run("sweep", "--knob", "depth", "--values", "1,3", "--out", depth, "--", "train", "mlp", "--epochs", "1", "--quiet"));
        Assert.Equal("[64]", Config(Path.Combine(depth, "depth=1"))["Hidden"]!.ToJsonString());
        Assert.Equal("[64,64,64]", Config(Path.Combine(depth, "depth=3"))["Hidden"]!.ToJsonString());
    }

    [Fact]
    public void BadSweepsAreOneLineErrors()
    {
        Assert.Contains("has no --erasing option", OneLineError(CliRunner.Run("sweep", "--knob", "erasing", "--values", "0,0.5", "--out", Path.Combine(TempDir, "a"), "--", "train", "mlp")));
        Assert.Contains("must not have --out", OneLineError(CliRunner.Run("sweep", "--knob", "lr", "--values", "0.1", "--", "train", "mlp", "--out", "x")));
        Assert.Contains("sets --lr itself", OneLineError(CliRunner.Run("sweep", "--knob", "lr", "--values", "0.1", "--out", Path.Combine(TempDir, "b"), "--", "train", "mlp", "--lr", "1")));
        Assert.Contains("cannot be swept", OneLineError(CliRunner.Run("sweep", "--knob", "lr", "--values", "0.1", "--", "train", "gpt")));
        // The point's own error comes first, then the sweep says which point failed.
        var failing = CliRunner.Run("sweep", "--knob", "lr", "--values", "-1", "--out", Path.Combine(TempDir, "c"), "--", "train", "mlp", "--quiet");
        Assert.Equal(1, failing.Exit);
        Assert.Contains("--lr must be a finite positive number", failing.Err);
        Assert.Contains("the run of lr=-1 failed", failing.Err.TrimEnd('\n').Split('\n')[^1]);
        var knob = CliRunner.Run("sweep", "--knob", "colour", "--values", "1", "--", "train", "mlp");
        Assert.Equal(2, knob.Exit);
        Assert.Contains("--knob must be one of lr, batch-size", knob.Err);
        Assert.Contains("no metrics.jsonl", OneLineError(CliRunner.Run("compare", TempDir, "--out", Path.Combine(TempDir, "d"))));
    }

    [FashionMnistFact]
    public void ResNetWidthSweepWithLabelNoise()
    {
        var sweep = Path.Combine(TempDir, "resnet");
        var result = CliRunner.Run("sweep", "--knob", "width", "--values", "2,4", "--out", sweep, "--", "train", "resnet", "--depth", "1", "--subset", "256",
            "--epochs", "1", "--batch-size", "64", "--augment", "off", "--label-noise", "0.2");
        Ok(result);
        Assert.Contains("20% of their labels randomised", result.Out);
        var narrow = Config(Path.Combine(sweep, "width=2"));
        Assert.Equal(2, narrow["Width"]!.GetValue<int>());
        Assert.Equal(1, narrow["Depth"]!.GetValue<int>());
        Assert.Equal(0.2, narrow["LabelNoise"]!.GetValue<double>());
        Assert.Equal(4, Config(Path.Combine(sweep, "width=4"))["Width"]!.GetValue<int>());
        // ResNet-8 (one block per stage), named with its width; widths 2 and 4 give different parameter counts in the runs' reports
        Assert.Contains("model: ResNet-8, width 2,", result.Out);
        var counts = System.Text.RegularExpressions.Regex.Matches(result.Out, @"([\d,]+) parameters").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(2, counts.Distinct().Count());
        Assert.True(File.Exists(Path.Combine(sweep, "sweep.png")));
        Assert.Contains("--width applies to the resnet and vit models only", CliRunner.Run("train", "lenet", "--width", "4").Err);
    }
}
