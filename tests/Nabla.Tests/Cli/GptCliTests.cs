using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Nabla.Models.Gpt2;
using Nabla.Tests.IO;

namespace Nabla.Tests.Cli;

[Collection("Console")]
public class GptCliTests : CliTest
{
    [Fact]
    public void PrepareTrainGenerateAndScoreACharacterModel()
    {
        var text = Path.Combine(TempDir, "text.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog.\n", 60)));
        var data = Path.Combine(TempDir, "data");
        Ok(CliRunner.Run("data", "prepare", "--input", text, "--tokenizer", "char", "--out", data, "--val-fraction", "0.2"));
        Assert.True(File.Exists(Path.Combine(data, "train_000000.bin")) && File.Exists(Path.Combine(data, "val_000000.bin")));

        var run = Path.Combine(TempDir, "run");
        var train = CliRunner.Run("train", "gpt", "--data", data, "--out", run, "--steps", "30", "--layers", "1", "--channels", "32",
            "--heads", "2", "--context", "32", "--seq-len", "16", "--batch-size", "4", "--eval-every", "10", "--lr", "1e-2", "--sample-every", "0");
        Ok(train);
        Assert.Contains("validation loss", train.Out);
        var losses = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.Contains("\"loss\"")).Select(l => double.Parse(Regex.Match(l, "\"loss\":([0-9.eE+-]+)").Groups[1].Value)).ToList();
        Assert.Equal(30, losses.Count);
        Assert.True(losses[^1] < losses[0] * 0.6, $"loss should fall on a repetitive text: {losses[0]} -> {losses[^1]}");
        Assert.True(File.Exists(Path.Combine(run, "loss.png")));

        var gen = CliRunner.Run("generate", "--model", run, "--prompt", "the quick", "--max-tokens", "12", "--temperature", "0");
        Ok(gen);
        Assert.True(gen.Out.TrimEnd('\n').Length == 12, $"12 characters of continuation (and not the prompt) expected: '{gen.Out}'");
        Assert.Matches(@"tokens/s\]", gen.Err);
        Assert.DoesNotContain("tokens/s", gen.Out); // stdout carries only the text

        var again = CliRunner.Run("generate", "--model", run, "--prompt", "the quick", "--max-tokens", "12", "--temperature", "0");
        Assert.Equal(gen.Out, again.Out); // greedy decoding is deterministic
        var stopped = CliRunner.Run("generate", "--model", run, "--prompt", "the", "--max-tokens", "40", "--temperature", "0", "--stop", "fox");
        Ok(stopped);
        Assert.DoesNotContain("fox", stopped.Out);

        var ppl = CliRunner.Run("eval", "perplexity", "--model", run, "--text", text, "--max-tokens", "200", "--stride", "8");
        Ok(ppl);
        Assert.Matches(@"199 tokens scored .* perplexity \d+\.\d+", ppl.Out);

        // resuming a finished run has nothing left to do but must not lose anything
        Ok(CliRunner.Run("train", "gpt", "--out", run, "--resume"));
        Ok(CliRunner.Run("train", "gpt", "--out", run, "--resume", "--zero")); // how the ranks hold the optimizer state is the session's choice
        Assert.Contains("error: --lr: --resume continues the run in", CliRunner.Run("train", "gpt", "--out", run, "--resume", "--lr", "0.1").Err);
        Assert.Contains("already holds a training run", CliRunner.Run("train", "gpt", "--data", data, "--out", run).Err);

        // a damaged checkpoint or configuration is named, not a stack trace
        var checkpoint = Path.Combine(Assert.Single(Directory.GetDirectories(Path.Combine(run, "checkpoints"))), "optimizer.safetensors");
        File.WriteAllBytes(checkpoint, File.ReadAllBytes(checkpoint)[..100]);
        var damaged = CliRunner.Run("train", "gpt", "--out", run, "--resume");
        Assert.Equal(1, damaged.Exit);
        Assert.Contains("optimizer.safetensors", damaged.Err);
        File.WriteAllText(Path.Combine(run, "config.json"), "{ not json");
        var corrupt = CliRunner.Run("train", "gpt", "--out", run, "--resume");
        Assert.Equal(1, corrupt.Exit);
        Assert.Contains("config.json: corrupt run configuration", corrupt.Err);
    }

    [Fact]
    public void TrainedTokenizerFeedsDataPrepare()
    {
        var text = Path.Combine(TempDir, "corpus.txt");
        File.Copy(TestData.File("jargon.txt"), text);
        var vocab = Path.Combine(TempDir, "bpe");
        Ok(CliRunner.Run("data", "train-tokenizer", "--input", text, "--vocab-size", "600", "--out", vocab));
        Assert.True(File.Exists(Path.Combine(vocab, "encoder.json")) && File.Exists(Path.Combine(vocab, "vocab.bpe")));
        var prepared = CliRunner.Run("data", "prepare", "--input", text, "--vocab", vocab, "--out", Path.Combine(TempDir, "shards"));
        Ok(prepared);
        Assert.Contains("vocabulary 600", prepared.Out);
        var ids = CliRunner.Run("tokenize", "--vocab", vocab, "--text", "hacker");
        Assert.Equal("hacker", CliRunner.Run("tokenize", "--vocab", vocab, "--decode", "--text", ids.Out.Trim()).Out.TrimEnd('\n'));
    }

    [Fact]
    public void TokenizeMatchesGpt2AndDecodes()
    {
        var vocab = Path.Combine(TestData.Root, "gpt2");
        TestData.File("gpt2/encoder.json");
        var ids = CliRunner.Run("tokenize", "--vocab", vocab, "--text", "Hello world, it's 2026!");
        Ok(ids);
        Assert.Equal("15496 995 11 340 338 1160 2075 0", ids.Out.Trim());
        var text = CliRunner.Run("tokenize", "--vocab", vocab, "--decode", "--text", "15496 995 11 340 338 1160 2075 0");
        Assert.Equal("Hello world, it's 2026!", text.Out.TrimEnd('\n'));
        Assert.Contains("not a token id", CliRunner.Run("tokenize", "--vocab", vocab, "--decode", "--text", "15496 99999").Err);
    }

    [Fact]
    public void ModelFetchDownloadsChecksAndRunsACheckpointFromALocalServer()
    {
        // A small GPT-2 in Hugging Face's layout, with the real GPT-2 tokenizer files.
        var source = Path.Combine(TempDir, "source");
        Gpt2Checkpoints.SaveHuggingFace(new Gpt2Model(new Gpt2Config { Channels = 32, Layers = 1, Heads = 2, MaxSequenceLength = 64 }, new Generator(1)), source);
        File.Copy(TestData.File("gpt2/encoder.json"), Path.Combine(source, "encoder.json"));
        File.Copy(TestData.File("gpt2/vocab.bpe"), Path.Combine(source, "vocab.bpe"));
        bool corrupt = false;
        using var server = new LocalHttpServer(LocalHttpServer.Files(name =>
        {
            var path = Path.Combine(source, name);
            if (!File.Exists(path)) return null;
            var body = File.ReadAllBytes(path);
            if (corrupt && name == "model.safetensors") body[^1] ^= 0xFF;
            return body;
        }));
        // The manifest pins each file's SHA-256, hashed here from the files as written (not by the downloader).
        var files = new[] { "config.json", "model.safetensors", "encoder.json", "vocab.bpe" };
        var manifest = Path.Combine(TempDir, "manifest.json");
        File.WriteAllText(manifest, "[" + string.Join(",", files.Select(f =>
            $"{{\"name\": \"{f}\", \"url\": \"{server.Url}{f}\", \"sha256\": \"{Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(source, f))))}\"}}")) + "]");
        var cache = Path.Combine(TempDir, "cache");
        var fetch = CliRunner.Run("model", "fetch", "tiny", "--manifest", manifest, "--cache", cache);
        Ok(fetch);
        foreach (var f in files)
            Assert.True(File.Exists(Path.Combine(cache, f)), $"{f} was not downloaded");
        var gen = CliRunner.Run("generate", "--model", cache, "--prompt", "Hello", "--max-tokens", "5", "--temperature", "0");
        Ok(gen);
        Assert.Matches(@"5 generated", gen.Err);

        // A corrupted download is refused, and nothing half-written is left behind.
        corrupt = true;
        var other = Path.Combine(TempDir, "cache2");
        var bad = CliRunner.Run("model", "fetch", "tiny", "--manifest", manifest, "--cache", other);
        Assert.Equal(1, bad.Exit);
        Assert.Contains("SHA-256 mismatch", bad.Err);
        Assert.Contains($"{server.Url}model.safetensors", bad.Err);
        Assert.False(File.Exists(Path.Combine(other, "model.safetensors")));
        Assert.Empty(Directory.GetFiles(other, "*.part", SearchOption.AllDirectories));

        // The official list through a mirror still checks the pinned hashes, which this tiny model cannot match.
        var mirror = CliRunner.Run("model", "fetch", "gpt2", "--base-url", server.Url, "--cache", Path.Combine(TempDir, "cache3"));
        Assert.Equal(1, mirror.Exit);
        Assert.Contains("SHA-256 mismatch", mirror.Err);
    }

    /// <summary>A manifest entry whose name would leave the cache, or that lacks a hash or an http(s) URL, is refused in one
    /// line naming the manifest, before anything is created.</summary>
    [Theory]
    [InlineData("{\"name\": \"../escape\", \"url\": \"http://127.0.0.1:9/x\", \"sha256\": \"" + ZeroHash + "\"}", "not a plain file name")]
    [InlineData("{\"name\": \"/etc/passwd\", \"url\": \"http://127.0.0.1:9/x\", \"sha256\": \"" + ZeroHash + "\"}", "not a plain file name")]
    [InlineData("{\"name\": \"sub/file\", \"url\": \"http://127.0.0.1:9/x\", \"sha256\": \"" + ZeroHash + "\"}", "not a plain file name")]
    [InlineData("{\"name\": \"..\", \"url\": \"http://127.0.0.1:9/x\", \"sha256\": \"" + ZeroHash + "\"}", "not a plain file name")]
    [InlineData("{\"name\": \"model.safetensors\", \"url\": \"http://127.0.0.1:9/m\"}", "has no SHA-256; refusing")]
    [InlineData("{\"name\": \"model.safetensors\", \"url\": \"http://127.0.0.1:9/m\", \"sha256\": \"abc\"}", "is not a SHA-256")]
    [InlineData("{\"name\": \"model.safetensors\", \"url\": \"file:///etc/passwd\", \"sha256\": \"" + ZeroHash + "\"}", "is not an http(s) URL")]
    [InlineData("{\"name\": 5}", "not a manifest")]
    public void ModelFetchManifestEntriesNeedAPlainNameAHashAndAnHttpUrl(string entry, string expected)
    {
        var manifest = Path.Combine(TempDir, "manifest.json");
        File.WriteAllText(manifest, $"[{entry}]");
        var r = CliRunner.Run("model", "fetch", "x", "--manifest", manifest, "--cache", Path.Combine(TempDir, "cache"));
        Assert.Equal(1, r.Exit);
        Assert.Contains(manifest, r.Err);
        Assert.Contains(expected, r.Err);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.False(Directory.Exists(Path.Combine(TempDir, "cache")), "nothing may be created before the manifest is checked");
    }

    private const string ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000";
}

/// <summary>The README's main job, exactly as a user runs it: `nabla train gpt` with no arguments must reach its
/// accuracy target (≥ 95% exact match on held-out problems). About a minute on 2 cores.</summary>
[Collection("Console")]
public class DefaultGptJobTests
{
    [Fact]
    [Trait("Category", "Slow")]
    public void DefaultAdditionJobReachesItsAccuracyTarget()
    {
        var dir = Path.Combine(Path.GetTempPath(), "nabla-default-gpt-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (exit, output, error) = CliRunner.Run("train", "gpt", "--out", dir);
            Assert.True(exit == 0, error);
            var accuracy = double.Parse(Regex.Match(output, @"exact-match accuracy on \d+ held-out problems: (\d+\.\d)%").Groups[1].Value);
            Assert.True(accuracy >= 95, $"accuracy {accuracy}% is below the 95% target\n{output}");
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
