using System.Text.RegularExpressions;

namespace Nabla.Tests.Cli;

[Collection("Console")]
public class MlpCliTests : CliTest
{
    private static string Accuracy(string output) => Regex.Match(output, @"accuracy:? (\d+\.\d+)%").Groups[1].Value;

    [Fact]
    public void TrainWritesARunThatEvalReloadsToTheSameAccuracy()
    {
        var wine = TestData.File("sklearn/wine_data.csv");
        var run = Path.Combine(TempDir, "run");
        var (exit, output, error) = CliRunner.Run("train", "mlp", "--csv", wine, "--skip-rows", "1", "--no-header",
            "--epochs", "15", "--hidden", "32", "--lr", "0.01", "--out", run);
        Assert.True(exit == 0, error);
        foreach (var file in new[] { "config.json", "preprocessor.json", "model.safetensors", "metrics.jsonl", "loss.png", "accuracy.png" })
            Assert.True(File.Exists(Path.Combine(run, file)), $"{file} missing from the run directory");
        var metrics = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(15, metrics.Count(l => l.Contains("\"val_loss\"")));  // a validation per epoch
        Assert.Equal(15 * 5, metrics.Count(l => l.Contains("\"loss\""))); // and a line per step: 142 training rows in batches of 32
        var trained = Accuracy(output);
        Assert.True(double.Parse(trained) >= 85, $"wine should train to at least 85% validation accuracy, got {trained}%");

        var (evalExit, evalOut, evalErr) = CliRunner.Run("eval", "--run", run);
        Assert.True(evalExit == 0, evalErr);
        Assert.Equal(trained, Accuracy(evalOut));

        var (predictExit, predictOut, _) = CliRunner.Run("predict", "--run", run, "--csv", wine);
        Assert.Equal(0, predictExit);
        Assert.StartsWith("line,prediction,p(0),p(1),p(2)", predictOut);
    }

    [Fact]
    public void DefaultJobTrainsTheBuiltInDataset()
    {
        var (exit, output, error) = CliRunner.Run("train", "mlp", "--quiet", "--epochs", "40", "--out", Path.Combine(TempDir, "iris"));
        Assert.True(exit == 0, error);
        Assert.True(double.Parse(Accuracy(output)) >= 90, output);
    }

    /// <summary>metrics.jsonl without the timing fields, which no two runs share.</summary>
    private static List<string> Metrics(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
        .Select(l => Regex.Replace(l, @",""(samples_per_second|ms)"":[^,}]+", "")).ToList();

    [Fact]
    public void ResumeContinuesAStoppedRunToExactlyWhatAnUninterruptedRunGives()
    {
        var straight = Path.Combine(TempDir, "straight");
        var (exit, straightOut, error) = CliRunner.Run("train", "mlp", "--quiet", "--epochs", "6", "--dropout", "0.1", "--out", straight);
        Assert.True(exit == 0, error);

        // A run stopped after its third epoch: its config asks for 6, its last checkpoint is at epoch 3, and the
        // crash tore the metrics line being written.
        var run = Path.Combine(TempDir, "stopped");
        Assert.Equal(0, CliRunner.Run("train", "mlp", "--quiet", "--epochs", "3", "--dropout", "0.1", "--out", run).Exit);
        var config = Path.Combine(run, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"Epochs\": 3", "\"Epochs\": 6"));
        File.AppendAllText(Path.Combine(run, "metrics.jsonl"), "{\"step\":13,\"lo");

        var (resumeExit, resumeOut, resumeErr) = CliRunner.Run("train", "mlp", "--out", run, "--resume");
        Assert.True(resumeExit == 0, resumeErr);
        Assert.Contains("resumed from the checkpoint at epoch 3", resumeOut);
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "model.safetensors")), File.ReadAllBytes(Path.Combine(run, "model.safetensors")));
        Assert.Equal(Metrics(straight), Metrics(run));
        Assert.Equal(Accuracy(straightOut), Accuracy(resumeOut));

        // A run directory is not trained over without --resume.
        var again = CliRunner.Run("train", "mlp", "--out", run);
        Assert.Equal(1, again.Exit);
        Assert.Contains("already holds a training run", again.Err);
    }

    [Theory]
    [InlineData("train mlp --bogus", "Unrecognized command or argument '--bogus'")]
    [InlineData("train mlp --epochs 0", "--epochs must be a positive integer no larger than 1,000,000, got 0")]
    [InlineData("train mlp --lr NaN", "--lr must be a finite positive number no larger than 100, got NaN")]
    [InlineData("train mlp --lr Infinity", "--lr must be a finite positive number")]
    [InlineData("train mlp --weight-decay -1", "--weight-decay must be a finite non-negative number")]
    [InlineData("train mlp --val-fraction 1", "--val-fraction must be a number in (0, 1), got 1")]
    [InlineData("train mlp --hidden 100000000", "--hidden: '100000000' is not a layer size from 1 to 65536")]
    [InlineData("train gpt --lr NaN", "--lr must be a finite positive number")]
    [InlineData("train gpt --layers 1000000", "--layers must be a positive integer no larger than 1024, got 1000000")]
    [InlineData("generate --model x --top-p 0", "--top-p must be a number in (0, 1], got 0")]
    [InlineData("generate --model x --temperature -Infinity", "--temperature must be a finite non-negative number")]
    [InlineData("train mlp --lr abc", "abc")]
    [InlineData("train mlp --hidden 12,x", "--hidden: 'x' is not a layer size from 1 to 65536")]
    [InlineData("train mlp --optimizer lion", "unknown optimizer 'lion'")]
    [InlineData("eval", "--run")]
    public void BadArgumentsGetOneClearLine(string args, string expected)
    {
        var (exit, output, error) = CliRunner.Run(args.Split(' '));
        Assert.NotEqual(0, exit);
        Assert.Contains(expected, error);
        Assert.DoesNotContain("   at ", error); // no stack trace
        Assert.DoesNotContain("Usage:", output + error);
    }

    [Theory]
    [InlineData("a,b,label\n1,2,x\n3,4\n", ":3: the row has 2 fields but the header has 3")]
    [InlineData("a,b,label\n1,\"2,x\n", ":2: a quoted field is never closed")]
    [InlineData("", "the file is empty")]
    [InlineData("a,label\n1,x\n", "has only one class")]
    public void BadCsvRowsGetOneClearLineWithTheLineNumber(string csv, string expected)
    {
        Directory.CreateDirectory(TempDir);
        var path = Path.Combine(TempDir, "bad.csv");
        File.WriteAllText(path, csv);
        var (exit, _, error) = CliRunner.Run("train", "mlp", "--csv", path, "--out", Path.Combine(TempDir, "bad"));
        Assert.Equal(1, exit);
        Assert.Contains(expected, error);
        Assert.Contains("bad.csv", error);
    }

    [Fact]
    public void MostlyNumericColumnWithAWordIsReportedAsACorruptRow()
    {
        Directory.CreateDirectory(TempDir);
        var path = Path.Combine(TempDir, "corrupt.csv");
        var lines = new List<string> { "x,y,label" };
        for (int i = 0; i < 30; i++) lines.Add($"{i},{i * 2},{i % 2}");
        lines[17] = "16,oops,0";
        File.WriteAllLines(path, lines);
        var (exit, _, error) = CliRunner.Run("train", "mlp", "--csv", path, "--out", Path.Combine(TempDir, "c"), "--val-fraction", "0.1");
        Assert.Equal(1, exit);
        Assert.Matches(@"corrupt\.csv:18: column 'y' is numeric in \d+ of \d+ rows but this row has 'oops'", error);
    }

    [Fact]
    public void EvalOfACorruptCheckpointNamesTheFile()
    {
        var run = Path.Combine(TempDir, "iris");
        Assert.Equal(0, CliRunner.Run("train", "mlp", "--quiet", "--epochs", "2", "--out", run).Exit);
        var checkpoint = Path.Combine(run, "model.safetensors");
        var bytes = File.ReadAllBytes(checkpoint);
        File.WriteAllBytes(checkpoint, bytes[..(bytes.Length / 2)]);
        var (exit, _, error) = CliRunner.Run("eval", "--run", run);
        Assert.Equal(1, exit);
        Assert.Contains("model.safetensors", error);
        Assert.Contains("truncated", error);
    }
}
