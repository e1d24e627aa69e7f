using System.Buffers.Binary;
using Nabla.Autograd;
using Nabla.IO;
using Nabla.Models.Gpt2;

namespace Nabla.Tests.Models;

public class Gpt2Tests : IDisposable
{
    private static readonly Gpt2Config Tiny = new() { VocabSize = 67, MaxSequenceLength = 24, Channels = 32, Layers = 2, Heads = 4 };
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nabla-gpt2-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static Tensor Tokens(int seed, int batch, int time) => Tensor.RandInt(new Generator((ulong)seed), 0, Tiny.VocabSize, batch, time);

    private static void AssertSameParameters(Gpt2Model expected, Gpt2Model actual)
    {
        var a = actual.StateDict();
        foreach (var (name, p) in expected.StateDict())
            Assert.True(p.ToArray().SequenceEqual(a[name].ToArray()), $"parameter {name} differs after the round trip");
    }

    [Fact]
    public void IncrementalDecodingWithTheCacheGivesTheFullForwardLogits()
    {
        var model = new Gpt2Model(Tiny, new Generator(1));
        var tokens = Tokens(2, 2, 11);
        using var _ = GradMode.NoGrad();
        var full = model.Forward(tokens).ToArray();
        var cache = model.NewCache(batch: 2, capacity: 16);
        // a 4-token prompt, then one token at a time
        var pieces = new List<float[]> { model.Forward(tokens.Narrow(1, 0, 4).Contiguous(), cache).ToArray() };
        for (int t = 4; t < 11; t++) pieces.Add(model.Forward(tokens.Narrow(1, t, 1).Contiguous(), cache).ToArray());
        Assert.Equal(11, cache.Length);
        int V = Tiny.VocabSize;
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < 11; t++)
            {
                var piece = t < 4 ? pieces[0] : pieces[t - 3];
                int pt = t < 4 ? t : 0, steps = t < 4 ? 4 : 1;
                for (int v = 0; v < V; v++)
                {
                    float expected = full[(b * 11 + t) * V + v], actual = piece[(b * steps + pt) * V + v];
                    Assert.True(Math.Abs(expected - actual) <= 1e-5 * (1 + Math.Abs(expected)), $"b{b} t{t} v{v}: full {expected}, cached {actual}");
                }
            }
    }

    [Fact]
    public void HuggingFaceSafetensorsRoundTrip()
    {
        var model = new Gpt2Model(Tiny, new Generator(3));
        Gpt2Checkpoints.SaveHuggingFace(model, _dir);
        var header = SafeTensors.ReadHeader(Path.Combine(_dir, "model.safetensors")).Tensors.ToDictionary(t => t.Name);
        // Conv1D layout, as in files from the hub: c_attn.weight is (in, out) = (C, 3C)
        Assert.Equal(new[] { 32, 96 }, header["h.0.attn.c_attn.weight"].Shape);
        var loaded = Gpt2Checkpoints.LoadHuggingFace(_dir);
        Assert.Equal(Tiny, loaded.Config);
        AssertSameParameters(model, loaded);
    }

    [Fact]
    public void LoadsHubStyleFilesWithPrefixTiedHeadAndMaskBuffers()
    {
        var model = new Gpt2Model(Tiny, new Generator(4));
        Gpt2Checkpoints.SaveHuggingFace(model, _dir);
        // Rewrite as GPT2LMHeadModel would: "transformer." prefix, lm_head.weight, attn.bias buffers; no config.json.
        var raw = SafeTensors.Load(Path.Combine(_dir, "model.safetensors"));
        var hub = raw.Select(kv => new KeyValuePair<string, Tensor>("transformer." + kv.Key, kv.Value)).ToList();
        hub.Add(new("lm_head.weight", raw["wte.weight"]));
        hub.Add(new("transformer.h.0.attn.bias", Tensor.Ones(1, 1, 24, 24)));
        hub.Add(new("transformer.h.1.attn.masked_bias", Tensor.Scalar(-1e4f)));
        var file = Path.Combine(_dir, "hub", "model.safetensors");
        SafeTensors.Save(file, hub);
        var loaded = Gpt2Checkpoints.LoadHuggingFace(file);
        Assert.Equal(Tiny with { Heads = 1 }, loaded.Config); // no config.json: heads inferred as channels/64
        AssertSameParameters(model, loaded);
    }

    [Fact]
    public void LlmcBinRoundTrip()
    {
        var model = new Gpt2Model(Tiny, new Generator(5));
        var path = Path.Combine(_dir, "model.bin");
        Directory.CreateDirectory(_dir);
        Gpt2Checkpoints.SaveLlmc(model, path);
        long expected = 1024 + 4L * (128 * 32 + 24 * 32 + 2 * (12 * 32 * 32 + 13 * 32) + 2 * 32);
        Assert.Equal(expected, new FileInfo(path).Length);
        AssertSameParameters(model, Gpt2Checkpoints.LoadLlmc(path));
    }

    [Fact]
    public void BadCheckpointsGiveErrorsNamingFileAndTensor()
    {
        var model = new Gpt2Model(Tiny, new Generator(6));
        var path = Path.Combine(_dir, "model.bin");
        Directory.CreateDirectory(_dir);
        Gpt2Checkpoints.SaveLlmc(model, path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^100]);
        var e = Assert.Throws<CheckpointException>(() => Gpt2Checkpoints.LoadLlmc(path));
        Assert.Contains("model.bin", e.Message);
        Assert.Contains("truncated", e.Message);

        BinaryPrimitives.WriteInt32LittleEndian(bytes, 12345);
        File.WriteAllBytes(path, bytes);
        Assert.Contains("not an llm.c GPT-2 checkpoint", Assert.Throws<CheckpointException>(() => Gpt2Checkpoints.LoadLlmc(path)).Message);

        Gpt2Checkpoints.SaveHuggingFace(model, _dir);
        var raw = SafeTensors.Load(Path.Combine(_dir, "model.safetensors"));
        raw.Remove("h.1.mlp.c_fc.bias");
        raw["h.0.ln_1.weight"] = Tensor.Ones(31);
        SafeTensors.Save(Path.Combine(_dir, "model.safetensors"), raw);
        var error = Assert.Throws<CheckpointException>(() => Gpt2Checkpoints.LoadHuggingFace(_dir)).Message;
        Assert.Contains("model.safetensors", error);
        Assert.Contains("missing tensor 'h.1.mlp.c_fc.bias'", error);
        Assert.Contains("'h.0.ln_1.weight': shape [31]", error);
    }
}
