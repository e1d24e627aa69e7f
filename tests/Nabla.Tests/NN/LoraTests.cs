using System.Text.Json.Nodes;
using Nabla.Autograd;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Optim;
using Nabla.Training;
using Nabla.Tests.Kernels;
using Nabla.Tests.Ops;
using Xunit.Abstractions;

namespace Nabla.Tests.NN;

/// <summary>LoRA layers against PyTorch, and adapters in PEFT's file layout, written by
/// tests/reference/make_lora_fixture.py (which follows PEFT's code by hand).</summary>
public class LoraTests
{
    private static string Fixture(string name) => TestData.Fixture(Path.Combine("lora", name));
    private static readonly string PythonAdapter = Fixture("gpt2_adapter");
    private static Gpt2Model LoadBase() => Gpt2ModelFiles.Load(TestData.Fixture(Path.Combine("hf_gpt2", "base"))).Model;

    [Fact]
    public void WrappedLinearMatchesPyTorchForwardAndGradients()
    {
        var t = SafeTensors.Load(Fixture("linear.safetensors"));
        var linear = new Linear(7, 6);
        var lora = new LoraLinear(linear, rank: 3, alpha: 5, useRsLora: true);
        Assert.Equal(5 / MathF.Sqrt(3), lora.Scaling, 6);
        lora.LoadStateDict(new Dictionary<string, Tensor>
        {
            ["base_layer.weight"] = t["weight"], ["base_layer.bias"] = t["bias"], ["lora_A.weight"] = t["lora_A"], ["lora_B.weight"] = t["lora_B"],
        });
        var x = t["x"].Clone().RequiresGrad_();

        var y = lora.Forward(x);
        y.Mul(t["dy"]).Sum().Backward();

        Close.Assert(t["y"], y, 1e-5, "y");
        Close.Assert(t["dx"], x.Grad!, 1e-5, "dx");
        Close.Assert(t["dlora_A"], lora.LoraA.Weight.Grad!, 1e-5, "dlora_A");
        Close.Assert(t["dlora_B"], lora.LoraB.Weight.Grad!, 1e-5, "dlora_B");
        Assert.Null(linear.Weight.Grad); // the base layer is frozen
    }

    /// <summary>The adapter's update is added into the base layer's output; the gradient still reaches what the base
    /// layer trains (its bias with bias="all": d sum(y·dy)/db = dy summed over the rows) and the input of a layer below.</summary>
    [Fact]
    public void GradientReachesTheBaseLayersBiasAndTheLayerBelow()
    {
        var t = SafeTensors.Load(Fixture("linear.safetensors"));
        var below = new Linear(7, 7, generator: new Generator(4));
        var lora = new LoraLinear(new Linear(7, 6), rank: 3, alpha: 5, useRsLora: true);
        lora.LoadStateDict(new Dictionary<string, Tensor>
        {
            ["base_layer.weight"] = t["weight"], ["base_layer.bias"] = t["bias"], ["lora_A.weight"] = t["lora_A"], ["lora_B.weight"] = t["lora_B"],
        });
        lora.BaseLayer.Bias!.RequiresGrad_(true);
        // below(x) = x when its weight is the identity and its bias zero, so its input gradient is PyTorch's dx
        using (GradMode.NoGrad())
        {
            below.Weight.CopyFrom(Tensor.FromArray(Enumerable.Range(0, 49).Select(i => i % 8 == 0 ? 1f : 0f).ToArray(), 7, 7));
            below.Bias!.Zero();
        }
        var y = lora.Forward(below.Forward(t["x"]));
        y.Mul(t["dy"]).Sum().Backward();

        Close.Assert(t["y"], y, 1e-5, "y");
        Close.Assert(t["dy"].Reshape(-1, 6).Sum(0), lora.BaseLayer.Bias!.Grad!, 1e-5, "d bias");
        Close.Assert(t["dx"].Reshape(-1, 7).Sum(0), below.Bias!.Grad!, 1e-5, "d bias of the layer below");
        Assert.Null(lora.BaseLayer.Weight.Grad);
    }

    [Fact]
    public void FreshAdapterLeavesTheOutputUnchangedAndNamesItsTensorsAsPeft()
    {
        var linear = new Linear(5, 4, generator: new Generator(1));
        var x = Tensor.Normal(new Generator(2), 0, 1, 3, 5);
        var before = linear.Forward(x).ToArray();
        var lora = new LoraLinear(linear, rank: 2, alpha: 4, generator: new Generator(3));
        Assert.Equal(before, lora.Forward(x).ToArray()); // B starts at zero
        Assert.Equal(new[] { "base_layer.weight", "base_layer.bias", "lora_A.weight", "lora_B.weight" }, lora.StateDict().Keys);
        // kaiming_uniform_(a=√5) on (r, in): U(-1/√in, 1/√in), not all zero
        var a = lora.LoraA.Weight.ToArray();
        Assert.All(a, v => Assert.InRange(v, -1 / MathF.Sqrt(5), 1 / MathF.Sqrt(5)));
        Assert.Contains(a, v => v != 0);
        Assert.Equal(2f, lora.Scaling);
    }

    /// <summary>Saves the model's adapter into <paramref name="dir"/> and checks that it holds the tensors of the adapter
    /// the Python script wrote into <paramref name="pythonDir"/>: the same names, shapes and values. Returns the config written.</summary>
    private static JsonObject SaveAndCompareWithPython(Module model, LoraConfig config, string pythonDir, string dir)
    {
        Lora.SaveAdapter(model, dir, config);
        var python = SafeTensors.Load(Path.Combine(pythonDir, Lora.WeightsFile));
        var ours = SafeTensors.Load(Path.Combine(dir, Lora.WeightsFile));
        Assert.Equal(python.Keys.Order(), ours.Keys.Order());
        foreach (var (name, tensor) in python)
            Assert.True(tensor.ToArray().SequenceEqual(ours[name].ToArray()) && tensor.Shape.SequenceEqual(ours[name].Shape), $"tensor {name} differs");
        return JsonNode.Parse(File.ReadAllText(Path.Combine(dir, Lora.ConfigFile)))!.AsObject();
    }

    [Fact]
    public void PeftAdapterWrittenByPythonGivesPyTorchsLogits()
    {
        var expected = SafeTensors.Load(Fixture("gpt2_expected.safetensors"));
        var model = LoadBase();
        var (config, summary) = Lora.LoadAdapter(model, PythonAdapter);
        Assert.Equal(new[] { "c_attn", "attn.c_proj", "mlp.c_fc" }, config.TargetModules);
        Assert.True(config.FanInFanOut);
        Assert.Equal(new[] { "h.0.attn.c_attn", "h.0.attn.c_proj", "h.0.mlp.c_fc", "h.1.attn.c_attn", "h.1.attn.c_proj", "h.1.mlp.c_fc" },
            summary.WrappedModules);
        model.Eval();
        Close.Assert(expected["logits"], model.Forward(expected["ids"]), 1e-5, "logits of base + adapter");
    }

    [Fact]
    public void MergedModelGivesTheSameLogitsAndUnmergeRestoresTheBaseWeights()
    {
        var ids = SafeTensors.Load(Fixture("gpt2_expected.safetensors"))["ids"];
        var model = LoadBase();
        Lora.LoadAdapter(model, PythonAdapter);
        model.Eval();
        var unmerged = model.Forward(ids);
        var baseWeights = Lora.Layers(model).Select(l => l.Layer.BaseLayer.Weight.Clone()).ToList();

        Lora.Merge(model);
        Close.Assert(unmerged, model.Forward(ids), 1e-5, "merged logits");
        Assert.Contains(Lora.Layers(model).Zip(baseWeights), p => !p.First.Layer.BaseLayer.Weight.ToArray().SequenceEqual(p.Second.ToArray()));

        Lora.Unmerge(model);
        foreach (var ((name, layer), original) in Lora.Layers(model).Zip(baseWeights))
            Close.Assert(original, layer.BaseLayer.Weight, 0, $"{name}.base_layer.weight after unmerge", atol: 1e-6);
        Close.Assert(unmerged, model.Forward(ids), 1e-5, "logits after unmerge");
    }

    /// <summary>An adapter PEFT saves with bias="all" and modules_to_save=["ln_f"] holds, besides A and B, every bias
    /// (a wrapped layer's as "layer.base_layer.bias") and ln_f's weight and bias; loaded here it gives PyTorch's
    /// logits, trains exactly those tensors, and saves them back under PEFT's names.</summary>
    [Fact]
    public void PeftAdapterWithBiasAllAndModulesToSaveLoadsTrainsAndSavesAsPeft()
    {
        var expected = SafeTensors.Load(Fixture("gpt2_bias_expected.safetensors"));
        var pythonDir = Fixture("gpt2_adapter_bias");
        var model = LoadBase();
        var (config, summary) = Lora.LoadAdapter(model, pythonDir);
        Assert.Equal("all", config.Bias);
        Assert.Equal(new[] { "ln_f" }, config.ModulesToSave);
        model.Eval();
        Close.Assert(expected["logits"], model.Forward(expected["ids"]), 1e-5, "logits of base + adapter with biases and ln_f");

        var python = SafeTensors.Load(Path.Combine(pythonDir, Lora.WeightsFile));
        var prefix = Lora.PeftPrefix(model);
        var trainable = model.NamedParameters().Where(p => p.Parameter.RequiresGrad).Select(p => prefix + p.Name).Order().ToList();
        Assert.Equal(python.Keys.Order(), trainable); // what trains is what the file holds
        Assert.Equal(python.Values.Sum(v => (long)v.Count), summary.TrainableParameters);
        Assert.Contains(prefix + "h.0.attn.c_attn.base_layer.bias", trainable);
        Assert.Contains(prefix + "h.1.ln_2.bias", trainable);
        Assert.DoesNotContain(prefix + "h.1.ln_2.weight", trainable);

        var dir = Directory.CreateTempSubdirectory("nabla-lora-").FullName;
        try
        {
            var ourConfig = SaveAndCompareWithPython(model, config, pythonDir, dir);
            var pythonConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(pythonDir, Lora.ConfigFile)))!.AsObject();
            foreach (var key in new[] { "bias", "modules_to_save", "use_rslora", "target_modules" })
                Assert.True(JsonNode.DeepEquals(pythonConfig[key], ourConfig[key]), $"{key}: {pythonConfig[key]?.ToJsonString()} in PEFT's file, {ourConfig[key]?.ToJsonString()} in ours");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void BiasAllAndModulesToSaveTrainThoseParametersAndNoOthers()
    {
        var config = new Gpt2Config { VocabSize = 31, MaxSequenceLength = 16, Channels = 16, Layers = 2, Heads = 2 };
        var model = new Gpt2Model(config, new Generator(5));
        var summary = Lora.Apply(model, ["c_attn"], rank: 2, alpha: 4, generator: new Generator(6), bias: Lora.BiasAll, modulesToSave: ["ln_f"]);
        int c = config.Channels;
        long adapters = config.Layers * 2 * (c + 3 * c);
        long biases = config.Layers * (3 * c + c + 4 * c + c + 2 * c) + c; // c_attn, c_proj, c_fc, mlp.c_proj, ln_1, ln_2; ln_f
        Assert.Equal(adapters + biases + c, summary.TrainableParameters);    // + ln_f's weight

        var before = model.StateDict().ToDictionary(p => p.Key, p => p.Value.ToArray());
        var tokens = Enumerable.Range(0, 4 * 17 * 4).Select(i => i * 7 % config.VocabSize).ToArray();
        new Trainer(model, (logits, targets) => Gpt2Model.Loss(logits, targets), new TokenBatchLoader(tokens, 4, 16),
            new AdamW(model.Parameters(), 1e-2f), new TrainerOptions { Steps = 2 }).Train();
        foreach (var (name, values) in before)
        {
            bool trains = name.EndsWith(".bias") || name.StartsWith("ln_f.") || name.Contains(".lora_");
            bool changed = !values.SequenceEqual(model.StateDict()[name].ToArray());
            if (name.EndsWith(".lora_A.weight")) continue; // A's gradient is zero while B is: it moves from step 2 on, or not at all
            Assert.True(trains == changed, $"{name} {(changed ? "changed" : "did not change")}");
        }
    }

    [Theory]
    [InlineData("lora_only", null, "PEFT trains those biases but saves none of them")]
    [InlineData("none", "h.0.attn.c_attn", "module to save 'h.0.attn.c_attn' is or holds the LoRA target 'h.0.attn.c_attn'")]
    [InlineData("none", "attn", "module to save 'h.0.attn' is or holds the LoRA target 'h.0.attn.c_attn'")]
    [InlineData("none", "ln_9", "module to save 'ln_9' match no module")]
    public void BiasAndModulesToSaveThatCannotWorkAreErrorsNamingThem(string bias, string? moduleToSave, string expected)
    {
        var config = new Gpt2Config { VocabSize = 11, MaxSequenceLength = 8, Channels = 8, Layers = 1, Heads = 2 };
        var error = Assert.Throws<ArgumentException>(() =>
            Lora.Apply(new Gpt2Model(config), ["c_attn"], 2, 4, bias: bias, modulesToSave: moduleToSave == null ? null : [moduleToSave])).Message;
        Assert.Contains(expected, error);
    }

    [Fact]
    public void OnlyTheAdapterTrainsThroughTheTrainer()
    {
        var config = new Gpt2Config { VocabSize = 31, MaxSequenceLength = 16, Channels = 16, Layers = 2, Heads = 2 };
        var model = new Gpt2Model(config, new Generator(5));
        var summary = Lora.Apply(model, ["c_attn", "attn.c_proj", "mlp.*"], rank: 2, alpha: 4, dropout: 0.1f, generator: new Generator(6));
        Assert.Equal(new[] { "h.0.attn.c_attn", "h.0.attn.c_proj", "h.0.mlp.c_fc", "h.0.mlp.c_proj",
            "h.1.attn.c_attn", "h.1.attn.c_proj", "h.1.mlp.c_fc", "h.1.mlp.c_proj" }, summary.WrappedModules);
        int c = config.Channels;
        long perBlock = 2 * (c + 3 * c) + 2 * (c + c) + 2 * (c + 4 * c) + 2 * (4 * c + c); // r·in + out·r per layer
        Assert.Equal(config.Layers * perBlock, summary.TrainableParameters);
        Assert.Equal(model.ParameterCount, summary.TotalParameters);
        Assert.StartsWith($"trainable params: {summary.TrainableParameters:N0} || all params: ", summary.ToString());

        var frozen = model.NamedParameters().Where(p => !p.Name.Contains(".lora_")).Select(p => (p.Name, Values: p.Parameter.ToArray())).ToList();
        var loraB = Lora.Layers(model).Select(l => l.Layer.LoraB.Weight).ToList();
        var tokens = Enumerable.Range(0, 4 * 17 * 4).Select(i => i * 7 % config.VocabSize).ToArray();
        var optimizer = new AdamW(model.Parameters(), 1e-2f);
        new Trainer(model, (logits, targets) => Gpt2Model.Loss(logits, targets), new TokenBatchLoader(tokens, 4, 16), optimizer,
            new TrainerOptions { Steps = 3 }).Train();

        foreach (var (name, values) in frozen)
            Assert.True(values.SequenceEqual(model.StateDict()[name].ToArray()), $"{name} changed although it is frozen");
        Assert.All(loraB, b => Assert.Contains(b.ToArray(), v => v != 0)); // B left zero: the adapter trained
    }

    [Fact]
    public void SavedAdapterHasPeftsNamesShapesAndConfigKeysAndLoadsBack()
    {
        var model = LoadBase();
        var (config, _) = Lora.LoadAdapter(model, PythonAdapter);
        var dir = Directory.CreateTempSubdirectory("nabla-lora-").FullName;
        try
        {
            var ourConfig = SaveAndCompareWithPython(model, config, PythonAdapter, dir);
            var pythonConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(PythonAdapter, Lora.ConfigFile)))!.AsObject();
            Assert.Equal(pythonConfig.Select(p => p.Key).Order(), ourConfig.Select(p => p.Key).Order());
            foreach (var key in new[] { "peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "task_type", "base_model_name_or_path", "fan_in_fan_out", "use_rslora", "use_dora" })
                Assert.True(JsonNode.DeepEquals(pythonConfig[key], ourConfig[key]), $"{key}: {pythonConfig[key]?.ToJsonString()} in PEFT's file, {ourConfig[key]?.ToJsonString()} in ours");

            var ids = SafeTensors.Load(Fixture("gpt2_expected.safetensors"))["ids"];
            var reloaded = LoadBase();
            Lora.LoadAdapter(reloaded, dir);
            Assert.Equal(model.Eval().Forward(ids).ToArray(), reloaded.Eval().Forward(ids).ToArray());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static readonly string PythonTiedAdapter = Fixture("gpt2_adapter_tied");

    /// <summary>The logits and the next-token loss of the fixture's ids and targets against PyTorch's, then the backward
    /// pass, whose gradients the caller compares.</summary>
    private static void CompareLogitsAndLossThenBackward(Gpt2Model model, IReadOnlyDictionary<string, Tensor> expected, string what)
    {
        model.Eval();
        var logits = model.Forward(expected["ids"]);
        Close.Assert(expected["logits"], logits, 1e-5, $"logits of {what}");
        var loss = Gpt2Model.Loss(logits, expected["targets"]);
        Close.Assert(expected["loss"], loss.Reshape(1), 1e-5, $"loss of {what}");
        loss.Backward();
    }

    /// <summary>PEFT's adapter on GPT-2's tied embedding and head (ensure_weight_tying; its config names the pair
    /// "transformer.wte"): the embedding's lora_embedding_A/B serve the head too, so the logits, the loss and the
    /// gradients of A and B (the sums of what PEFT's two tied leaves receive) match PyTorch's.</summary>
    [Fact]
    public void PeftTiedEmbeddingAdapterGivesPyTorchsLogitsAndGradients()
    {
        var expected = SafeTensors.Load(Fixture("gpt2_tied_expected.safetensors"));
        var model = LoadBase();
        var (config, summary) = Lora.LoadAdapter(model, PythonTiedAdapter);
        Assert.True(config.EnsureWeightTying);
        Assert.Equal(new[] { "wte", "h.0.attn.c_attn", "h.1.attn.c_attn" }, summary.WrappedModules);
        var adapter = (LoraEmbedding)model.GetSubmodule("wte");
        int vocab = model.Config.VocabSize, channels = model.Config.Channels;
        Assert.Equal(2 * (vocab + channels) + 2 * 2 * (channels + 3 * channels), summary.TrainableParameters);

        CompareLogitsAndLossThenBackward(model, expected, "base + tied adapter");
        Close.Assert(expected["grad_lora_embedding_A"], adapter.LoraEmbeddingA.Grad!, 1e-4, "grad of lora_embedding_A", atol: 1e-6);
        Close.Assert(expected["grad_lora_embedding_B"], adapter.LoraEmbeddingB.Grad!, 1e-4, "grad of lora_embedding_B", atol: 1e-6);
        Assert.Null(adapter.BaseLayer.Weight.Grad); // the table stays frozen
    }

    /// <summary>Merged, the tied adapter changes the one table both ends read, so the logits stay the unmerged
    /// model's; unmerged again, the table is the base's.</summary>
    [Fact]
    public void TiedAdapterMergesIntoTheSharedTableAndUnmerges()
    {
        var ids = SafeTensors.Load(Fixture("gpt2_tied_expected.safetensors"))["ids"];
        var model = LoadBase();
        var table = model.Wte.Weight.Clone();
        Lora.LoadAdapter(model, PythonTiedAdapter);
        model.Eval();
        var unmerged = model.Forward(ids);
        Lora.Merge(model);
        Close.Assert(unmerged, model.Forward(ids), 1e-5, "merged logits");
        Lora.Unmerge(model);
        Close.Assert(table, ((LoraEmbedding)model.GetSubmodule("wte")).BaseLayer.Weight, 0, "wte after unmerge", atol: 1e-6);
        Lora.MergeAndUnload(model);
        Assert.IsType<Embedding>(model.GetSubmodule("wte"));
        Close.Assert(unmerged, model.Forward(ids), 1e-5, "logits after merge_and_unload");
    }

    /// <summary>Saved here, the tied adapter has PEFT's four tensors (the head's the embedding's transposed) and a config
    /// that PEFT ties again on loading: the head named "lm_head" (PEFT's embedding names hold "lm_head", not "wte") and
    /// ensure_weight_tying; it loads back to the same logits.</summary>
    [Fact]
    public void TiedAdapterSavesAsPeftAndLoadsBack()
    {
        var ids = SafeTensors.Load(Fixture("gpt2_tied_expected.safetensors"))["ids"];
        var model = LoadBase();
        var (config, _) = Lora.LoadAdapter(model, PythonTiedAdapter);
        var dir = Directory.CreateTempSubdirectory("nabla-lora-").FullName;
        try
        {
            var ourConfig = SaveAndCompareWithPython(model, config, PythonTiedAdapter, dir);
            Assert.Equal("[\"c_attn\",\"lm_head\"]", ourConfig["target_modules"]!.ToJsonString());
            Assert.True(ourConfig["ensure_weight_tying"]!.GetValue<bool>());
            var reloaded = LoadBase();
            Lora.LoadAdapter(reloaded, dir);
            Assert.Equal(model.Eval().Forward(ids).ToArray(), reloaded.Eval().Forward(ids).ToArray());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>Without ensure_weight_tying PEFT adapts one end of the tied pair only, which is refused; a head tensor
    /// that is not the embedding's transposed means two adapters, also refused; both name the file.</summary>
    [Theory]
    [InlineData("config", "without \"ensure_weight_tying\": true")]
    [InlineData("head", "tensor 'base_model.model.lm_head.lora_B.weight' (Float32 [335, 2]) is not the tied embedding's adapter transposed")]
    public void TiedAdaptersThatAreNotTiedAreRejectedNamingTheFile(string broken, string expected)
    {
        var dir = Directory.CreateTempSubdirectory("nabla-lora-").FullName;
        try
        {
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(PythonTiedAdapter, Lora.ConfigFile)))!.AsObject();
            var tensors = SafeTensors.Load(Path.Combine(PythonTiedAdapter, Lora.WeightsFile));
            if (broken == "config") config.Remove("ensure_weight_tying");
            else tensors["base_model.model.lm_head.lora_B.weight"] = tensors["base_model.model.lm_head.lora_B.weight"].Mul(2f);
            File.WriteAllText(Path.Combine(dir, Lora.ConfigFile), config.ToJsonString());
            SafeTensors.Save(Path.Combine(dir, Lora.WeightsFile), tensors);
            var error = Assert.Throws<CheckpointException>(() => Lora.LoadAdapter(LoadBase(), dir)).Message;
            Assert.StartsWith(Path.Combine(dir, broken == "config" ? Lora.ConfigFile : Lora.WeightsFile) + ":", error);
            Assert.Contains(expected, error);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static readonly string PythonTokensAdapter = Fixture("gpt2_adapter_tokens");

    /// <summary>PEFT's trainable tokens on GPT-2's tied table (trainable_token_indices, rows in the list's order): the
    /// logits, the loss and the gradient of the trained rows (read by the embedding and by the head) match PyTorch's.</summary>
    [Fact]
    public void PeftTrainableTokensGivePyTorchsLogitsAndGradient()
    {
        var expected = SafeTensors.Load(Fixture("gpt2_tokens_expected.safetensors"));
        var model = LoadBase();
        var (config, summary) = Lora.LoadAdapter(model, PythonTokensAdapter);
        Assert.Equal(new[] { 17, 3, 200, 42, 334 }, config.TrainableTokenIndices);
        var tokens = (TrainableTokens)model.GetSubmodule("wte");
        int channels = model.Config.Channels;
        Assert.Equal(5 * channels + 2 * 2 * (channels + 3 * channels), summary.TrainableParameters);

        CompareLogitsAndLossThenBackward(model, expected, "base + trainable tokens");
        Close.Assert(expected["grad_trainable_tokens_delta"], tokens.Delta.Grad!, 1e-4, "grad of trainable_tokens_delta", atol: 1e-6);
        Assert.Null(tokens.BaseLayer.Weight.Grad);
    }

    /// <summary>Merged, the trained rows are copied into the table (the logits stay); unmerged, the base's rows come
    /// back bit for bit; saved, the adapter has PEFT's tensor name and trainable_token_indices, and loads back.</summary>
    [Fact]
    public void TrainableTokensMergeExactlyAndSaveAsPeft()
    {
        var ids = SafeTensors.Load(Fixture("gpt2_tokens_expected.safetensors"))["ids"];
        var model = LoadBase();
        var table = model.Wte.Weight.Clone();
        var (config, _) = Lora.LoadAdapter(model, PythonTokensAdapter);
        model.Eval();
        var unmerged = model.Forward(ids);
        Lora.Merge(model);
        Close.Assert(unmerged, model.Forward(ids), 1e-5, "merged logits");
        Lora.Unmerge(model);
        Assert.Equal(table.ToArray(), ((TrainableTokens)model.GetSubmodule("wte")).BaseLayer.Weight.ToArray());

        var dir = Directory.CreateTempSubdirectory("nabla-lora-").FullName;
        try
        {
            var ourConfig = SaveAndCompareWithPython(model, config, PythonTokensAdapter, dir);
            Assert.Equal("[17,3,200,42,334]", ourConfig["trainable_token_indices"]!.ToJsonString());
            var reloaded = LoadBase();
            Lora.LoadAdapter(reloaded, dir);
            Assert.Equal(unmerged.ToArray(), reloaded.Eval().Forward(ids).ToArray());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>A model that puts 0.97 on token 1 whatever it reads, against a text of tokens 2 and 3 only (2 three times
    /// as often): token 1 (expected, absent: (0 − 0.97)·ln(10⁻⁷/0.97) ≈ 15.5) comes first, then 2 (frequent, seldom
    /// predicted: (0.75 − 0.0067)·ln(0.75/0.0067) ≈ 3.5), then 3 (≈ 0.9); the tokens neither uses score ≈ 0.07.</summary>
    [Fact]
    public void MostMispredictedTokensAreTheOnesWhoseFrequencyTheModelGetsMostWrong()
    {
        const int vocab = 6;
        var row = new float[vocab];
        row[1] = 5f;
        Tensor Model(Tensor ids) => Tensor.FromArray(Enumerable.Repeat(row, ids.Size(1)).SelectMany(r => r).ToArray(), 1, ids.Size(1), vocab);
        var text = Enumerable.Range(0, 400).Select(i => i % 4 == 3 ? 3 : 2).ToArray();
        Assert.Equal(new[] { 1, 2, 3 }, Lora.MostMispredictedTokens(Model, text, vocab, 3, windows: 4, window: 16));
        Assert.Equal(new[] { 1, 2, 3, 0, 4, 5 }, Lora.MostMispredictedTokens(Model, text, vocab, 6, windows: 4, window: 16)); // ties by id
    }

    [Theory]
    [InlineData(new[] { 3, 3 }, null, "repeat a token")]
    [InlineData(new[] { 335 }, null, "trainable token 335 is not below the vocabulary size 335")]
    [InlineData(new[] { 3 }, "wte", "module to save 'wte' trains all of 'wte'")]
    public void TrainableTokensThatCannotWorkAreErrorsNamingThem(int[] tokens, string? moduleToSave, string expected)
    {
        var error = Assert.ThrowsAny<ArgumentException>(() => Lora.Apply(LoadBase(), ["c_attn"], 2, 4,
            modulesToSave: moduleToSave == null ? null : [moduleToSave], trainableTokens: tokens)).Message;
        Assert.Contains(expected, error);
        Assert.Contains("both adapt 'wte'", Assert.Throws<ArgumentException>(() => Lora.Apply(LoadBase(), ["lm_head"], 2, 4, trainableTokens: [1])).Message);
    }

    [Fact]
    public void AdapterFileMissingATensorIsRejectedNamingFileAndTensor()
    {
        var dir = Directory.CreateTempSubdirectory("nabla-lora-").FullName;
        try
        {
            File.Copy(Path.Combine(PythonAdapter, Lora.ConfigFile), Path.Combine(dir, Lora.ConfigFile));
            var tensors = SafeTensors.Load(Path.Combine(PythonAdapter, Lora.WeightsFile));
            const string dropped = "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight";
            tensors.Remove(dropped);
            SafeTensors.Save(Path.Combine(dir, Lora.WeightsFile), tensors);
            var error = Assert.Throws<CheckpointException>(() => Lora.LoadAdapter(LoadBase(), dir)).Message;
            Assert.Contains(Path.Combine(dir, Lora.WeightsFile), error);
            Assert.Contains($"missing tensor '{dropped}'", error);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData("r", "0", "r is 0")]
    [InlineData("target_modules", "\".*c_attn\"", "a regex string is not supported")]
    [InlineData("peft_type", "\"IA3\"", "only LORA adapters")]
    [InlineData("bias", "\"lora_only\"", "only \"none\" and \"all\" are supported")]
    [InlineData("modules_to_save", "\"ln_f\"", "modules_to_save must be a list")]
    public void ConfigSettingsThisLibraryCannotHonourAreRejectedNamingTheFile(string key, string json, string expected)
    {
        var dir = Directory.CreateTempSubdirectory("nabla-lora-").FullName;
        try
        {
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(PythonAdapter, Lora.ConfigFile)))!.AsObject();
            config[key] = JsonNode.Parse(json);
            File.WriteAllText(Path.Combine(dir, Lora.ConfigFile), config.ToJsonString());
            File.Copy(Path.Combine(PythonAdapter, Lora.WeightsFile), Path.Combine(dir, Lora.WeightsFile));
            var error = Assert.Throws<CheckpointException>(() => Lora.LoadAdapter(LoadBase(), dir)).Message;
            Assert.StartsWith(Path.Combine(dir, Lora.ConfigFile) + ":", error);
            Assert.Contains(expected, error);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static LoraLinear DoraFromFixture(IReadOnlyDictionary<string, Tensor> t, float dropout = 0, Generator? generator = null)
    {
        var dora = new LoraLinear(new Linear(7, 5), rank: 3, alpha: 6, dropout, generator: generator, useDora: true);
        dora.LoadStateDict(new Dictionary<string, Tensor>
        {
            ["base_layer.weight"] = t["weight"], ["base_layer.bias"] = t["bias"], ["lora_A.weight"] = t["lora_A"], ["lora_B.weight"] = t["lora_B"],
            ["lora_magnitude_vector"] = t["magnitude"],
        });
        return dora;
    }

    /// <summary>DoRA on one linear layer (PEFT's DoraLinearLayer, the norm ‖W + s·B·A‖ detached): the output and the
    /// gradients of x, A, B and the magnitude match PyTorch's; merged, the weight is PEFT's m ⊙ (W + ΔW) / ‖W + ΔW‖ and
    /// gives the same output; unmerged, the base weight comes back.</summary>
    [Fact]
    public void DoraLinearMatchesPyTorchForwardGradientsAndMerge()
    {
        var t = SafeTensors.Load(Fixture("dora_linear.safetensors"));
        var dora = DoraFromFixture(t);
        var x = t["x"].Clone().RequiresGrad_();
        var y = dora.Forward(x);
        y.Mul(t["dy"]).Sum().Backward();
        Close.Assert(t["y"], y, 1e-5, "y");
        Close.Assert(t["dx"], x.Grad!, 1e-5, "dx");
        Close.Assert(t["dlora_A"], dora.LoraA.Weight.Grad!, 1e-5, "dlora_A");
        Close.Assert(t["dlora_B"], dora.LoraB.Weight.Grad!, 1e-5, "dlora_B");
        Close.Assert(t["dmagnitude"], dora.Magnitude!.Grad!, 1e-5, "dmagnitude");
        Assert.Null(dora.BaseLayer.Weight.Grad);
        dora.BaseLayer.Bias!.RequiresGrad_(true);                               // bias "all": d sum(y·dy)/db = dy summed over the rows
        dora.Forward(t["x"]).Mul(t["dy"]).Sum().Backward();
        Close.Assert(t["dy"].Sum([0, 1]), dora.BaseLayer.Bias.Grad!, 1e-5, "dbias");

        dora.Merge();
        Close.Assert(t["merged_weight"], dora.BaseLayer.Weight, 1e-5, "merged weight");
        using (GradMode.NoGrad()) Close.Assert(t["y"], dora.Forward(t["x"]), 1e-5, "y of the merged layer");
        dora.Unmerge();
        Close.Assert(t["weight"], dora.BaseLayer.Weight, 1e-5, "unmerged weight", atol: 1e-6);
    }

    /// <summary>With dropout while training, PEFT's DoRA adds (m/‖·‖ − 1)·x'·Wᵀ + (m/‖·‖)·s·x'·Aᵀ·Bᵀ to base(x), x' the
    /// dropped-out input (the same mask from the same seed); in evaluation the dropout path is the plain one.</summary>
    [Fact]
    public void DoraWithDropoutAddsPeftsTermsOnTheDroppedOutInput()
    {
        var t = SafeTensors.Load(Fixture("dora_linear.safetensors"));
        var dora = DoraFromFixture(t, dropout: 0.5f, generator: new Generator(9));
        var x = t["x"];
        using var noGrad = GradMode.NoGrad();
        var generator = new Generator(9);
        _ = new Linear(7, 3, bias: false, generator); // the layer's generator drew its A first
        var dropped = F.Dropout(x, 0.5f, training: true, generator);
        var scale = dora.Magnitude!.Div(dora.BaseLayer.Weight.Add(dora.DeltaWeight()).Square().Sum(1).Sqrt());
        var xw = F.Linear(dropped, dora.BaseLayer.Weight);
        var expected = F.Linear(x, dora.BaseLayer.Weight, dora.BaseLayer.Bias).Add(scale.Sub(Tensor.Scalar(1f)).Mul(xw))
            .Add(scale.Mul(dropped.MatMul(dora.LoraA.Weight.T).MatMul(dora.LoraB.Weight.T).Mul(dora.Scaling)));
        Close.Assert(expected, dora.Forward(x), 1e-5, "y with dropout");
        Assert.False(dropped.ToArray().SequenceEqual(x.ToArray()));
        dora.Eval();
        Close.Assert(t["y"], dora.Forward(x), 1e-5, "y in evaluation");
    }

    private static readonly string PythonDoraAdapter = Fixture("gpt2_adapter_dora");

    /// <summary>A DoRA adapter as PEFT saves it (use_dora; "...lora_magnitude_vector" beside A and B; GPT-2's Conv1D
    /// layers with fan_in_fan_out): the logits, the loss and a magnitude's gradient match PyTorch's; merged, the logits
    /// stay; saved, the file has PEFT's names and values and use_dora, and loads back.</summary>
    [Fact]
    public void PeftDoraAdapterGivesPyTorchsLogitsMergesAndSavesAsPeft()
    {
        var expected = SafeTensors.Load(Fixture("gpt2_dora_expected.safetensors"));
        var model = LoadBase();
        var (config, summary) = Lora.LoadAdapter(model, PythonDoraAdapter);
        Assert.True(config.UseDora);
        int c = model.Config.Channels;
        Assert.Equal(model.Config.Layers * (2 * (c + 3 * c) + 3 * c + 2 * (4 * c + c) + c), summary.TrainableParameters);
        CompareLogitsAndLossThenBackward(model, expected, "base + DoRA adapter");
        var magnitude = ((LoraLinear)model.GetSubmodule("h.0.attn.c_attn")).Magnitude!;
        Close.Assert(expected["grad_magnitude_h0_c_attn"], magnitude.Grad!, 1e-4, "grad of h.0.attn.c_attn's magnitude", atol: 1e-6);

        var ids = expected["ids"];
        var unmerged = model.Forward(ids);
        Lora.Merge(model);
        Close.Assert(unmerged, model.Forward(ids), 1e-5, "merged logits");
        Lora.Unmerge(model);
        var dir = Directory.CreateTempSubdirectory("nabla-lora-").FullName;
        try
        {
            var ourConfig = SaveAndCompareWithPython(model, config, PythonDoraAdapter, dir);
            Assert.True(ourConfig["use_dora"]!.GetValue<bool>());
            var reloaded = LoadBase();
            Lora.LoadAdapter(reloaded, dir);
            Assert.Equal(unmerged.ToArray(), reloaded.Eval().Forward(ids).ToArray());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>A fresh DoRA layer starts with m = ‖W‖ row by row and B = 0, so the model's output is the base's.</summary>
    [Fact]
    public void FreshDoraAdapterLeavesTheOutputUnchanged()
    {
        var config = new Gpt2Config { VocabSize = 23, MaxSequenceLength = 8, Channels = 16, Layers = 1, Heads = 2 };
        var model = new Gpt2Model(config, new Generator(3)).Eval();
        var ids = Tensor.FromArray(Enumerable.Range(0, 8).Select(i => i * 3 % 23).ToArray(), 1, 8);
        var before = model.Forward(ids);
        Lora.Apply(model, ["c_attn", "c_fc"], rank: 2, alpha: 4, useDora: true);
        var layer = (LoraLinear)model.GetSubmodule("h.0.mlp.c_fc");
        Close.Assert(layer.BaseLayer.Weight.Square().Sum(1).Sqrt(), layer.Magnitude!, 1e-6, "initial magnitude");
        Close.Assert(before, model.Forward(ids), 1e-5, "logits of a fresh DoRA adapter");
    }

    [Fact]
    public void DoraOnAQuantisedLayerOrTheTiedEmbeddingIsAnErrorNamingIt()
    {
        var config = new Gpt2Config { VocabSize = 11, MaxSequenceLength = 8, Channels = 64, Layers = 1, Heads = 2 };
        var tied = Assert.Throws<ArgumentException>(() => Lora.Apply(new Gpt2Model(config), ["c_attn", "lm_head"], 2, 4, useDora: true)).Message;
        Assert.Contains("DoRA target 'wte' (type Embedding): DoRA", tied);
        var model = new Gpt2Model(config);
        Nabla.Quantization.Gpt2Quantization.Quantize(model, Nabla.Quantization.QuantizationFormat.Q8_0);
        var quantized = Assert.Throws<ArgumentException>(() => Lora.Apply(model, ["c_attn"], 2, 4, useDora: true)).Message;
        Assert.Contains("DoRA target 'h.0.attn.c_attn' (type QuantizedLinear): DoRA", quantized);
    }

    /// <summary>LoRA+ (PEFT's create_loraplus_optimizer): B and the trained vectors at ratio × the learning rate, A and
    /// the other matrices at the learning rate, through the schedule; a ratio of 1 keeps the two plain groups.</summary>
    [Fact]
    public void LoraPlusGivesBAndTheVectorsTheirOwnLearningRate()
    {
        var config = new Gpt2Config { VocabSize = 31, MaxSequenceLength = 16, Channels = 16, Layers = 1, Heads = 2 };
        var model = new Gpt2Model(config, new Generator(5));
        Lora.Apply(model, ["c_attn"], rank: 2, alpha: 4, generator: new Generator(6), modulesToSave: ["ln_f"], useDora: true);
        var tokens = Enumerable.Range(0, 4 * 17 * 4).Select(i => i * 7 % config.VocabSize).ToArray();
        var options = new LanguageModelTrainingOptions { Steps = 10, WarmupSteps = 2, LearningRate = 1e-3f, LoraPlusRatio = 16 };
        var optimizer = LanguageModelTraining.CreateTrainer(model, new TokenBatchLoader(tokens, 4, 16), null, options, null).Optimizer;
        var layer = (LoraLinear)model.GetSubmodule("h.0.attn.c_attn");
        float RateOf(Tensor p) => optimizer.Groups.Single(g => g.Parameters.Contains(p)).LearningRate ?? optimizer.LearningRate;
        Assert.Equal(optimizer.LearningRate, RateOf(layer.LoraA.Weight));
        Assert.Equal(16 * optimizer.LearningRate, RateOf(layer.LoraB.Weight), 5);
        Assert.Equal(16 * optimizer.LearningRate, RateOf(layer.Magnitude!), 5);
        Assert.Equal(16 * optimizer.LearningRate, RateOf(model.LnF.Weight), 5);
        Assert.Equal(model.TrainableParameterCount, optimizer.Groups.Sum(g => g.Parameters.Sum(p => p.Count)));

        var plain = LanguageModelTraining.CreateTrainer(model, new TokenBatchLoader(tokens, 4, 16), null, options with { LoraPlusRatio = 1 }, null).Optimizer;
        Assert.Equal(2, plain.Groups.Count);
        Assert.All(plain.Groups, g => Assert.Null(g.LearningRate));
    }

    [Fact]
    public void TargetsThatMatchNothingOrNoLinearAreErrors()
    {
        var config = new Gpt2Config { VocabSize = 11, MaxSequenceLength = 8, Channels = 8, Layers = 1, Heads = 2 };
        var missing = Assert.Throws<ArgumentException>(() => Lora.Apply(new Gpt2Model(config), ["c_attn", "q_proj"], 2, 4)).Message;
        Assert.Contains("'q_proj' match no module", missing);
        var notLinear = Assert.Throws<ArgumentException>(() => Lora.Apply(new Gpt2Model(config), ["ln_1"], 2, 4)).Message;
        Assert.Contains("'h.0.ln_1', a LayerNorm", notLinear);
        // "c_proj" alone means both projections, as in PEFT; "attn.c_proj" only the attention's
        Assert.Equal(new[] { "h.0.attn.c_proj", "h.0.mlp.c_proj" }, Lora.Apply(new Gpt2Model(config), ["c_proj"], 2, 4).WrappedModules);
        Assert.Equal(new[] { "h.0.attn.c_proj" }, Lora.Apply(new Gpt2Model(config), ["attn.c_proj"], 2, 4).WrappedModules);
    }
}

/// <summary>Peak tensor memory of a LoRA training step against a full fine-tuning step of the same model and batch,
/// in the buffer pool's byte counts (serial: the pool's counters are the process's).</summary>
[Collection(KernelSettingsCollection.Name)]
public class LoraMemoryTests(ITestOutputHelper output)
{
    /// <summary>A model whose activations outweigh its weights (C = 64, batches of 8 × 64 tokens), as the 3.45 M
    /// model at 8 × 128 of docs/lora.md: there, LoRA on every linear layer used to peak above full fine-tuning, since
    /// each adapted layer kept its base output, the adapter's output and their sum until the step ended. Now the
    /// update is added into the base output, so the adapter's own activations are the (N, r) products: the LoRA step
    /// peaks at the full step's activations minus the weights' gradients and AdamW's moments.</summary>
    [Fact]
    public void ALoraStepPeaksBelowAFullFineTuningStep()
    {
        var config = new Gpt2Config { VocabSize = 128, MaxSequenceLength = 64, Channels = 64, Layers = 2, Heads = 4 };
        var ids = Tensor.FromArray(Enumerable.Range(0, 8 * 65).Select(i => i * 5 % 127).ToArray(), 8, 65);
        const int rank = 2;
        var full = TrainingStepMemory.Measure(() => new Gpt2Model(config, new Generator(41)), ids);
        var lora = TrainingStepMemory.Measure(() =>
        {
            var model = new Gpt2Model(config, new Generator(41));
            Lora.Apply(model, ["c_attn", "c_proj", "c_fc"], rank, alpha: 4, generator: new Generator(42));
            return model;
        }, ids);
        long weights = 4L * full.Model.ParameterCount;
        long adapters = 4L * lora.Model.TrainableParameterCount;
        output.WriteLine($"full fine-tuning: {full.Resident / 1024.0:0} KiB resident, peak {full.Peak / 1024.0:0} KiB; " +
            $"LoRA r={rank}: {lora.Resident / 1024.0:0} KiB resident, peak {lora.Peak / 1024.0:0} KiB ({100.0 * lora.Peak / full.Peak:0}%); weights {weights / 1024.0:0} KiB");

        Assert.True(lora.Peak < full.Peak, $"LoRA step peak {lora.Peak} bytes, full step {full.Peak}");
        // What a step adds to what it holds between steps: its activations and the gradients in flight (those of the
        // step before were resident and are replaced). LoRA's adds, per adapted layer, two (N, r) products (h = s·x·Aᵀ
        // and its gradient) and, while an adapted layer's input gradient is summed from the base's and the adapter's
        // parts, one more (N, in) buffer, 4C at most. Keeping three (..., out) activations per layer instead of one
        // would add 2·N·(3C + C + 4C + C)·4 bytes per block, far above this bound.
        long n = 8 * 64, adaptedLayers = 4 * config.Layers;
        long activationsFull = full.Peak - full.Resident;
        long activationsLora = lora.Peak - lora.Resident;
        output.WriteLine($"activations and gradients in flight: full {activationsFull / 1024.0:0} KiB, LoRA {activationsLora / 1024.0:0} KiB");
        Assert.InRange(activationsLora, 0, activationsFull + (adaptedLayers * 2 * n * rank + n * 4 * config.Channels) * 4 + adapters);
    }

    /// <summary>A DoRA step of the same model keeps one more (N, out) activation per adapted layer than a LoRA step
    /// (the pre-scale output its magnitude's gradient reads) and, while a layer's output gradient is scaled, that
    /// gradient twice (N × 4C at most); nothing of the size of a weight: the row norms ‖W + ΔW‖ are computed without
    /// forming W + ΔW, and the magnitude's gradient without an (N, out) product, either of which would otherwise live
    /// until the step ends, for every layer.</summary>
    [Fact]
    public void ADoraStepKeepsOneMoreOutputPerLayerThanALoraStep()
    {
        var config = new Gpt2Config { VocabSize = 128, MaxSequenceLength = 64, Channels = 64, Layers = 2, Heads = 4 };
        var ids = Tensor.FromArray(Enumerable.Range(0, 8 * 65).Select(i => i * 5 % 127).ToArray(), 8, 65);
        (long Resident, long Peak, Gpt2Model Model) Measure(bool dora) => TrainingStepMemory.Measure(() =>
        {
            var model = new Gpt2Model(config, new Generator(41));
            Lora.Apply(model, ["c_attn", "c_proj", "c_fc"], rank: 2, alpha: 4, generator: new Generator(42), useDora: dora);
            return model;
        }, ids);
        var lora = Measure(dora: false);
        var dora = Measure(dora: true);
        long n = 8 * 64, c = config.Channels;
        long outputs = 4 * n * config.Layers * (3 * c + c + 4 * c + c);             // one (N, out) per adapted layer
        long magnitudes = 4L * (dora.Model.TrainableParameterCount - lora.Model.TrainableParameterCount);
        output.WriteLine($"step activations: LoRA {(lora.Peak - lora.Resident) / 1024.0:0} KiB, DoRA {(dora.Peak - dora.Resident) / 1024.0:0} KiB; one output per layer {outputs / 1024.0:0} KiB");
        Assert.InRange(dora.Peak - dora.Resident, 0, lora.Peak - lora.Resident + outputs + 4 * n * 4 * c + 4 * magnitudes);
    }
}
