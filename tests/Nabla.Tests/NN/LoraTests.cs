using System.Text.Json.Nodes;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Optim;
using Nabla.Training;
using Nabla.Tests.Ops;

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
            Lora.SaveAdapter(model, dir, config);
            var python = SafeTensors.Load(Path.Combine(PythonAdapter, Lora.WeightsFile));
            var ours = SafeTensors.Load(Path.Combine(dir, Lora.WeightsFile));
            Assert.Equal(python.Keys.Order(), ours.Keys.Order());
            foreach (var (name, tensor) in python)
                Assert.True(tensor.ToArray().SequenceEqual(ours[name].ToArray()) && tensor.Shape.SequenceEqual(ours[name].Shape), $"tensor {name} differs");

            var pythonConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(PythonAdapter, Lora.ConfigFile)))!.AsObject();
            var ourConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, Lora.ConfigFile)))!.AsObject();
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
    [InlineData("use_dora", "true", "DoRA adapters are not supported")]
    [InlineData("r", "0", "r is 0")]
    [InlineData("target_modules", "\".*c_attn\"", "a regex string is not supported")]
    [InlineData("peft_type", "\"IA3\"", "only LORA adapters")]
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
