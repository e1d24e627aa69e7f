using System.Text.RegularExpressions;
using Nabla.IO;
using Nabla.Tests.Models;

namespace Nabla.Tests.Cli;

[Collection("Console")]
public sealed class TextClassifierCliTests : CliTest
{
    /// <summary>The order task of <see cref="OrderTask"/> as a CSV of "text,label" rows (texts quoted, one with a comma).</summary>
    private string OrderCsv(int pairs)
    {
        var path = Path.Combine(TempDir, "order.csv");
        File.WriteAllLines(path, ["text,label", .. OrderTask.Generate(pairs, seed: 9).Select(t => $"\"{string.Join(' ', t.Words)}, end\",{OrderTask.Labels[t.Label]}")]);
        return path;
    }

    [Fact]
    public void TrainsOnACsvAndWritesTheRunWithPerClassMetricsAndCharts()
    {
        var run = Path.Combine(TempDir, "run");
        var (exit, output, error) = CliRunner.Run("train", "text-classifier", "--csv", OrderCsv(300), "--epochs", "3", "--embedding-dim", "16",
            "--hidden", "16", "--dropout", "0", "--lr", "0.01", "--out", run);
        Assert.True(exit == 0, error);
        foreach (var file in new[] { "config.json", "vocab.json", "model.safetensors", "metrics.jsonl", "loss.png", "accuracy.png", "confusion.png" })
            Assert.True(File.Exists(Path.Combine(run, file)), $"{file} missing from the run directory");
        Assert.Equal("nabla-text-classifier", SafeTensors.ReadHeader(Path.Combine(run, "model.safetensors")).Metadata["format"]);

        // 600 texts, 60 held out; the recurrence learns which word comes first.
        Assert.Contains("540 training and 60 validation texts, 2 classes", output);
        var accuracy = double.Parse(Regex.Match(output, @"validation accuracy: (\d+\.\d+)% \((\d+) of 60 texts\)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(accuracy >= 90, $"validation accuracy {accuracy}%");
        foreach (var label in OrderTask.Labels) Assert.Matches($@"{label}\s*│\s*\d\.\d{{3}}\s*│\s*\d\.\d{{3}}\s*│\s*\d\.\d{{3}}\s*│\s*\d+", output);
    }

    [Fact]
    public void AStoppedRunResumesToTheModelOfAnUninterruptedOne()
    {
        // 59 training texts in batches of 16: stopped in the second epoch, with dropout.
        string[] command = ["train", "text-classifier", "--csv", OrderCsv(33), "--epochs", "3", "--batch-size", "16", "--embedding-dim", "8",
            "--hidden", "8", "--dropout", "0.2", "--quiet"];
        ResumeCheck.StoppedAndResumedMatchesStraight(TempDir, command, commandWords: 2, stopAt: 6, "model.safetensors");
        var stopped = Path.Combine(TempDir, "stopped");
        var epochs = CliRunner.Run("train", "text-classifier", "--out", stopped, "--resume", "--epochs", "5");
        Assert.Equal(1, epochs.Exit);
        Assert.Contains("error: --epochs: --resume continues the run in", epochs.Err);
        File.AppendAllText(Path.Combine(TempDir, "order.csv"), "\"one more, end\",x\n");
        Assert.Contains("changed since the run", CliRunner.Run("train", "text-classifier", "--out", stopped, "--resume").Err);
    }

    [Theory]
    [InlineData("--label-column", "kind", "no column 'kind'")]
    [InlineData("--val-fraction", "1.5", "--val-fraction must be")]
    public void BadInputIsOneLine(string option, string value, string expected)
    {
        var (exit, _, error) = CliRunner.Run("train", "text-classifier", "--csv", OrderCsv(5), option, value, "--out", Path.Combine(TempDir, "bad"));
        Assert.NotEqual(0, exit);
        Assert.Contains(expected, error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void OneLabelIsNotAClassificationTask()
    {
        var path = Path.Combine(TempDir, "one.csv");
        File.WriteAllLines(path, ["text,label", "a b,x", "c d,x", "e f,x"]);
        var (exit, _, error) = CliRunner.Run("train", "text-classifier", "--csv", path, "--out", Path.Combine(TempDir, "one"));
        Assert.Equal(1, exit);
        Assert.Contains("holds 1 distinct label(s); a classifier needs at least 2", error);
    }
}
