using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.Tests.Cli;
using Nabla.Text;

namespace Nabla.Tests.IO;

/// <summary>
/// GGUF against files written by llama.cpp's own Python writer (gguf-py, tests/reference/make_gguf_fixture.py):
/// metadata of every value type, a custom alignment and tensors of each supported type; the tiny GPT-2 of
/// Fixtures/hf_gpt2/base as llama.cpp's converter lays it out in F32, F16, Q8_0 and Q4_0, with the logits and greedy
/// tokens PyTorch computes from the weights as gguf-py decodes them. Nabla's writer must reproduce gguf-py's tensors
/// byte for byte, Q8_0 and Q4_0 blocks included.
/// </summary>
[Collection("Console")]
public sealed class GgufTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nabla-gguf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Fixture(string name) => TestData.Fixture(Path.Combine("gguf", name));

    private static readonly Dictionary<string, Tensor> Expected = SafeTensors.Load(Fixture("expected.safetensors"));

    public static TheoryData<string> Types => new("f32", "f16", "q8_0", "q4_0");

    private static GgmlType TypeOf(string label) => label switch
    {
        "f32" => GgmlType.F32, "f16" => GgmlType.F16, "q8_0" => GgmlType.Q8_0, _ => GgmlType.Q4_0,
    };

    [Fact]
    public void ReadsMetadataOfEveryValueTypeAndTheCustomAlignment()
    {
        var file = GgufFile.Open(Fixture("metadata.gguf"));
        Assert.Equal(3u, file.Version);
        Assert.Equal(64, file.Alignment);
        Assert.Equal(0, file.DataStart % 64);
        Assert.Equal("nabla-test", file["general.architecture"]!.Value);
        Assert.Equal((byte)200, file["test.u8"]!.Value);
        Assert.Equal((sbyte)-100, file["test.i8"]!.Value);
        Assert.Equal((ushort)60000, file["test.u16"]!.Value);
        Assert.Equal((short)-30000, file["test.i16"]!.Value);
        Assert.Equal(4000000000u, file["test.u32"]!.Value);
        Assert.Equal(-2000000000, file["test.i32"]!.Value);
        Assert.Equal(0.15625f, file["test.f32"]!.Value);
        Assert.Equal(18000000000000000000ul, file["test.u64"]!.Value);
        Assert.Equal(-9000000000000000000L, file["test.i64"]!.Value);
        Assert.Equal(-2.5e-300, file["test.f64"]!.Value);
        Assert.Equal(true, file["test.bool"]!.Value);
        Assert.Equal("héllo, GGUF ∇", file["test.string"]!.Value);
        Assert.Equal(["a", "", "ĠThe"], Assert.IsType<string[]>(((GgufArray)file["test.strings"]!.Value).Items));
        var shorts = (GgufArray)file["test.i16s"]!.Value;
        Assert.Equal(GgufValueType.Int16, shorts.ElementType);
        Assert.Equal(new short[] { -1, 2, -3 }, shorts.Items);
        var nested = Assert.IsType<GgufArray[]>(((GgufArray)file["test.nested"]!.Value).Items);
        Assert.Equal(new[] { 1, 2 }, nested[0].Items);
        Assert.Equal(new[] { 3 }, nested[1].Items);
    }

    public static TheoryData<string> TensorCases => new("f32", "f16", "q8_0", "q4_0", "q8_0_edges", "q4_0_edges");

    [Theory]
    [MemberData(nameof(TensorCases))]
    public void DecodesEachTensorTypeAsGgufPyAndEncodesItsBytesExactly(string label)
    {
        var file = GgufFile.Open(Fixture("metadata.gguf"));
        var info = file.Tensor($"tensor_{label}")!;
        Assert.Equal(TypeOf(label.Replace("_edges", "")), info.Type);
        Assert.Equal(0, info.Offset % 64);
        var decoded = Expected[$"meta_{label}_decoded"];
        Assert.Equal(decoded.Shape.ToArray(), info.Shape);
        Assert.Equal(decoded.ToArray(), file.ReadFloat32(info).ToArray());

        // Nabla's writer, given the same source values, must store the same bytes as gguf-py.
        var path = Path.Combine(_dir, "one.gguf");
        new GgufWriter().AddTensor("t", Expected[$"meta_{label}_source"], info.Type).Write(path);
        var written = GgufFile.Open(path);
        Assert.Equal(file.ReadRaw(info), written.ReadRaw(written.Tensor("t")!));
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void LoadsGpt2WithPyTorchLogitsAndGreedyTokens(string label)
    {
        // dequantised: PyTorch's logits are those of the decoded weights in float (the quantised path is below)
        var (model, tokenizer) = Gpt2ModelFiles.Load(Fixture($"gpt2_{label}.gguf"), dequantizeGguf: true);
        var bpe = Assert.IsType<Gpt2Tokenizer>(tokenizer);
        int[] prompt = Expected["prompt_ids"].ToIntArray();
        Assert.Equal(prompt, bpe.Encode("The quick brown fox said: it's 2026, and the lazy dog's reply"));
        Assert.Equal(334, bpe.EndOfTextId);

        var logits = model.Forward(Tensor.FromArray(prompt, 1, prompt.Length), null);
        var expected = Expected[$"logits_{label}"];
        var actual = logits.Reshape(expected.Shape.ToArray()).ToArray();
        var reference = expected.ToArray();
        double worst = reference.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(worst < 2e-4, $"{label}: logits differ from PyTorch's by up to {worst}");

        int[] greedy = Expected[$"greedy_{label}"].ToIntArray();
        var produced = Sampler.Generate(model, prompt, new SamplingOptions { Temperature = 0, MaxNewTokens = greedy.Length }, new Generator(1), bpe.EndOfTextId).ToArray();
        Assert.Equal(greedy, produced);
    }

    [Theory]
    [InlineData("q8_0")]
    [InlineData("q4_0")]
    public void QuantisedFilesLoadQuantisedFromTheirBlockBytesWithTheLogitsOfTheDequantisedPath(string label)
    {
        string path = Fixture($"gpt2_{label}.gguf");
        var (quantized, _) = Gpt2Gguf.Load(path);
        var (dequantized, _) = Gpt2Gguf.Load(path, dequantize: true);
        var file = GgufFile.Open(path);
        var format = label == "q8_0" ? Nabla.Quantization.QuantizationFormat.Q8_0 : Nabla.Quantization.QuantizationFormat.Q4_0;
        // every matrix gguf-py wrote as blocks is held as those very bytes (ggml's block layout is QuantizedMatrix's);
        // matrices whose rows do not split into blocks of 32 gguf-py wrote as F16, and those load as float
        int blockMatrices = 0;
        foreach (var (name, module) in quantized.NamedModules().Where(m => m.Module is Nabla.Quantization.QuantizedLinear or Nabla.NN.Linear))
        {
            var info = file.Tensor(Gpt2Gguf.GgufName(name + ".weight"))!;
            if (info.Type != TypeOf(label)) { Assert.IsType<Nabla.NN.Linear>(module); continue; }
            var weight = Assert.IsType<Nabla.Quantization.QuantizedLinear>(module).Weight;
            Assert.Equal(format, weight.Format);
            Assert.True(file.ReadRaw(info).AsSpan().SequenceEqual(weight.Data), $"{name}: not the file's blocks");
            blockMatrices++;
        }
        Assert.True(blockMatrices > 0, "no layer of the fixture is stored in blocks");
        var embedding = file.Tensor("token_embd.weight")!;
        if (embedding.Type == TypeOf(label))
            Assert.True(file.ReadRaw(embedding).AsSpan().SequenceEqual(Assert.IsType<Nabla.Quantization.QuantizedEmbedding>(quantized.GetSubmodule("wte")).Weight.Data));
        else Assert.IsType<Nabla.NN.Embedding>(quantized.GetSubmodule("wte"));
        Assert.Empty(dequantized.Modules().OfType<Nabla.Quantization.QuantizedLinear>());

        // one token at a time through a KV cache (the float path, blocks dequantised in registers): the dequantised
        // model's logits up to float rounding; the whole prompt at once (8-bit activations, ggml's int8 scheme) close
        int[] prompt = Expected["prompt_ids"].ToIntArray();
        float[] Decode(Gpt2Model model)
        {
            var cache = model.NewCache(1, prompt.Length);
            return prompt.SelectMany(id => Sampler.NextLogits(model, [id], cache)).ToArray();
        }
        float[] Prefill(Gpt2Model model)
        {
            using var _ = Nabla.Autograd.GradMode.NoGrad();
            return model.Forward(Tensor.FromArray(prompt, 1, prompt.Length)).ToArray();
        }
        float MaxDifference(float[] a, float[] b) => a.Zip(b, (x, y) => MathF.Abs(x - y)).Max();
        float decode = MaxDifference(Decode(dequantized), Decode(quantized)), prefill = MaxDifference(Prefill(dequantized), Prefill(quantized));
        Assert.True(decode < 1e-4f, $"{label} decode: logits differ by up to {decode}");
        Assert.True(prefill < 0.1f, $"{label} prefill: logits differ by up to {prefill}");
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void ExportWritesTheTensorsAndMetadataOfLlamaCppsConverter(string label)
    {
        var path = Path.Combine(_dir, $"nabla_{label}.gguf");
        var (exit, _, stderr) = CliRunner.Run("export", "gguf", "--model", TestData.Fixture("hf_gpt2/base"), "--quant", label, "--out", path);
        Assert.True(exit == 0, stderr);
        var ours = GgufFile.Open(path);
        var theirs = GgufFile.Open(Fixture($"gpt2_{label}.gguf"));
        Assert.Equal(theirs.Tensors.Select(t => t.Name).Order(), ours.Tensors.Select(t => t.Name).Order());
        foreach (var reference in theirs.Tensors)
        {
            var tensor = ours.Tensor(reference.Name)!;
            Assert.True(reference.Type == tensor.Type, $"{reference.Name}: {tensor.Type}, gguf-py wrote {reference.Type}");
            Assert.Equal(reference.Dimensions, tensor.Dimensions);
            Assert.True(theirs.ReadRaw(reference).AsSpan().SequenceEqual(ours.ReadRaw(tensor)), $"{label}: tensor {reference.Name} differs from gguf-py's bytes");
        }
        Assert.Equal(theirs.Metadata.Select(kv => kv.Key).Order(), ours.Metadata.Select(kv => kv.Key).Order());
        foreach (var (key, value) in theirs.Metadata.Where(kv => kv.Key != "general.name"))
        {
            var other = ours[key]!;
            Assert.True(value.Type == other.Type, $"{key}: {other.Type}, gguf-py wrote {value.Type}");
            if (value.Value is GgufArray array)
            {
                var otherArray = (GgufArray)other.Value;
                Assert.Equal(array.ElementType, otherArray.ElementType);
                Assert.Equal(array.Items.Cast<object>(), otherArray.Items.Cast<object>());
            }
            else Assert.Equal(value.Value, other.Value);
        }
    }

    [Fact]
    public void GenerateRunsAGgufModelThroughTheCli()
    {
        var (exit, stdout, stderr) = CliRunner.Run("generate", "--model", Fixture("gpt2_q8_0.gguf"), "--prompt",
            "The quick brown fox said: it's 2026, and the lazy dog's reply", "--max-tokens", "24", "--temperature", "0");
        Assert.True(exit == 0, stderr);
        var (_, tokenizer) = Gpt2ModelFiles.Load(Fixture("gpt2_q8_0.gguf"));
        Assert.Equal(tokenizer.Decode(Expected["greedy_q8_0"].ToIntArray()), stdout.TrimEnd('\n'));
    }

    [Fact]
    public void BadFilesAreOneLineErrorsNamingTheFileAndTheKeyOrTensor()
    {
        var valid = File.ReadAllBytes(Fixture("gpt2_f32.gguf"));
        string Error(byte[] bytes)
        {
            var path = Path.Combine(_dir, "bad.gguf");
            File.WriteAllBytes(path, bytes);
            var e = Assert.Throws<CheckpointException>(() => Gpt2Gguf.Load(path));
            Assert.StartsWith(path, e.Message);
            Assert.DoesNotContain('\n', e.Message);
            return e.Message;
        }
        Assert.Contains("truncated", Error(valid[..(valid.Length - 100)]));
        Assert.Contains("not a GGUF file", Error([.. "GGUF"u8.ToArray().Select(b => (byte)(b ^ 1)), .. valid[4..]]));
        Assert.Contains("the header promises", Error([.. valid[..8], .. BitConverter.GetBytes(long.MaxValue), .. valid[16..]]));

        var file = GgufFile.Open(Fixture("gpt2_f32.gguf"));
        var writer = new GgufWriter();
        foreach (var (key, value) in file.Metadata)
            writer.Add(key, key == "gpt2.block_count" ? GgufValue.Of(3u) : value);
        foreach (var tensor in file.Tensors) writer.AddTensor(tensor.Name, file.ReadFloat32(tensor), tensor.Type);
        var path = Path.Combine(_dir, "three-blocks.gguf");
        writer.Write(path);
        var error = Assert.Throws<CheckpointException>(() => Gpt2Gguf.Load(path));
        Assert.Contains("missing tensor 'blk.2.attn_norm.weight'", error.Message);
    }
}
