using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Tests.Ops;

namespace Nabla.Tests.Cli;

/// <summary>`nabla finetune gpt --quantize`: QLoRA from the command line, on a GPT-2 with the hf_gpt2 fixture's
/// tokenizer and 64 channels (the fixture's own 48 do not split into NF4's 64-value blocks).</summary>
[Collection("Console")]
public class QLoraCliTests : CliTest
{
    private static readonly string FixtureBase = TestData.Fixture(Path.Combine("hf_gpt2", "base"));

    private string BaseModel()
    {
        var path = Path.Combine(TempDir, "base");
        var (fixture, tokenizer) = Gpt2ModelFiles.Load(FixtureBase);
        var config = fixture.Config with { Channels = 64, Heads = 4 };
        Gpt2ModelFiles.Save(new Gpt2Model(config, new Generator(41)), tokenizer, path);
        return path;
    }

    private (int Exit, string Out, string Err) Finetune(string model, string run, params string[] extra)
    {
        var text = Path.Combine(TempDir, "jargon.txt");
        if (!File.Exists(text)) File.WriteAllText(text, File.ReadAllText(TestData.File("jargon.txt"))[..20_000]);
        return CliRunner.Run(["finetune", "gpt", "--model", model, "--text", text, "--out", run, "--seq-len", "32", "--batch-size", "4",
            "--eval-every", "4", "--eval-batches", "2", "--lr", "3e-3", "--warmup", "0", "--steps", "6", .. extra]);
    }

    [Fact]
    public void AStoppedQLoraRunResumesToTheAdapterOfAnUninterruptedOne()
    {
        var text = Path.Combine(TempDir, "jargon.txt");
        File.WriteAllText(text, File.ReadAllText(TestData.File("jargon.txt"))[..20_000]);
        string[] command = ["finetune", "gpt", "--model", BaseModel(), "--text", text, "--quantize", "nf4", "--seq-len", "32", "--batch-size", "4",
            "--eval-every", "3", "--eval-batches", "2", "--steps", "6", "--warmup", "1", "--lora-dropout", "0.1"];
        ResumeCheck.StoppedAndResumedMatchesStraight(TempDir, command, commandWords: 2, stopAt: 4, Nabla.NN.Lora.WeightsFile);
    }

    [Fact]
    public void QuantisedBaseTrainsAnAdapterThatLoadsOntoTheFloatBase()
    {
        var model = BaseModel();
        var run = Path.Combine(TempDir, "qlora");
        var result = Finetune(model, run, "--quantize", "nf4", "--targets", "c_attn,c_proj,c_fc");
        Assert.True(result.Exit == 0, $"exit {result.Exit}\n{result.Out}\n{result.Err}");
        Assert.Contains("QLoRA: the base's linear layers are held in nf4", result.Out);

        // the adapter goes onto the float base and moves its logits (B trained away from zero)
        var (floatBase, _) = Gpt2ModelFiles.Load(model);
        var ids = Tensor.FromArray(Enumerable.Range(0, 16).Select(i => i * 7 % 300).ToArray(), 1, 16);
        var before = floatBase.Eval().Forward(ids).ToArray();
        var (config, summary) = Lora.LoadAdapter(floatBase, run);
        Assert.Equal(8, summary.WrappedModules.Count); // c_attn, both c_proj and c_fc in each of 2 blocks
        Assert.Equal(new[] { "c_attn", "c_proj", "c_fc" }, config.TargetModules);
        Assert.NotEqual(before, floatBase.Eval().Forward(ids).ToArray());
        // checkpoints hold the adapter alone
        var checkpoint = Directory.GetDirectories(Path.Combine(run, "checkpoints")).First();
        Assert.All(Nabla.IO.SafeTensors.Load(Path.Combine(checkpoint, "model.safetensors")).Keys, k => Assert.Contains(".lora_", k));

        // merging goes into the float model: a quantised one is refused in one line
        var quantized = Path.Combine(TempDir, "base-nf4");
        Assert.Equal(0, CliRunner.Run("quantize", "--model", model, "--bits", "4", "--format", "nf4", "--out", quantized).Exit);
        var merge = CliRunner.Run("lora", "merge", "--model", quantized, "--adapter", run, "--out", Path.Combine(TempDir, "merged"));
        Assert.Equal(1, merge.Exit);
        Assert.DoesNotContain('\n', merge.Err.TrimEnd('\n'));
        Assert.Contains("is quantised (nf4); merge the adapter into the float model", merge.Err);
    }

    [Theory]
    [InlineData("--quantize", "nf5", "--quantize: unknown format 'nf5'")]
    [InlineData("--quantize", "q8_0", "--full")]
    public void BadQuantisationChoicesAreOneLineErrors(string option, string value, string expected)
    {
        var extra = expected == "--full" ? new[] { option, value, "--full" } : new[] { option, value };
        var result = Finetune(BaseModel(), Path.Combine(TempDir, "bad"), extra);
        Assert.Equal(1, result.Exit);
        Assert.DoesNotContain('\n', result.Err.TrimEnd('\n'));
        Assert.Contains(expected, result.Err);
    }

    [Fact]
    public void ABaseWhoseRowsDoNotFillBlocksIsAnErrorNamingTheLayer()
    {
        var result = Finetune(FixtureBase, Path.Combine(TempDir, "narrow"), "--quantize", "nf4");
        Assert.Equal(1, result.Exit);
        Assert.DoesNotContain('\n', result.Err.TrimEnd('\n'));
        Assert.Contains("--quantize nf4", result.Err);
        Assert.Contains("h.0.attn.c_attn", result.Err);
    }
}
