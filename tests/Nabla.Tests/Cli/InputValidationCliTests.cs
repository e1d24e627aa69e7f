using Nabla.IO;

namespace Nabla.Tests.Cli;

/// <summary>Bad values inside files (non-finite numbers, corrupt run files) end in one line naming the file and
/// the place, never in NaN output or a framework exception.</summary>
[Collection("Console")]
public class InputValidationCliTests : CliTest
{
    private static void OneLineError((int Exit, string Out, string Err) r, params string[] mentions)
    {
        Assert.Equal(1, r.Exit);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.DoesNotContain("internal error", r.Err);
        foreach (var m in mentions) Assert.True(r.Err.Contains(m), $"expected \"{m}\" in: {r.Err}");
    }

    private string TrainedIrisRun()
    {
        var run = Path.Combine(TempDir, "iris");
        Assert.Equal(0, CliRunner.Run("train", "mlp", "--quiet", "--epochs", "2", "--out", run).Exit);
        return run;
    }

    [Theory]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("-Infinity")]
    [InlineData("1e999")]
    public void NonFiniteNumbersInATrainingCsvAreNamedByLineAndColumn(string value)
    {
        var lines = new List<string> { "x,y,label" };
        for (int i = 0; i < 20; i++) lines.Add($"{i},{i % 7},{i % 2}");
        lines[5] = $"4,{value},0";
        var csv = Path.Combine(TempDir, "data.csv");
        File.WriteAllLines(csv, lines);
        var r = CliRunner.Run("train", "mlp", "--csv", csv, "--out", Path.Combine(TempDir, "run"));
        OneLineError(r, $"{csv}:6: column 'y' (column 2) holds '{value}', which is not a finite number");
    }

    [Fact]
    public void ANonFiniteFeatureAtPredictTimeIsAnErrorNotNaNProbabilities()
    {
        var run = TrainedIrisRun();
        var csv = Path.Combine(TempDir, "new.csv");
        File.WriteAllText(csv, "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.0,NaN,4.5,1.5\n");
        OneLineError(CliRunner.Run("predict", "--run", run, "--csv", csv), $"{csv}:3: column 'sepal_width' (column 2) holds 'NaN'");

        // A finite value so far out that the standardised feature overflows float is refused the same way.
        File.WriteAllText(csv, "sepal_length,sepal_width,petal_length,petal_width\n1e300,3.5,1.4,0.2\n");
        OneLineError(CliRunner.Run("predict", "--run", run, "--csv", csv), $"{csv}:2: column 'sepal_length' (column 1) holds 1e300");
    }

    [Fact]
    public void NonFiniteWeightsInARunAreNamedBeforeAnyPrediction()
    {
        var run = TrainedIrisRun();
        var checkpoint = Path.Combine(run, "model.safetensors");
        var state = SafeTensors.Load(checkpoint, out var metadata);
        var first = state.Keys.First();
        state[first] = Tensor.Full(float.NaN, state[first].Shape.ToArray());
        SafeTensors.Save(checkpoint, state, metadata);
        var csv = Path.Combine(TempDir, "new.csv");
        File.WriteAllText(csv, "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n");
        OneLineError(CliRunner.Run("predict", "--run", run, "--csv", csv), checkpoint, $"tensor '{first}' holds NaN");
    }

    [Theory]
    [InlineData("Hidden", "[100000000]", "hidden sizes [100000000] must each be between 1 and 65536")]
    [InlineData("Hidden", "[60000, 60000]", "weights, more than the")]
    [InlineData("Hidden", "null", "\"Hidden\" is missing")]
    [InlineData("Epochs", "-5", "epochs -5 is not between 1 and 1,000,000")]
    [InlineData("LearningRate", "1e999", "learning rate Infinity is not a finite positive number")]
    public void ACorruptRunConfigIsNamedBeforeAnythingIsAllocated(string property, string json, string expected)
    {
        var run = TrainedIrisRun();
        var config = Path.Combine(run, "config.json");
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        Assert.True(node.ContainsKey(property));
        var text = node.ToJsonString().Replace($"\"{property}\":{node[property]!.ToJsonString()}", $"\"{property}\":{json}");
        File.WriteAllText(config, text);
        OneLineError(CliRunner.Run("eval", "--run", run), config, expected);
    }

    [Fact]
    public void ACorruptPreprocessorIsNamed()
    {
        var run = TrainedIrisRun();
        var path = Path.Combine(run, "preprocessor.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"Std\": ", "\"Std\": -"));
        OneLineError(CliRunner.Run("eval", "--run", run), path, "standard deviation");
    }

    [Fact]
    public void ARunFileThatIsADeviceOrDirectoryIsNamed()
    {
        var run = TrainedIrisRun();
        OneLineError(CliRunner.Run("predict", "--run", run, "--csv", "/dev/zero"), "/dev/zero", "not a regular file");
        var preprocessor = Path.Combine(run, "preprocessor.json");
        File.Delete(preprocessor);
        Directory.CreateDirectory(preprocessor);
        OneLineError(CliRunner.Run("eval", "--run", run), preprocessor, "is a directory");
    }

    [Fact]
    public void TextInputsAreReadWithACapAndUnknownCharactersNameTheirSource()
    {
        var text = Path.Combine(TempDir, "t.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("abc abc\n", 50)));
        var data = Path.Combine(TempDir, "data");
        Assert.Equal(0, CliRunner.Run("data", "prepare", "--input", text, "--tokenizer", "char", "--out", data).Exit);
        OneLineError(CliRunner.Run("data", "prepare", "--input", "/dev/zero", "--tokenizer", "char", "--out", data), "/dev/zero", "not a regular file");
        OneLineError(CliRunner.Run("tokenize", "--vocab", data, "--file", TempDir), TempDir, "is a directory");
        OneLineError(CliRunner.Run("tokenize", "--vocab", data, "--text", "abz"), "--text: character 'z' (U+007A) at position 2 is not in the vocabulary");
    }

    [Theory]
    [InlineData("\"Layers\": 2", "\"Layers\": 1000000000", "model sizes (layers 1000000000")]
    [InlineData("\"LearningRate\": 0.003", "\"LearningRate\": -1", "a learning rate, weight decay")]
    [InlineData("\"Training\": {", "\"Training\": null, \"Unused\": {", "\"Training\" is missing")]
    public void ACorruptGptRunConfigIsNamedOnResume(string find, string replace, string expected)
    {
        var run = Path.Combine(TempDir, "gpt");
        Assert.Equal(0, CliRunner.Run("train", "gpt", "--out", run, "--steps", "2", "--batch-size", "4", "--sample-every", "0", "--checkpoint-every", "1").Exit);
        var config = Path.Combine(run, "config.json");
        var json = File.ReadAllText(config);
        Assert.Contains(find, json);
        File.WriteAllText(config, json.Replace(find, replace));
        OneLineError(CliRunner.Run("train", "gpt", "--out", run, "--resume"), config, expected);
    }
}
