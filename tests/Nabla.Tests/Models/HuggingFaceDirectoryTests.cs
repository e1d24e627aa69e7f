using System.Text.Json.Nodes;
using Nabla.Autograd;
using Nabla.Bench;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.Tests.Cli;
using Nabla.Text;

namespace Nabla.Tests.Models;

/// <summary>
/// GPT-2 directories laid out as the Hugging Face hub serves them (all seven files), written by
/// tests/reference/make_hf_gpt2_fixture.py with a plain-PyTorch GPT-2: one as GPT2LMHeadModel ("transformer."
/// names, tied lm_head, mask buffers, tokenizer.json with pair merges), one as GPT2Model (no prefix, older
/// string merges). Both must give PyTorch's greedy tokens, through the library and through `nabla generate`.
/// </summary>
[Collection("Console")]
public sealed class HuggingFaceDirectoryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nabla-hfdir-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string> Variants => new("lm_head", "base");

    private static string Fixture(string variant) => TestData.Fixture(Path.Combine("hf_gpt2", variant));

    private static (string Prompt, int[] PromptIds, int[] GreedyIds, string GreedyText) Expected(string variant)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture(variant), "expected.json")))!;
        return (json["prompt"]!.GetValue<string>(), json["prompt_ids"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray(),
            json["greedy_ids"]!.AsArray().Select(n => n!.GetValue<int>()).ToArray(), json["greedy_text"]!.GetValue<string>());
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void HubLayoutGivesPyTorchGreedyTokensThroughTheLibrary(string variant)
    {
        var dir = Fixture(variant);
        foreach (var file in new[] { "config.json", "generation_config.json", "merges.txt", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.json" })
            Assert.True(File.Exists(Path.Combine(dir, file)), $"the fixture lacks the hub file {file}");
        var expected = Expected(variant);
        var (model, tokenizer) = Gpt2ModelFiles.Load(dir);
        var bpe = Assert.IsType<Gpt2Tokenizer>(tokenizer);
        Assert.Equal(expected.PromptIds, bpe.Encode(expected.Prompt));
        var greedy = Sampler.Generate(model, expected.PromptIds, new SamplingOptions { Temperature = 0, MaxNewTokens = expected.GreedyIds.Length },
            new Generator(1), bpe.EndOfTextId).ToArray();
        Assert.Equal(expected.GreedyIds, greedy);
        Assert.Equal(expected.GreedyText, bpe.Decode(greedy));
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void HubLayoutGivesPyTorchGreedyTokensThroughTheCli(string variant)
    {
        var expected = Expected(variant);
        var (exit, stdout, stderr) = CliRunner.Run("generate", "--model", Fixture(variant), "--prompt", expected.Prompt,
            "--max-tokens", expected.GreedyIds.Length.ToString(), "--temperature", "0");
        Assert.True(exit == 0, stderr);
        Assert.Equal(expected.GreedyText, stdout.TrimEnd('\n'));
        Assert.Contains($"{expected.GreedyIds.Length} generated", stderr);
    }

    [Fact]
    public void TheCliTokenizesAndPreparesDataWithTokenizerJsonAlone()
    {
        var vocab = Path.Combine(_dir, "gpt2-tokenizer-json");
        Directory.CreateDirectory(vocab);
        File.Copy(Nabla.Tests.Text.TextTestData.PathOf("gpt2-hf/tokenizer.json"), Path.Combine(vocab, "tokenizer.json"));
        var ids = CliRunner.Run("tokenize", "--vocab", vocab, "--text", "Hello world, it's 2026!<|endoftext|>");
        Assert.True(ids.Exit == 0, ids.Err);
        Assert.Equal("15496 995 11 340 338 1160 2075 0 50256", ids.Out.Trim());

        var text = Path.Combine(_dir, "text.txt");
        File.WriteAllText(text, "In the beginning God created the heaven and the earth.");
        var data = Path.Combine(_dir, "data");
        var prepared = CliRunner.Run("data", "prepare", "--input", text, "--vocab", vocab, "--out", data, "--val-fraction", "0");
        Assert.True(prepared.Exit == 0, prepared.Err);
        Assert.Contains("vocabulary 50257", prepared.Out);
    }

    [Fact]
    public void TokenizerJsonAgreesWithVocabAndMergesOfTheSameDirectory()
    {
        foreach (var variant in new[] { "lm_head", "base" })
        {
            var dir = Fixture(variant);
            var fromJson = Gpt2Tokenizer.FromTokenizerJson(Path.Combine(dir, "tokenizer.json"));
            var fromFiles = Gpt2Tokenizer.FromFiles(Path.Combine(dir, "vocab.json"), Path.Combine(dir, "merges.txt"));
            Assert.Equal(fromFiles.VocabSize, fromJson.VocabSize);
            Assert.Equal(fromFiles.Merges, fromJson.Merges);
            var text = "The quick brown fox said: it's 2026, and the lazy dog's reply. Foxes and dogs!\n<|endoftext|>";
            Assert.Equal(fromFiles.Encode(text, allowSpecialTokens: true), fromJson.Encode(text, allowSpecialTokens: true));
            Assert.Equal(["<|endoftext|>"], fromJson.SpecialTokens);
        }
    }

    private string CopyOf(string variant)
    {
        var copy = Path.Combine(_dir, variant);
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(Fixture(variant))) File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        return copy;
    }

    private static string LoadError(string dir) => Assert.Throws<CheckpointException>(() => Gpt2ModelFiles.Load(dir)).Message;

    [Fact]
    public void MissingAndUnexpectedTensorsAreNamedWithTheFile()
    {
        var dir = CopyOf("lm_head");
        var weights = Path.Combine(dir, "model.safetensors");
        var tensors = SafeTensors.Load(weights);
        tensors.Remove("transformer.h.1.mlp.c_fc.bias");
        tensors["transformer.h.0.extra.weight"] = Tensor.Ones(3);
        tensors["transformer.h.0.attn.c_attn.weight"] = Tensor.Ones(144, 48); // (out, in): not Conv1D's layout
        SafeTensors.Save(weights, tensors);
        var error = LoadError(dir);
        Assert.Contains("model.safetensors", error);
        Assert.Contains("missing tensor 'h.1.mlp.c_fc.bias'", error);
        Assert.Contains("unexpected tensor 'transformer.h.0.extra.weight'", error);
        Assert.Contains("'transformer.h.0.attn.c_attn.weight': shape [144, 48] in the file, [48, 144] expected (Conv1D: in, out)", error);
    }

    [Fact]
    public void AnUntiedHeadOrMixedPrefixesAreRefused()
    {
        var dir = CopyOf("lm_head");
        var weights = Path.Combine(dir, "model.safetensors");
        var tensors = SafeTensors.Load(weights);
        using (GradMode.NoGrad()) tensors["lm_head.weight"] = tensors["lm_head.weight"].Mul(2f);
        SafeTensors.Save(weights, tensors);
        Assert.Contains("'lm_head.weight' differs from the token embedding", LoadError(dir));

        tensors.Remove("lm_head.weight");
        tensors["ln_f.weight"] = tensors["transformer.ln_f.weight"];
        tensors.Remove("transformer.ln_f.weight");
        SafeTensors.Save(weights, tensors);
        Assert.Contains("unexpected tensor 'ln_f.weight': the other names carry GPT2LMHeadModel's 'transformer.' prefix", LoadError(dir));
    }

    [Fact]
    public void DirectoryErrorsNameTheDirectoryAndWhatIsMissing()
    {
        var empty = Path.Combine(_dir, "empty");
        Directory.CreateDirectory(empty);
        var error = LoadError(empty);
        Assert.Contains(empty, error);
        Assert.Contains("no model.safetensors", error);

        var dir = CopyOf("base");
        foreach (var file in new[] { "tokenizer.json", "vocab.json", "merges.txt" }) File.Delete(Path.Combine(dir, file));
        var noTokenizer = Assert.Throws<TokenizerFileException>(() => Gpt2ModelFiles.Load(dir)).Message;
        Assert.Contains($"{dir}: no tokenizer; expected char_vocab.json", noTokenizer);
        Assert.Contains("tokenizer.json", noTokenizer);

        File.Copy(Path.Combine(Fixture("base"), "vocab.json"), Path.Combine(dir, "vocab.json"));
        Assert.Contains("merges.txt: file not found", Assert.Throws<TokenizerFileException>(() => Gpt2ModelFiles.Load(dir)).Message);
    }

    [Fact]
    public void ARunDirectoryOfThePreviousVersionStillLoadsItsCharacterVocabulary()
    {
        // Before char_vocab.json, runs kept the character vocabulary as tokenizer.json: {"type": "char", ...}.
        var model = Path.Combine(_dir, "run", Gpt2ModelFiles.RunModelFolder);
        Gpt2Checkpoints.SaveHuggingFace(new Gpt2Model(new Gpt2Config { VocabSize = 5, MaxSequenceLength = 8, Channels = 8, Layers = 1, Heads = 2 }, new Generator(1)), model);
        File.WriteAllText(Path.Combine(model, "tokenizer.json"), "{\n  \"type\": \"char\",\n  \"characters\": [\"\\n\", \" \", \"a\", \"b\", \"c\"]\n}");
        var (_, tokenizer) = Gpt2ModelFiles.Load(Path.Combine(_dir, "run"));
        Assert.Equal([2, 1, 4], Assert.IsType<CharTokenizer>(tokenizer).Encode("a c"));

        // New runs write char_vocab.json, which is read first.
        TokenizerFiles.Save(new CharTokenizer(["x", "y"]), model);
        Assert.True(File.Exists(Path.Combine(model, TokenizerFiles.CharVocabularyName)));
        Assert.Equal(2, TokenizerFiles.Load(model).VocabSize);
    }

    [Fact]
    public void ATokenizerJsonThatIsNeitherKindSaysWhatItIsNot()
    {
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), "{\"version\": \"1.0\", \"added_tokens\": []}");
        var error = Assert.Throws<TokenizerFileException>(() => TokenizerFiles.Load(_dir)).Message;
        Assert.Contains("tokenizer.json: neither a Hugging Face tokenizers file (it has no \"model\" object) nor a Nabla character vocabulary (it has no \"type\": \"char\")", error);
    }

    [Theory]
    [InlineData("n_layer", "1000000000", "n_layer = 1000000000 is out of range")]
    [InlineData("n_embd", "-4", "n_embd = -4 is out of range")]
    [InlineData("vocab_size", "2147483647", "vocab_size = 2147483647 is out of range")]
    [InlineData("n_positions", "0", "n_positions = 0 is out of range")]
    [InlineData("n_head", "5", "n_embd = 48 does not split into n_head = 5 heads")]
    [InlineData("n_layer", "1e40", "corrupt config at n_layer")]
    [InlineData("n_layer", "\"two\"", "corrupt config at n_layer")]
    [InlineData("layer_norm_epsilon", "-1", "layer_norm_epsilon = -1")]
    [InlineData("activation_function", "\"relu\"", "activation_function is \"relu\"; only \"gelu_new\" or \"gelu_pytorch_tanh\" (GPT-2's) is supported")]
    [InlineData("n_inner", "100", "n_inner is 100; only null or 4 × n_embd")]
    [InlineData("model_type", "\"llama\"", "model_type is \"llama\"")]
    [InlineData("scale_attn_by_inverse_layer_idx", "true", "scale_attn_by_inverse_layer_idx is true")]
    public void AHostileOrForeignConfigIsRefusedBeforeAnythingIsAllocated(string key, string value, string message)
    {
        var dir = CopyOf("base");
        var config = Path.Combine(dir, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        json[key] = JsonNode.Parse(value);
        File.WriteAllText(config, json.ToJsonString());
        var error = "";
        double seconds = CpuClock.ThreadSeconds(() => error = LoadError(dir));
        Assert.True(seconds < 2, $"{seconds:F1} s of CPU time to refuse the config");
        Assert.StartsWith(config + ": ", error);
        Assert.Contains(message, error);
    }

    [Fact]
    public void AConfigFarLargerThanTheWeightsIsRefusedBeforeItsModelIsAllocated()
    {
        var dir = CopyOf("base");
        var config = Path.Combine(dir, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        json["n_layer"] = 100;   // 315M parameters: within every limit, 1.3 GB to allocate
        json["n_embd"] = 512;
        json["n_head"] = 8;
        File.WriteAllText(config, json.ToJsonString());
        var error = "";
        double seconds = CpuClock.ThreadSeconds(() => error = LoadError(dir));
        Assert.True(seconds < 2, $"{seconds:F1} s of CPU time to refuse the config");
        Assert.Contains("model.safetensors: holds ", error);
        Assert.Contains($"but {config} describes a GPT-2 of 315,", error);
    }

    [Fact]
    public void InvalidUtf8InTokenizerJsonIsNamedWithItsLine()
    {
        var dir = CopyOf("base");
        var path = Path.Combine(dir, "tokenizer.json");
        var bytes = File.ReadAllBytes(path);
        int at = Array.IndexOf(bytes, (byte)'"', 200);
        bytes[at + 1] = 0xC3; // a lead byte followed by an ASCII byte
        File.WriteAllBytes(path, bytes);
        int line = bytes[..at].Count(b => b == '\n') + 1;
        var error = Assert.Throws<TokenizerFileException>(() => TokenizerFiles.Load(dir)).Message;
        Assert.StartsWith($"{path}:{line}: invalid UTF-8 (byte 0xC3)", error);
    }

    [Fact]
    public void SizesWithinEachLimitButTooManyParametersInTotalAreRefused()
    {
        var config = Path.Combine(_dir, "config.json");
        File.WriteAllText(config, "{\"n_layer\": 1024, \"n_embd\": 65536, \"n_head\": 64, \"vocab_size\": 50257, \"n_positions\": 1024}");
        var error = "";
        double seconds = CpuClock.ThreadSeconds(() => error = Assert.Throws<CheckpointException>(() => Gpt2Config.Load(config)).Message);
        Assert.True(seconds < 2, $"{seconds:F1} s of CPU time to refuse the config");
        Assert.StartsWith(config + ": ", error);
        Assert.Contains("parameters, more than the limit", error);
    }
}
