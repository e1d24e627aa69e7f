using Nabla.Autograd;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Quantization;
using Nabla.Tests.Cli;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Quantization;

/// <summary>Quantised GPT-2 end to end against tests/reference/make_quant_fixtures.py: the quantised checkpoints it
/// writes (in the layout Gpt2Quantization documents) load here and give the logits PyTorch computes from their
/// dequantised weights; quantising here writes the same bytes; the logits stay near the float model's.</summary>
[Collection("Console")]
public class QuantizedGpt2Tests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nabla-quant-" + Guid.NewGuid().ToString("N"));
    private static ParityFixture Expected => ParityFixture.Get("quant/expected.safetensors");
    private static string Fixture(string name) => TestData.Fixture(Path.Combine("quant", name));

    public QuantizedGpt2Tests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    public static TheoryData<string> Formats => new() { "q8_0", "q4_0", "nf4" };

    private static int[] Ids => Expected["ids"].ToIntArray();

    /// <summary>Logits (T, V) of the whole sequence in one forward pass (T = 20 rows: the int8 path for q8_0/q4_0).</summary>
    private static float[] Prefill(Gpt2Model model)
    {
        using var _ = GradMode.NoGrad();
        return model.Forward(Tensor.FromArray(Ids, 1, Ids.Length)).ToArray();
    }

    /// <summary>Logits (T, V) fed one token at a time through a KV cache (one row: the float path).</summary>
    private static float[] Decode(Gpt2Model model)
    {
        var cache = model.NewCache(1, Ids.Length);
        return Ids.SelectMany(id => Sampler.NextLogits(model, [id], cache)).ToArray();
    }

    private static float MaxDifference(float[] a, float[] b) => a.Zip(b, (x, y) => MathF.Abs(x - y)).Max();

    [Theory]
    [MemberData(nameof(Formats))]
    public void PythonWrittenCheckpointsGiveTheLogitsOfTheirDequantisedWeights(string format)
    {
        var (model, _) = Gpt2ModelFiles.Load(Fixture(format));
        var expected = Expected[$"logits.{format}"].ToArray();
        // one row at a time, weights dequantised in registers: float32 against PyTorch's float64 forward
        Assert.True(MaxDifference(expected, Decode(model)) < 1e-3f, $"decode: {MaxDifference(expected, Decode(model))}");
        // 20 rows at once: the Q8_0/Q4_0 layers and the Q8_0 head quantise the activations to 8 bits too (ggml's
        // int8 scheme), which moves these logits (spread over about ±4) by a few hundredths
        float prefill = MaxDifference(expected, Prefill(model));
        Assert.True(prefill < 0.1f, $"prefill: {prefill}");
    }

    /// <summary>Quality per format on this random model (logits spread over about ±4): the largest logit error of
    /// the quantised model's prefill against the float model is at most the bound, and at most 0.1 over the error
    /// the dequantised weights alone cause in PyTorch (the rest is the 8-bit activations of the int8 path).</summary>
    [Theory]
    [InlineData("q8_0", 0.15f)]
    [InlineData("q4_0", 1.0f)]
    [InlineData("nf4", 1.0f)]
    public void QuantisedLogitsStayNearTheFloatModel(string format, float bound)
    {
        var (model, _) = Gpt2ModelFiles.Load(Fixture(format));
        var fp32 = Expected["logits.fp32"].ToArray();
        float weightsAlone = MaxDifference(fp32, Expected[$"logits.{format}"].ToArray());
        float ours = MaxDifference(fp32, Prefill(model));
        Assert.True(ours <= bound && ours <= weightsAlone + 0.1f, $"{format}: {ours} (dequantised weights alone: {weightsAlone})");
        var (floatModel, _) = Gpt2ModelFiles.Load(Fixture("fp32"));
        Assert.True(MaxDifference(fp32, Prefill(floatModel)) < 1e-3f);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void QuantisingHereWritesTheBytesThePythonScriptWrote(string format)
    {
        var (model, tokenizer) = Gpt2ModelFiles.Load(Fixture("fp32"));
        QuantizationFormats.TryParse(format, out var f);
        Gpt2Quantization.Quantize(model, f, doubleQuantizeScales: f == QuantizationFormat.Nf4);
        Gpt2ModelFiles.Save(model, tokenizer, _dir);
        string ours = Path.Combine(_dir, Gpt2Checkpoints.WeightsFileName), theirs = Path.Combine(Fixture(format), Gpt2Checkpoints.WeightsFileName);
        var (ourInfos, ourMeta, ourStart) = SafeTensors.ReadHeader(ours);
        var (theirInfos, theirMeta, theirStart) = SafeTensors.ReadHeader(theirs);
        Assert.Equal(theirInfos.Select(i => i.Name).Order(), ourInfos.Select(i => i.Name).Order());
        Assert.Equal(theirMeta.Where(m => m.Key.StartsWith("nabla.")).OrderBy(m => m.Key), ourMeta.Where(m => m.Key.StartsWith("nabla.")).OrderBy(m => m.Key));
        foreach (var info in theirInfos)
        {
            var mine = ourInfos.Single(i => i.Name == info.Name);
            Assert.Equal(info.DType, mine.DType);
            Assert.Equal(info.Shape, mine.Shape);
            Assert.True(SafeTensors.ReadBytes(theirs, info, theirStart).AsSpan().SequenceEqual(SafeTensors.ReadBytes(ours, mine, ourStart)), $"tensor '{info.Name}' differs");
        }
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void SaveAndLoadGiveTheSameModel(string format)
    {
        var (model, tokenizer) = Gpt2ModelFiles.Load(Fixture("fp32"));
        QuantizationFormats.TryParse(format, out var f);
        Gpt2Quantization.Quantize(model, f);
        Gpt2ModelFiles.Save(model, tokenizer, _dir);
        var (loaded, _) = Gpt2ModelFiles.Load(_dir);
        Assert.Equal(f, Gpt2Quantization.FormatOf(loaded));
        Assert.Equal(Prefill(model), Prefill(loaded));
        Assert.Equal(Decode(model), Decode(loaded));
    }

    [Fact]
    public void TheLastPositionsLogitsAreTheFullForwardsLastRow()
    {
        var (model, _) = Gpt2ModelFiles.Load(Fixture("fp32"));
        using var _ = GradMode.NoGrad();
        var tokens = Tensor.FromArray(Ids, 1, Ids.Length);
        var last = model.Forward(tokens, model.NewCache(1, Ids.Length), lastPositionOnly: true);
        Assert.Equal([1, 1, model.Config.VocabSize], last.Shape.ToArray());
        var all = model.Forward(tokens).ToArray();
        var expected = all.AsSpan(all.Length - model.Config.VocabSize).ToArray();
        Assert.True(MaxDifference(expected, last.ToArray()) < 1e-5f);
    }

    /// <summary>Once warm, a decoding step takes no new memory from the system and leaves none behind: every
    /// tensor it makes goes back to the pool, and the logits land in the caller's buffer.</summary>
    [Theory]
    [InlineData("fp32")]
    [InlineData("q4_0")]
    [InlineData("nf4")]
    public void DecodingAllocatesNothingPerToken(string format)
    {
        var (model, _) = Gpt2ModelFiles.Load(Fixture(format));
        var cache = model.NewCache(1, 40);
        var logits = new float[model.Config.VocabSize];
        Sampler.NextLogits(model, Ids, cache, logits);
        for (int i = 0; i < 3; i++) Sampler.NextLogits(model, [Sampler.ArgMax(logits)], cache, logits); // warm-up
        long osAllocations = BufferPool.OsAllocations, live = BufferPool.LiveBytes;
        for (int i = 0; i < 10; i++)
        {
            Sampler.NextLogits(model, [Sampler.ArgMax(logits)], cache, logits);
            Assert.Equal(live, BufferPool.LiveBytes);
        }
        Assert.Equal(osAllocations, BufferPool.OsAllocations);
    }

    [Fact]
    public void QuantizeGenerateAndScoreFromTheCommandLine()
    {
        var output = Path.Combine(_dir, "nf4");
        var quantize = CliRunner.Run("quantize", "--model", Fixture("fp32"), "--bits", "4", "--format", "nf4", "--double-quant", "--out", output);
        Assert.True(quantize.Exit == 0, quantize.Err);
        Assert.Contains("nf4", quantize.Out);
        var generate = CliRunner.Run("generate", "--model", output, "--prompt", "The quick", "--max-tokens", "8", "--temperature", "0");
        Assert.True(generate.Exit == 0, generate.Err);
        var text = Path.Combine(_dir, "text.txt");
        File.WriteAllText(text, "the quick brown fox jumps over the lazy dog. The dog said: it's a fine day.");
        var perplexity = CliRunner.Run("eval", "perplexity", "--model", output, "--text", text);
        Assert.True(perplexity.Exit == 0, perplexity.Err);
        Assert.Contains("perplexity", perplexity.Out);
    }

    [Fact]
    public void BadQuantizeRequestsAreOneLineNamingTheProblem()
    {
        var mismatch = CliRunner.Run("quantize", "--model", Fixture("fp32"), "--bits", "8", "--format", "q4_0", "--out", _dir);
        Assert.NotEqual(0, mismatch.Exit);
        Assert.Contains("--bits is 8", mismatch.Err);
        // hf_gpt2/base has 48 channels: rows of 48 do not fill NF4's 64-wide blocks
        var narrow = CliRunner.Run("quantize", "--model", TestData.Fixture("hf_gpt2/base"), "--bits", "4", "--format", "nf4", "--out", _dir);
        Assert.NotEqual(0, narrow.Exit);
        Assert.Contains("h.0.attn.c_attn", narrow.Err);
        Assert.Single(narrow.Err.Trim().Split('\n'));
    }

    [Fact]
    public void ACorruptQuantisedTensorIsNamed()
    {
        var (model, tokenizer) = Gpt2ModelFiles.Load(Fixture("fp32"));
        Gpt2Quantization.Quantize(model, QuantizationFormat.Q4_0);
        var matrix = ((QuantizedLinear)model.GetSubmodule("h.1.mlp.c_fc")).Weight;
        // a checkpoint whose h.1.mlp.c_fc.weight has one row too few
        model.SetSubmodule("h.1.mlp.c_fc", new QuantizedLinear(QuantizedMatrix.FromBlocks(matrix.Format, matrix.Rows - 1, matrix.Columns,
            matrix.Data.AsSpan(0, (matrix.Rows - 1) * matrix.RowBytes)), null));
        Gpt2ModelFiles.Save(model, tokenizer, _dir);
        var e = Assert.Throws<CheckpointException>(() => Gpt2ModelFiles.Load(_dir));
        Assert.Contains("h.1.mlp.c_fc.weight", e.Message);
    }
}
