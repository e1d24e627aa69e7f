using System.Text.Json.Nodes;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Tests.Ops;
using Nabla.Text;

namespace Nabla.Tests.Cli;

/// <summary>`nabla finetune gpt`, `nabla generate --adapter` and `nabla lora merge` on the tiny GPT-2 of the
/// hf_gpt2 fixture (2 layers, 48 channels) and the adapter tests/reference/make_lora_fixture.py wrote for it.</summary>
[Collection("Console")]
public class LoraCliTests : CliTest
{
    private static readonly string Base = TestData.Fixture(Path.Combine("hf_gpt2", "base"));
    private static readonly string PythonAdapter = TestData.Fixture(Path.Combine("lora", "gpt2_adapter"));

    private string Text()
    {
        var path = Path.Combine(TempDir, "jargon.txt");
        if (!File.Exists(path)) File.WriteAllText(path, File.ReadAllText(TestData.File("jargon.txt"))[..40_000]);
        return path;
    }

    private (int Exit, string Out, string Err) Finetune(string run, params string[] extra) => CliRunner.Run(
        ["finetune", "gpt", "--model", Base, "--text", Text(), "--out", run, "--seq-len", "32", "--batch-size", "4", "--eval-every", "4",
            "--eval-batches", "2", "--lr", "3e-3", "--min-lr", "3e-3", "--warmup", "0", .. extra]);

    [Fact]
    public void LoraFinetuneTrainsOnlyTheAdapterAndWritesItInPeftsLayout()
    {
        var baseHash = Downloader.Hash(Path.Combine(Base, "model.safetensors"));
        var run = Path.Combine(TempDir, "lora");
        var result = Finetune(run, "--steps", "8", "--checkpoint-every", "4", "--lora-r", "8", "--lora-alpha", "16", "--targets", "c_attn,c_proj");
        Ok(result);

        // r·in + out·r for c_attn (48 → 144) and both c_proj (attention 48 → 48, MLP 192 → 48), in each of the 2 blocks
        const int r = 8;
        long adapter = 2 * (r * 48 + 144 * r + r * 48 + 48 * r + r * 192 + 48 * r);
        long total = Gpt2ModelFiles.Load(Base).Model.ParameterCount + adapter;
        Assert.Contains($"trainable params: {adapter:N0} || all params: {total:N0} || trainable%: ", result.Out);
        Assert.Contains("validation loss", result.Out);
        Assert.True(File.Exists(Path.Combine(run, "loss.png")));
        Assert.Equal(8, File.ReadLines(Path.Combine(run, "metrics.jsonl")).Count(l => l.Contains("\"loss\"")));

        // The adapter: PEFT's names and (r, in) / (out, r) shapes, and its config keys
        var tensors = SafeTensors.Load(Path.Combine(run, Lora.WeightsFile));
        Assert.Equal(12, tensors.Count);
        Assert.Equal(new[] { r, 48 }, tensors["base_model.model.transformer.h.1.attn.c_attn.lora_A.weight"].Shape);
        Assert.Equal(new[] { 144, r }, tensors["base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"].Shape);
        Assert.Equal(new[] { r, 192 }, tensors["base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight"].Shape);
        Assert.Contains(tensors["base_model.model.transformer.h.0.mlp.c_proj.lora_B.weight"].ToArray(), v => v != 0); // B starts at zero: it trained
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, Lora.ConfigFile)))!;
        Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
        Assert.Equal(r, config["r"]!.GetValue<int>());
        Assert.Equal(16, config["lora_alpha"]!.GetValue<double>());
        Assert.True(config["fan_in_fan_out"]!.GetValue<bool>());
        Assert.Equal(new[] { "c_attn", "c_proj" }, config["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()));

        // The checkpoint holds the adapter and AdamW's two moments of each adapter weight; the base is untouched.
        var checkpoint = Assert.Single(Directory.GetDirectories(Path.Combine(run, "checkpoints")));
        Assert.All(SafeTensors.Load(Path.Combine(checkpoint, "model.safetensors")).Keys, k => Assert.Contains(".lora_", k));
        Assert.Equal(24, SafeTensors.Load(Path.Combine(checkpoint, "optimizer.safetensors")).Count(kv => kv.Key != "step"));
        Assert.Equal(baseHash, Downloader.Hash(Path.Combine(Base, "model.safetensors")));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal(adapter, summary["trainable_parameters"]!.GetValue<long>());
        Assert.Equal(2 * 4 * adapter + 4, summary["optimizer_state_bytes"]!.GetValue<long>()); // m and v in fp32, and the step
        Assert.True(summary["peak_tensor_bytes"]!.GetValue<long>() > 4 * total);                // at least the weights
    }

    /// <summary>A LoRA run with warm-up, cosine decay and adapter dropout, as `finetune gpt` runs by default.</summary>
    private string[] ResumableFinetune(params string[] extra) =>
        ["finetune", "gpt", "--model", Base, "--text", Text(), "--seq-len", "32", "--batch-size", "4", "--eval-every", "4", "--eval-batches", "2",
            "--steps", "10", "--warmup", "2", "--checkpoint-every", "4", .. extra];

    [Fact]
    public void StoppedOrKilledRunsResumeToTheAdapterOfAnUninterruptedOne()
    {
        var command = ResumableFinetune("--lora-dropout", "0.1");
        var resumed = ResumeCheck.StoppedAndResumedMatchesStraight(TempDir, command, commandWords: 2, stopAt: 5, Lora.WeightsFile);
        Assert.Contains("resumed from the checkpoint at step 5", resumed);
        // Killed after step 7 (SIGKILL, no chance to save): the checkpoint of step 4 is the newest, and steps 5-7 run again.
        Assert.Contains("resumed from the checkpoint at step 4",
            ResumeCheck.KilledAndResumedMatchesStraight(TempDir, Path.Combine(TempDir, "straight"), command, commandWords: 2, killAt: 7, Lora.WeightsFile));

        // An option that would change the run is refused, naming it; so is a text changed since the start.
        var stopped = Path.Combine(TempDir, "stopped");
        Assert.Contains("error: --full: --resume continues the run in", OneLineError(CliRunner.Run("finetune", "gpt", "--out", stopped, "--resume", "--full")));
        Assert.Contains("error: --lora-r: --resume", OneLineError(CliRunner.Run("finetune", "gpt", "--out", stopped, "--resume", "--lora-r", "8")));
        File.AppendAllText(Text(), "more text");
        Assert.Contains("changed since the run", OneLineError(CliRunner.Run("finetune", "gpt", "--out", stopped, "--resume")));
    }

    [Fact]
    public void AStoppedFullFinetuneResumesToTheModelOfAnUninterruptedOne() =>
        ResumeCheck.StoppedAndResumedMatchesStraight(TempDir, ResumableFinetune("--full"), commandWords: 2, stopAt: 6, Path.Combine("model", "model.safetensors"));

    [Fact]
    public void FullFinetuneTrainsEveryWeightAndWritesAModel()
    {
        var run = Path.Combine(TempDir, "full");
        var result = Finetune(run, "--steps", "3", "--full");
        Ok(result);
        long total = Gpt2ModelFiles.Load(Base).Model.ParameterCount;
        Assert.Contains($"trainable params: {total:N0} || all params: {total:N0} || trainable%: 100", result.Out);
        Assert.False(File.Exists(Path.Combine(run, Lora.WeightsFile)));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal(2 * 4 * total + 4, summary["optimizer_state_bytes"]!.GetValue<long>());
        Ok(CliRunner.Run("generate", "--model", run, "--prompt", "hacker", "--max-tokens", "4", "--temperature", "0"));
    }

    [Fact]
    public void BiasAllAndModulesToSaveTrainAndTravelWithTheAdapter()
    {
        var run = Path.Combine(TempDir, "bias");
        var result = Finetune(run, "--steps", "3", "--lora-r", "2", "--lora-alpha", "4", "--targets", "c_attn", "--lora-bias", "all", "--modules-to-save", "ln_f");
        Ok(result);
        Assert.Contains("bias all; trained whole: ln_f", result.Out);
        // A and B of c_attn (48 → 144), every bias (c_attn 144, c_proj 48, c_fc 192, mlp.c_proj 48, ln_1 and ln_2 48 each;
        // ln_f 48) and ln_f's weight (48)
        long trainable = 2 * (2 * 48 + 144 * 2) + 2 * (144 + 48 + 192 + 48 + 48 + 48) + 48 + 48;
        Assert.Contains($"trainable params: {trainable:N0} ||", result.Out);
        var tensors = SafeTensors.Load(Path.Combine(run, Lora.WeightsFile));
        Assert.Equal(trainable, tensors.Values.Sum(t => (long)t.Count));
        Assert.Contains("base_model.model.transformer.h.1.attn.c_attn.base_layer.bias", tensors.Keys);
        Assert.Contains("base_model.model.transformer.ln_f.weight", tensors.Keys);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, Lora.ConfigFile)))!;
        Assert.Equal("all", config["bias"]!.GetValue<string>());
        Assert.Equal("ln_f", Assert.Single(config["modules_to_save"]!.AsArray())!.GetValue<string>());

        // the trained biases and ln_f are part of what `generate --adapter` and `lora merge` apply
        var merged = MergeAndCompareGreedyText(run);
        var mergedWeights = SafeTensors.Load(Path.Combine(merged, "model.safetensors"));
        Assert.Equal(tensors["base_model.model.transformer.ln_f.bias"].ToArray(), mergedWeights["ln_f.bias"].ToArray());
    }

    /// <summary>--targets lm_head adapts the tied embedding and head with one adapter: r·(V + C) more parameters, a
    /// PEFT file with the embedding's and the head's names, and `generate --adapter` agrees with the merged model.</summary>
    [Fact]
    public void TiedHeadTargetTrainsOneAdapterForEmbeddingAndHead()
    {
        var run = Path.Combine(TempDir, "tied");
        var result = Finetune(run, "--steps", "3", "--lora-r", "2", "--lora-alpha", "4", "--targets", "c_attn,lm_head");
        Ok(result);
        long trainable = 2 * (2 * 48 + 144 * 2) + 2 * (335 + 48); // c_attn's A and B in 2 blocks; wte's (r, V) and (C, r)
        Assert.Contains($"trainable params: {trainable:N0} ||", result.Out);
        var tensors = SafeTensors.Load(Path.Combine(run, Lora.WeightsFile));
        Assert.Equal(trainable, tensors.Where(t => !t.Key.Contains("lm_head")).Sum(t => (long)t.Value.Count));
        Assert.Equal(tensors["base_model.model.transformer.wte.lora_embedding_A"].T.ToArray(), tensors["base_model.model.lm_head.lora_B.weight"].ToArray());
        Assert.Contains(tensors["base_model.model.transformer.wte.lora_embedding_A"].ToArray(), v => v != 0); // A starts at zero: it trained

        MergeAndCompareGreedyText(run);
    }

    /// <summary>--dora adds each adapted layer's magnitude (out values) to the adapter and its file (use_dora);
    /// --loraplus-ratio is recorded for a resume; `generate --adapter` agrees with the merged model.</summary>
    [Fact]
    public void DoraAndLoraPlusTrainAndTravelWithTheAdapter()
    {
        var run = Path.Combine(TempDir, "dora");
        var result = Finetune(run, "--steps", "3", "--lora-r", "2", "--lora-alpha", "4", "--targets", "c_attn,c_fc", "--dora", "--loraplus-ratio", "16");
        Ok(result);
        Assert.Contains("DoRA r=2, alpha=4, LoRA+ ratio 16,", result.Out);
        long trainable = 2 * (2 * 48 + 144 * 2 + 144) + 2 * (2 * 48 + 192 * 2 + 192); // A, B and the magnitude of c_attn and c_fc in 2 blocks
        Assert.Contains($"trainable params: {trainable:N0} ||", result.Out);
        var tensors = SafeTensors.Load(Path.Combine(run, Lora.WeightsFile));
        Assert.Equal(trainable, tensors.Values.Sum(t => (long)t.Count));
        Assert.Equal(new[] { 192 }, tensors["base_model.model.transformer.h.1.mlp.c_fc.lora_magnitude_vector"].Shape.ToArray());
        Assert.True(JsonNode.Parse(File.ReadAllText(Path.Combine(run, Lora.ConfigFile)))!["use_dora"]!.GetValue<bool>());
        Assert.Equal(16, JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!["Training"]!["LoraPlusRatio"]!.GetValue<float>());
        MergeAndCompareGreedyText(run);

        Assert.Contains("--dora and --loraplus-ratio shape an adapter's training", OneLineError(Finetune(Path.Combine(TempDir, "full"), "--full", "--dora")));
        Assert.Contains("--targets: DoRA target 'wte' (type Embedding): DoRA", OneLineError(Finetune(Path.Combine(TempDir, "tied"), "--targets", "c_attn,lm_head", "--dora")));
    }

    /// <summary>`lora merge`s the adapter of <paramref name="run"/> into the base and checks that greedy text from the base
    /// plus the unmerged adapter is the merged model's; returns the merged model's directory.</summary>
    private string MergeAndCompareGreedyText(string run)
    {
        string[] greedy = ["--prompt", "the hacker", "--max-tokens", "8", "--temperature", "0"];
        var merged = run + "-merged";
        Ok(CliRunner.Run("lora", "merge", "--model", Base, "--adapter", run, "--out", merged));
        var withAdapter = CliRunner.Run(["generate", "--model", Base, "--adapter", run, .. greedy]);
        Ok(withAdapter);
        Assert.Equal(withAdapter.Out, CliRunner.Run(["generate", "--model", merged, .. greedy]).Out);
        return merged;
    }

    /// <summary>--trainable-tokens N picks N tokens once, records them in config.json (where a resume reads them)
    /// and in the adapter's trainable_token_indices, and trains their rows beside the adapter: N·C more parameters.</summary>
    [Fact]
    public void TrainableTokensArePickedOnceAndTravelWithTheAdapter()
    {
        var run = Path.Combine(TempDir, "tokens");
        var result = Finetune(run, "--steps", "4", "--checkpoint-every", "2", "--lora-r", "2", "--lora-alpha", "4", "--targets", "c_attn", "--trainable-tokens", "5");
        Ok(result);
        Assert.Contains("trainable tokens: 5 rows of the tied embedding", result.Out);
        Assert.Contains($"trainable params: {2 * (2 * 48 + 144 * 2) + 5 * 48:N0} ||", result.Out);
        var picked = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!["Lora"]!["TrainableTokenIndices"]!.AsArray().Select(t => t!.GetValue<int>()).ToArray();
        Assert.Equal(5, picked.Distinct().Count());
        var adapterConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(run, Lora.ConfigFile)))!;
        Assert.Equal(picked, adapterConfig["trainable_token_indices"]!.AsArray().Select(t => t!.GetValue<int>()));
        var delta = SafeTensors.Load(Path.Combine(run, Lora.WeightsFile))["base_model.model.transformer.wte.token_adapter.trainable_tokens_delta"];
        Assert.Equal(new[] { 5, 48 }, delta.Shape.ToArray());
        var table = Gpt2ModelFiles.Load(Base).Model.Wte.Weight.IndexSelect(0, Tensor.FromArray(picked));
        Assert.NotEqual(table.ToArray(), delta.ToArray()); // the rows trained

        Assert.Contains("--trainable-tokens trains some embedding rows beside an adapter",
            OneLineError(Finetune(Path.Combine(TempDir, "full"), "--full", "--trainable-tokens", "3")));
    }

    [Fact]
    public void MergedModelGivesTheLogitsOfBasePlusAdapter()
    {
        var merged = Path.Combine(TempDir, "merged");
        var merge = CliRunner.Run("lora", "merge", "--model", Base, "--adapter", PythonAdapter, "--out", merged);
        Ok(merge);
        Assert.Contains("into 6 layers", merge.Out);

        var ids = SafeTensors.Load(TestData.Fixture(Path.Combine("lora", "gpt2_expected.safetensors")))["ids"];
        var withAdapter = Gpt2ModelFiles.Load(Base).Model;
        Lora.LoadAdapter(withAdapter, PythonAdapter);
        var (mergedModel, _) = Gpt2ModelFiles.Load(merged);
        Assert.Empty(Lora.Layers(mergedModel));
        Close.Assert(withAdapter.Eval().Forward(ids), mergedModel.Eval().Forward(ids), 1e-5, "logits of the merged model");

        // The CLI paths agree: greedy text from base + unmerged adapter is the merged model's, and not the base's.
        string[] greedy = ["--prompt", "the hacker", "--max-tokens", "16", "--temperature", "0"];
        var unmergedText = CliRunner.Run(["generate", "--model", Base, "--adapter", PythonAdapter, .. greedy]);
        Ok(unmergedText);
        Assert.Equal(unmergedText.Out, CliRunner.Run(["generate", "--model", merged, .. greedy]).Out);
        Assert.NotEqual(unmergedText.Out, CliRunner.Run(["generate", "--model", Base, .. greedy]).Out);
        string[] score = ["--text", Text(), "--max-tokens", "300"];
        var perplexity = CliRunner.Run(["eval", "perplexity", "--model", Base, "--adapter", PythonAdapter, .. score]);
        Ok(perplexity);
        Assert.Equal(Loss(perplexity.Out), Loss(CliRunner.Run(["eval", "perplexity", "--model", merged, .. score]).Out), 3);

        Assert.Contains("is not an empty directory", OneLineError(CliRunner.Run("lora", "merge", "--model", Base, "--adapter", PythonAdapter, "--out", merged)));
    }

    private static double Loss(string perplexityLine) =>
        double.Parse(System.Text.RegularExpressions.Regex.Match(perplexityLine, @"loss ([0-9.]+) nats").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void AnAdapterForAnotherModelShapeIsOneLineNamingTheTensor()
    {
        // A GPT-2 like the fixture's but 32 channels wide, with the fixture's tokenizer
        var narrow = Path.Combine(TempDir, "narrow");
        var config = new Gpt2Config { VocabSize = 335, MaxSequenceLength = 64, Layers = 2, Heads = 4, Channels = 32 };
        Gpt2ModelFiles.Save(new Gpt2Model(config, new Generator(1)), TokenizerFiles.Load(Base), narrow);

        var error = OneLineError(CliRunner.Run("generate", "--model", narrow, "--adapter", PythonAdapter, "--max-tokens", "2"));
        Assert.Contains(Path.Combine(PythonAdapter, Lora.WeightsFile), error);
        Assert.Contains("tensor 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': shape [4, 48] in the file, [4, 32] expected", error);
        Assert.Contains("lora_A.weight': shape", OneLineError(CliRunner.Run("lora", "merge", "--model", narrow, "--adapter", PythonAdapter, "--out", Path.Combine(TempDir, "m"))));
        Assert.False(Directory.Exists(Path.Combine(TempDir, "m")));
    }

    [Fact]
    public void BadFinetuneOptionsAreOneLineNamingTheOption()
    {
        Assert.Contains("--targets: LoRA target 'q_proj' match no module", OneLineError(Finetune(Path.Combine(TempDir, "a"), "--targets", "c_attn,q_proj")));
        Assert.False(File.Exists(Path.Combine(TempDir, "a", "config.json"))); // the corrected command can use the same --out
        Assert.Contains("--seq-len 100 is longer than the context", OneLineError(CliRunner.Run("finetune", "gpt", "--model", Base, "--text", Text(), "--out", Path.Combine(TempDir, "b"), "--seq-len", "100")));
        Assert.Contains("--model is required", OneLineError(CliRunner.Run("finetune", "gpt", "--text", Text(), "--out", Path.Combine(TempDir, "c"))));
        Assert.Contains("--resume needs --out", OneLineError(CliRunner.Run("finetune", "gpt", "--resume")));
        var bias = Finetune(Path.Combine(TempDir, "d"), "--lora-bias", "lora_only");
        Assert.Equal(2, bias.Exit);
        Assert.Contains("--lora-bias must be none or all, got lora_only (PEFT saves no bias for lora_only", bias.Err);
        Assert.Contains("module to save 'ln_9' match no module", OneLineError(Finetune(Path.Combine(TempDir, "e"), "--modules-to-save", "ln_9")));
        var rank = CliRunner.Run("finetune", "gpt", "--model", Base, "--text", Text(), "--lora-r", "0");
        Assert.Equal(2, rank.Exit);
        Assert.Contains("--lora-r must be a positive integer", rank.Err);
    }
}
