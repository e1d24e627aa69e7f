using Nabla.Autograd;
using Nabla.IO;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Optim;
using Nabla.Quantization;
using Nabla.Tests.Kernels;
using Nabla.Tests.NN;
using Nabla.Tests.Ops;
using Xunit.Abstractions;

namespace Nabla.Tests.Quantization;

/// <summary>QLoRA: LoRA adapters over frozen quantised layers. The input gradient through a
/// <see cref="QuantizedLinear"/> is the one a float <see cref="Linear"/> holding the dequantised weight gives (an
/// independent path: the float matmul's autograd), and a tiny GPT-2 with an NF4 base trains its adapters alone.</summary>
[Collection(KernelSettingsCollection.Name)]
public class QLoraTests(ITestOutputHelper output)
{
    public static TheoryData<Isa, QuantizationFormat> Cases()
    {
        var data = new TheoryData<Isa, QuantizationFormat>();
        foreach (var isa in TestIsas.Available)
            foreach (var format in Enum.GetValues<QuantizationFormat>()) data.Add(isa, format);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void QuantisedLinearGivesTheInputGradientOfItsDequantisedFloatTwin(Isa isa, QuantizationFormat format)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(11);
        var floatLinear = new Linear(320, 24, generator: g);
        var quantized = QuantizedLinear.FromLinear(floatLinear, format, doubleQuantizeScales: format == QuantizationFormat.Nf4);
        using (GradMode.NoGrad()) floatLinear.Weight.CopyFrom(quantized.Weight.Dequantize());
        var dy = Tensor.Randn(g, 2, 5, 24);

        var x = Tensor.Randn(g, 2, 5, 320).RequiresGrad_();
        quantized.Forward(x).Mul(dy).Sum().Backward();
        var xFloat = x.Detach().Clone().RequiresGrad_();
        floatLinear.Forward(xFloat).Mul(dy).Sum().Backward();

        Close.Assert(xFloat.Grad!, x.Grad!, 1e-5, $"{isa} {format} grad_x", atol: 1e-5);
        Assert.Empty(quantized.Parameters()); // the weight (and bias) get no gradient: nothing to train there
    }

    private static Gpt2Config TinyConfig => new() { VocabSize = 64, MaxSequenceLength = 32, Channels = 64, Layers = 2, Heads = 2 };
    private static readonly string[] Targets = ["c_attn", "c_proj", "c_fc"];

    [Fact]
    public void TinyGpt2WithAnNf4BaseTrainsOnlyItsAdaptersAndTheAdapterLoadsOntoTheFloatBase()
    {
        var floatModel = new Gpt2Model(TinyConfig, new Generator(21));
        var model = new Gpt2Model(TinyConfig, new Generator(21));
        Gpt2Quantization.Quantize(model, QuantizationFormat.Nf4, doubleQuantizeScales: true);
        var summary = Lora.Apply(model, Targets, rank: 4, alpha: 8, generator: new Generator(22));
        Assert.Equal(8, summary.WrappedModules.Count);
        // the total counts the quantised weights as the float model's parameters
        Assert.Equal(floatModel.ParameterCount + summary.TrainableParameters, summary.TotalParameters);
        Assert.All(Lora.Layers(model), l => Assert.True(l.Layer.HasQuantizedBase));

        var baseBytes = model.Modules().OfType<QuantizedLinear>().Select(q => (q, Bytes: q.Weight.Data.ToArray())).ToList();
        Assert.Equal(8, baseBytes.Count);
        var frozen = model.NamedParameters().Where(p => !p.Name.Contains(".lora_")).Select(p => (p.Name, Values: p.Parameter.ToArray())).ToList();
        var loraBefore = model.NamedParameters().Where(p => p.Name.Contains(".lora_")).Select(p => (p.Name, Values: p.Parameter.ToArray())).ToList();

        // a fixed cycle of tokens: learnable, so the loss falls clearly below its start (ln 64 ≈ 4.16)
        var ids = Tensor.FromArray(Enumerable.Range(0, 4 * 17).Select(i => i * 5 % 13).ToArray(), 4, 17);
        var inputs = ids.Slice(1, 0, 16);
        var targets = ids.Slice(1, 1, 17);
        var optimizer = new AdamW(model.Parameters(), 1e-2f);
        var losses = new List<float>();
        for (int step = 0; step < 30; step++)
        {
            optimizer.ZeroGrad();
            var loss = Gpt2Model.Loss(model.Forward(inputs), targets);
            loss.Backward();
            optimizer.Step();
            losses.Add(loss.Item());
        }
        output.WriteLine($"QLoRA (NF4) loss: {losses[0]:0.000} → {losses[^1]:0.000}");
        Assert.True(losses[^1] < 0.8f * losses[0], $"loss {losses[0]} → {losses[^1]}");

        foreach (var (q, bytes) in baseBytes) Assert.True(q.Weight.Data.SequenceEqual(bytes), "a quantised base weight changed");
        var state = model.StateDict();
        foreach (var (name, values) in frozen) Assert.True(values.SequenceEqual(state[name].ToArray()), $"{name} changed although it is frozen");
        Assert.All(loraBefore, p => Assert.False(p.Values.SequenceEqual(state[p.Name].ToArray()), $"{p.Name} did not train"));

        // the adapter in PEFT's layout, onto the float model the NF4 base was quantised from
        var dir = Directory.CreateTempSubdirectory("nabla-qlora-").FullName;
        try
        {
            Lora.SaveAdapter(model, dir, new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = Targets, FanInFanOut = true });
            model.Eval();
            floatModel.Eval();
            float baseGap, adapterGap, adapterEffect;
            using (GradMode.NoGrad())
            {
                var quantizedLogits = model.Forward(inputs).ToArray();
                var floatBaseLogits = floatModel.Forward(inputs).ToArray();
                Lora.LoadAdapter(floatModel, dir);
                var floatAdaptedLogits = floatModel.Forward(inputs).ToArray();
                Lora.LoadAdapter(new Gpt2Model(TinyConfig, new Generator(21)), dir); // loads cleanly a second time
                foreach (var (_, layer) in Lora.Layers(model)) layer.LoraB.Weight.CopyFrom(Tensor.Zeros(layer.LoraB.Weight.Shape.ToArray()));
                var quantizedBaseLogits = model.Forward(inputs).ToArray();
                baseGap = MaxDifference(floatBaseLogits, quantizedBaseLogits);
                adapterGap = MaxDifference(floatAdaptedLogits, quantizedLogits);
                adapterEffect = MaxDifference(floatAdaptedLogits, floatBaseLogits);
            }
            output.WriteLine($"max |logit difference|: float vs NF4 base {baseGap:0.0000}, with the adapter {adapterGap:0.0000}; the adapter moves the float logits by {adapterEffect:0.000}");
            // the adapter trained on the NF4 base does on the float base what it did there, up to the quantisation
            // error (which the adapter's inputs also carry, hence the margin), and it does far more than that error
            Assert.True(adapterGap < 2 * baseGap + 1e-3f, $"with the adapter the float and NF4 models differ by {adapterGap}, the bases by {baseGap}");
            Assert.True(adapterEffect > 10 * adapterGap, $"the adapter moves the logits by {adapterEffect}, no more than the quantisation error {adapterGap}");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>What a LoRA training step holds at its peak: tensor memory (weights, adapter gradients and AdamW state,
    /// activations: <see cref="BufferPool.PeakLiveBytes"/> above what was live before the model existed) plus the
    /// quantised blocks, which live in pinned arrays rather than tensors. The same model, adapters and batch; the
    /// base in float32 or NF4.</summary>
    [Fact]
    public void AQLoraStepNeedsLessMemoryThanAFloatLoraStep()
    {
        var config = new Gpt2Config { VocabSize = 128, MaxSequenceLength = 16, Channels = 256, Layers = 2, Heads = 4 };
        var ids = Tensor.FromArray(Enumerable.Range(0, 2 * 17).Select(i => i * 5 % 13).ToArray(), 2, 17);
        long PeakOfAStep(bool quantize)
        {
            var (resident, peak, model) = TrainingStepMemory.Measure(() =>
            {
                var built = new Gpt2Model(config, new Generator(31));
                if (quantize) Gpt2Quantization.Quantize(built, QuantizationFormat.Nf4, doubleQuantizeScales: true);
                Lora.Apply(built, Targets, rank: 8, alpha: 16, generator: new Generator(32));
                return built;
            }, ids);
            output.WriteLine($"{(quantize ? "NF4" : "float32")} base: {resident / 1024.0:0} KiB of tensors resident between steps, the step rises {(peak - resident) / 1024.0:0} KiB above that");
            return peak + model.Modules().Sum(m => m switch { QuantizedLinear q => q.Weight.ByteCount, QuantizedEmbedding e => e.Weight.ByteCount, _ => 0 });
        }

        long floatLora = PeakOfAStep(quantize: false), qlora = PeakOfAStep(quantize: true);
        output.WriteLine($"peak memory of a LoRA step (C = 256, 2 layers, r = 8, batch 2×16): float32 base {floatLora / 1024.0:0} KiB, NF4 base (QLoRA) {qlora / 1024.0:0} KiB ({100.0 * qlora / floatLora:0}%)");
        // the base's 4·C·C·3 + 4·C·C + 2·4·C·4·C float bytes per layer shrink to ~0.56 bytes per weight; activations stay
        Assert.True(qlora < 0.6 * floatLora, $"QLoRA step {qlora} bytes, float LoRA step {floatLora}");
    }

    private static float MaxDifference(float[] a, float[] b) => a.Zip(b, (x, y) => MathF.Abs(x - y)).Max();
}
