using System.Text.RegularExpressions;

namespace Nabla.Tests.Cli;

[Collection("Console")]
public sealed class CharLstmCliTests : CliTest
{
    private string Text()
    {
        var path = Path.Combine(TempDir, "text.txt");
        File.WriteAllText(path, string.Concat(Enumerable.Repeat("the cat sat on the mat.\n", 300)));
        return path;
    }

    [Fact]
    public void TrainsReportsBitsPerCharacterAndSamplesAtEachTemperature()
    {
        var run = Path.Combine(TempDir, "run");
        var (exit, output, error) = CliRunner.Run("train", "char-lstm", "--text", Text(), "--steps", "60", "--hidden", "32", "--layers", "1",
            "--seq-len", "24", "--batch-size", "8", "--eval-every", "30", "--eval-batches", "2", "--lr", "0.01", "--temperatures", "0", "0.7",
            "--sample-length", "30", "--out", run);
        Assert.True(exit == 0, error);
        foreach (var file in new[] { "config.json", "tokenizer.json", "model.safetensors", "metrics.jsonl", "bits.png", "samples.txt" })
            Assert.True(File.Exists(Path.Combine(run, file)), $"{file} missing from the run directory");
        var bits = double.Parse(Regex.Match(output, @"validation: (\d+\.\d+) bits/char after 60 steps").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        // 11 distinct characters: a uniform guess costs log2(11) = 3.46 bits; this text repeats one line.
        Assert.True(bits < 2, $"{bits} bits/char");
        var samples = File.ReadAllText(Path.Combine(run, "samples.txt"));
        Assert.Contains("--- temperature 0 ---", samples);
        Assert.Contains("--- temperature 0.7 ---", samples);
    }

    [Fact]
    public void AStoppedRunResumesToTheModelOfAnUninterruptedOne()
    {
        string[] command = ["train", "char-lstm", "--text", Text(), "--steps", "12", "--hidden", "16", "--layers", "2", "--dropout", "0.2",
            "--seq-len", "16", "--batch-size", "4", "--eval-every", "4", "--eval-batches", "1", "--sample-length", "5", "--quiet"];
        ResumeCheck.StoppedAndResumedMatchesStraight(TempDir, command, commandWords: 2, stopAt: 5, "model.safetensors");
        Assert.Contains("error: --hidden: --resume", CliRunner.Run("train", "char-lstm", "--out", Path.Combine(TempDir, "stopped"), "--resume", "--hidden", "32").Err);
    }

    [Fact]
    public void TheTimeLimitStopsTrainingAndStillReports()
    {
        var (exit, output, error) = CliRunner.Run("train", "char-lstm", "--text", Text(), "--steps", "100000", "--time-limit", "0.05", "--hidden", "16",
            "--layers", "1", "--seq-len", "16", "--batch-size", "4", "--eval-batches", "1", "--sample-length", "5", "--quiet", "--out", Path.Combine(TempDir, "timed"));
        Assert.True(exit == 0, error);
        var steps = int.Parse(Regex.Match(output, @"after (\d+) steps in").Groups[1].Value);
        Assert.InRange(steps, 1, 99_999);
    }

    [Fact]
    public void ATextTooShortIsOneLine()
    {
        var path = Path.Combine(TempDir, "short.txt");
        File.WriteAllText(path, "tiny");
        var (exit, _, error) = CliRunner.Run("train", "char-lstm", "--text", path, "--out", Path.Combine(TempDir, "short"));
        Assert.Equal(1, exit);
        Assert.Contains("are too few for batches", error);
    }
}
