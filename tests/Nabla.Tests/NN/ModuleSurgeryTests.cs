using Nabla.Autograd;
using Nabla.IO;
using Nabla.Models;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Optim;
using Nabla.Tests.Ops;

namespace Nabla.Tests.NN;

/// <summary>Getting, replacing and freezing sub-modules by dotted name, as PyTorch users do for LoRA and fine-tuning.</summary>
public class ModuleSurgeryTests
{
    private static readonly Gpt2Config Tiny = new() { VocabSize = 23, MaxSequenceLength = 12, Channels = 16, Layers = 3, Heads = 2 };
    private const int Rank = 2;

    /// <summary>A LoRA-style wrapper: the wrapped Linear plus a low-rank update x·Aᵀ·Bᵀ.</summary>
    private sealed class LowRankLinear : Module
    {
        public Tensor A { get; }
        public Tensor B { get; }
        public int Calls { get; private set; }

        public LowRankLinear(Linear wrapped, Tensor a, Tensor b)
        {
            RegisterModule("base", wrapped);
            A = RegisterParameter("lora_a", a); // (r, in)
            B = RegisterParameter("lora_b", b); // (out, r)
        }

        public override Tensor Forward(Tensor x)
        {
            Calls++;
            return ForwardChild("base", x).Add(F.Linear(F.Linear(x, A), B));
        }
    }

    /// <summary>Adds a fixed vector to what the wrapped module computes.</summary>
    private sealed class OffsetWrapper : Module
    {
        private readonly Tensor _offset;
        public int Calls { get; private set; }

        public OffsetWrapper(Module wrapped, Tensor offset)
        {
            RegisterModule("wrapped", wrapped);
            _offset = offset;
        }

        public override Tensor Forward(Tensor x)
        {
            Calls++;
            return ForwardChild("wrapped", x).Add(_offset);
        }
    }

    private static Gpt2Model NewGpt2(ulong seed) => new(Tiny, new Generator(seed));

    private static Gpt2Model Copy(Gpt2Model model)
    {
        var copy = NewGpt2(999);
        copy.LoadStateDict(model.StateDict());
        return copy;
    }

    private static Tensor Tokens() => Tensor.FromArray(new[] { 3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3 }, 2, 8);

    /// <summary>B·A by plain loops: the weight update the wrapper is equivalent to.</summary>
    private static float[] LowRankProduct(Tensor b, Tensor a)
    {
        int rows = b.Size(0), r = b.Size(1), cols = a.Size(1);
        var bv = b.ToArray();
        var av = a.ToArray();
        var product = new float[rows * cols];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
            {
                double sum = 0;
                for (int k = 0; k < r; k++) sum += (double)bv[i * r + k] * av[k * cols + j];
                product[i * cols + j] = (float)sum;
            }
        return product;
    }

    [Fact]
    public void WrappingEveryCAttnChangesTheLogitsAsFoldingTheUpdateIntoTheWeightsDoes()
    {
        var model = NewGpt2(1);
        var folded = Copy(model);
        var before = model.Forward(Tokens()).ToArray();

        var wrappers = new List<LowRankLinear>();
        for (int l = 0; l < Tiny.Layers; l++)
        {
            string path = $"h.{l}.attn.c_attn";
            var a = Tensor.Normal(new Generator((ulong)(10 + l)), 0, 0.3f, Rank, Tiny.Channels);
            var b = Tensor.Normal(new Generator((ulong)(20 + l)), 0, 0.3f, 3 * Tiny.Channels, Rank);
            var wrapper = new LowRankLinear((Linear)model.GetSubmodule(path), a, b);
            model.SetSubmodule(path, wrapper);
            Assert.Same(wrapper, model.GetSubmodule(path));
            wrappers.Add(wrapper);

            // the independently built equivalent: W + B·A in the copy's c_attn
            var weight = ((Linear)folded.GetSubmodule(path)).Weight;
            var updated = weight.ToArray().Zip(LowRankProduct(b, a), (w, d) => w + d).ToArray();
            using (GradMode.NoGrad()) weight.CopyFrom(Tensor.FromArray(updated, weight.Shape.ToArray()));
        }

        var after = model.Forward(Tokens()).ToArray();
        var expected = folded.Forward(Tokens()).ToArray();
        Assert.All(wrappers, w => Assert.Equal(1, w.Calls));
        Assert.True(before.Zip(after, (x, y) => Math.Abs(x - y)).Max() > 0.05f, "the wrappers changed nothing");
        Close.Assert(expected, after, 1e-5, "wrapped logits");

        // the KV-cache path runs the wrappers too
        var cached = model.Forward(Tokens(), model.NewCache(2, Tiny.MaxSequenceLength)).ToArray();
        Assert.All(wrappers, w => Assert.Equal(2, w.Calls));
        Close.Assert(expected, cached, 1e-5, "wrapped logits with a KV cache");

        // the wrapper's parameters join the model's, under the path it was put at
        var names = model.NamedParameters().Select(p => p.Name).ToHashSet();
        Assert.Contains("h.2.attn.c_attn.base.weight", names);
        Assert.Contains("h.2.attn.c_attn.lora_a", names);
        Assert.DoesNotContain("h.2.attn.c_attn.weight", names);
    }

    [Fact]
    public void WrappingEveryCAttnOfAPyTorchTrainedGpt2ShiftsTheLogitsAsTheSameOffsetInItsBiasDoes()
    {
        var fixture = SafeTensors.Load(TestData.Fixture("gpt2_tiny.safetensors"), out var meta);
        var weights = fixture.Where(kv => kv.Key.StartsWith("input/")).ToDictionary(kv => kv.Key["input/".Length..], kv => kv.Value);
        var config = Gpt2Config.FromJson(meta["config"], "fixture");
        var model = new Gpt2Model(config);
        model.LoadStateDict(weights);
        var folded = new Gpt2Model(config);
        folded.LoadStateDict(weights);
        var tokens = fixture["tokens"];

        var wrappers = new List<OffsetWrapper>();
        for (int l = 0; l < config.Layers; l++)
        {
            string path = $"h.{l}.attn.c_attn";
            var offset = Tensor.Normal(new Generator((ulong)(30 + l)), 0, 0.5f, 3 * config.Channels);
            var wrapper = new OffsetWrapper(model.GetSubmodule(path), offset);
            model.SetSubmodule(path, wrapper);
            wrappers.Add(wrapper);
            var bias = ((Linear)folded.GetSubmodule(path)).Bias!;
            var shifted = bias.ToArray().Zip(offset.ToArray(), (b, o) => b + o).ToArray();
            using (GradMode.NoGrad()) bias.CopyFrom(Tensor.FromArray(shifted, bias.Shape.ToArray()));
        }

        var logits = model.Forward(tokens);
        Assert.All(wrappers, w => Assert.Equal(1, w.Calls));
        Assert.True(fixture["logits"].ToArray().Zip(logits.ToArray(), (x, y) => Math.Abs(x - y)).Max() > 0.05f, "the wrappers changed nothing");
        Close.Assert(folded.Forward(tokens), logits, 1e-5, "logits with offsets");
    }

    [Fact]
    public void AFrozenGpt2BodyWithLowRankAdaptersTrainsOnlyTheAdapters()
    {
        var model = NewGpt2(2);
        model.RequiresGrad_(false);
        Assert.Equal(0, model.TrainableParameterCount);
        for (int l = 0; l < Tiny.Layers; l++)
        {
            string path = $"h.{l}.attn.c_attn";
            model.SetSubmodule(path, new LowRankLinear((Linear)model.GetSubmodule(path),
                Tensor.Normal(new Generator((ulong)l), 0, 0.1f, Rank, Tiny.Channels), Tensor.Zeros(3 * Tiny.Channels, Rank)));
        }
        Assert.Equal(Tiny.Layers * Rank * (Tiny.Channels + 3 * Tiny.Channels), model.TrainableParameterCount);

        var frozen = model.NamedParameters().Where(p => !p.Name.Contains("lora")).ToDictionary(p => p.Name, p => p.Parameter.ToArray());
        var optimizer = new AdamW(model.Parameters(), 1e-2f, weightDecay: 0.1f);
        var targets = Tensor.FromArray(Enumerable.Range(0, 16).Select(i => i % Tiny.VocabSize).ToArray(), 2, 8);
        for (int step = 0; step < 3; step++)
        {
            optimizer.ZeroGrad();
            Gpt2Model.Loss(model.Forward(Tokens()), targets).Backward();
            optimizer.Step();
        }
        foreach (var (name, p) in model.NamedParameters())
        {
            if (frozen.TryGetValue(name, out var original)) Assert.Equal(original, p.ToArray()); // bit for bit
            else Assert.Contains(p.ToArray(), v => v != 0); // lora_b started at zero
        }
    }

    [Fact]
    public void AFrozenMlpBodyTrainsOnlyItsHead()
    {
        foreach (var kind in new[] { "sgd", "adamw", "rmsprop" })
        {
            var model = new Mlp(4, [8], 3, generator: new Generator(3));
            Assert.Equal(4 * 8 + 8 + 8 * 3 + 3, model.ParameterCount);
            model.RequiresGrad_(false).GetSubmodule("layers.2").RequiresGrad_(true);
            Assert.Equal(4 * 8 + 8 + 8 * 3 + 3, model.ParameterCount);
            Assert.Equal(8 * 3 + 3, model.TrainableParameterCount);

            var body = model.GetSubmodule("layers.0").Parameters().Select(p => p.ToArray()).ToList();
            var head = model.GetSubmodule("layers.2").Parameters().Select(p => p.ToArray()).ToList();
            Optimizer optimizer = kind switch
            {
                "sgd" => new SGD(model.Parameters(), 0.1f, momentum: 0.9f, weightDecay: 0.1f),
                "adamw" => new AdamW(model.Parameters(), 0.1f, weightDecay: 0.1f),
                _ => new RMSProp(model.Parameters(), 0.1f, weightDecay: 0.1f),
            };
            var x = Tensor.Randn(new Generator(4), 5, 4);
            var y = Tensor.FromArray(new[] { 0, 1, 2, 1, 0 });
            for (int step = 0; step < 3; step++)
            {
                optimizer.ZeroGrad();
                F.CrossEntropy(model.Forward(x), y).Backward();
                optimizer.Step();
            }
            var bodyAfter = model.GetSubmodule("layers.0").Parameters().Select(p => p.ToArray()).ToList();
            var headAfter = model.GetSubmodule("layers.2").Parameters().Select(p => p.ToArray()).ToList();
            for (int i = 0; i < body.Count; i++) Assert.Equal(body[i], bodyAfter[i]);
            for (int i = 0; i < head.Count; i++) Assert.NotEqual(head[i], headAfter[i]);
        }
    }

    [Fact]
    public void AnOptimizerOverFrozenParametersSavesAndResumesExactly()
    {
        Tensor[] Params() => [Tensor.Randn(new Generator(1), 6).RequiresGrad_(false), Tensor.Randn(new Generator(2), 2, 3).RequiresGrad_()];
        void Step(Optimizer opt, Tensor[] ps, int s)
        {
            ps[1].Grad = Tensor.Randn(new Generator((ulong)(100 + s)), 2, 3);
            opt.Step();
        }
        var straight = Params();
        var a = new AdamW(straight, 1e-2f);
        for (int s = 0; s < 4; s++) Step(a, straight, s);

        var first = Params();
        var b = new AdamW(first, 1e-2f);
        for (int s = 0; s < 2; s++) Step(b, first, s);
        var saved = b.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        Assert.DoesNotContain(saved.Keys, k => k.StartsWith("0."));
        var resumed = first.Select(p => p.Detach().Clone().RequiresGrad_(p.RequiresGrad)).ToArray();
        var c = new AdamW(resumed, 1e-2f);
        c.LoadStateDict(saved);
        for (int s = 2; s < 4; s++) Step(c, resumed, s);
        for (int i = 0; i < straight.Length; i++) Assert.Equal(straight[i].ToArray(), resumed[i].ToArray());
        Assert.Equal(Tensor.Randn(new Generator(1), 6).ToArray(), resumed[0].ToArray());
    }

    [Fact]
    public void ModulesAndChildrenFollowTheRegisteredTree()
    {
        var model = NewGpt2(3);
        Assert.Equal(["wte", "wpe", "h", "ln_f"], model.NamedChildren().Select(c => c.Name));
        Assert.Equal(model.NamedChildren().Select(c => c.Module), model.Children());
        // the model, wte, wpe, h, ln_f, and per block: itself, ln_1, attn, c_attn, c_proj, ln_2, mlp, c_fc, c_proj
        Assert.Equal(5 + 9 * Tiny.Layers, model.Modules().Count());
        Assert.Equal(model.NamedModules().Select(m => m.Module), model.Modules());
        Assert.Contains(("h.1.mlp.c_fc", model.GetSubmodule("h.1.mlp.c_fc")), model.NamedModules());
        Assert.Same(model, model.GetSubmodule(""));
        Assert.Same(model.Blocks[1].Attn.CAttn, model.GetSubmodule("h.1.attn.c_attn"));

        // GPT-2's count, by its formula (the head is tied to wte, so counted once)
        long C = Tiny.Channels;
        long expected = Tiny.VocabSize * C + Tiny.MaxSequenceLength * C + Tiny.Layers * (12 * C * C + 13 * C) + 2 * C;
        Assert.Equal(expected, model.ParameterCount);
        Assert.Equal(expected, model.TrainableParameterCount);
    }

    [Fact]
    public void ReplacingAStepOfASequentialRunsTheNewStep()
    {
        var model = new Mlp(3, [4], 2, generator: new Generator(5));
        model.SetSubmodule("layers.1", new Tanh());
        var x = Tensor.Randn(new Generator(6), 5, 3);
        var first = (Linear)model.GetSubmodule("layers.0");
        var last = (Linear)model.GetSubmodule("layers.2");
        var expected = F.Linear(F.Linear(x, first.Weight, first.Bias).Tanh(), last.Weight, last.Bias).ToArray();
        Assert.Equal(expected, model.Forward(x).ToArray());
        Assert.IsType<Tanh>(model.Layers[1]);
    }

    [Fact]
    public void MissingPathsAreNamedWithWhatExists()
    {
        var model = NewGpt2(4);
        var e = Assert.Throws<ArgumentException>(() => model.GetSubmodule("h.7.attn"));
        Assert.Equal("Gpt2Model has no sub-module 'h.7.attn': 'h' (Sequential) has no child '7' (its children: 0, 1, 2).", e.Message);

        e = Assert.Throws<ArgumentException>(() => model.SetSubmodule("h.0.attn.q_proj", new Linear(16, 16)));
        Assert.Equal("Gpt2Model has no sub-module 'h.0.attn.q_proj': 'h.0.attn' (SelfAttention) has no child 'q_proj' (its children: c_attn, c_proj).", e.Message);

        e = Assert.Throws<ArgumentException>(() => model.SetSubmodule("lm_head", new Linear(16, 23)));
        Assert.Equal("Gpt2Model has no sub-module 'lm_head': the Gpt2Model itself has no child 'lm_head' (its children: wte, wpe, h, ln_f).", e.Message);

        e = Assert.Throws<ArgumentException>(() => model.GetSubmodule("h.0.attn.c_attn.weight"));
        Assert.Contains("'h.0.attn.c_attn' (Linear) has no child 'weight' (it has no sub-modules)", e.Message);
    }

    [Fact]
    public void AReplacementOfTheWrongKindIsNamedByItsPathWhenTheModelNeedsThatKind()
    {
        var model = NewGpt2(5);
        model.SetSubmodule("h.1.attn", new Linear(16, 16));
        // without a cache any module of the right shapes will do; with one, the block needs real attention
        Assert.Equal(new[] { 2, 8, 23 }, model.Forward(Tokens()).Shape.ToArray());
        var e = Assert.Throws<InvalidOperationException>(() => model.Forward(Tokens(), model.NewCache(2, 12)));
        Assert.Equal("Sub-module 'h.1.attn' is a Linear, but TransformerBlock needs a SelfAttention there.", e.Message);
    }
}
