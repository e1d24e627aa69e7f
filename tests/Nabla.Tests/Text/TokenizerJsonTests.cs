using System.Text.Json.Nodes;
using Nabla.Text;

namespace Nabla.Tests.Text;

/// <summary>
/// Hugging Face's tokenizer.json as a tokenizer source. The real GPT-2 vocabulary in Hugging Face's files
/// (gpt2-hf/, written from OpenAI's encoder.json + vocab.bpe by tests/reference/hf_tokenizer_files.py, run by
/// tests/data/fetch-test-data.sh) must tokenize exactly as vocab.json + merges.txt and as OpenAI's files do.
/// </summary>
public sealed class TokenizerJsonTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nabla-tokjson-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly Lazy<Gpt2Tokenizer[]> Gpt2Sources = new(() =>
    [
        Gpt2Tokenizer.FromTokenizerJson(TextTestData.PathOf("gpt2-hf/tokenizer.json")),
        Gpt2Tokenizer.FromTokenizerJson(TextTestData.PathOf("gpt2-hf/tokenizer-string-merges.json")),
        Gpt2Tokenizer.FromFiles(TextTestData.PathOf("gpt2-hf/vocab.json"), TextTestData.PathOf("gpt2-hf/merges.txt")),
    ]);

    private static void AssertAllAgree(string text, bool allowSpecialTokens)
    {
        int[] openAI = TextTestData.Gpt2.Encode(text, allowSpecialTokens);
        foreach (var source in Gpt2Sources.Value)
        {
            int[] ids = source.Encode(text, allowSpecialTokens);
            if (!ids.AsSpan().SequenceEqual(openAI))
            {
                int at = 0;
                while (at < Math.Min(ids.Length, openAI.Length) && ids[at] == openAI[at]) at++;
                Assert.Fail($"token {at} differs: {(at < openAI.Length ? openAI[at] : -1)} from encoder.json + vocab.bpe, {(at < ids.Length ? ids[at] : -1)} from another source ({ids.Length} vs {openAI.Length} tokens).");
            }
        }
    }

    [Fact]
    public void ReferenceIdsFromTokenizerJson()
    {
        var tokenizer = Gpt2Sources.Value[0];
        Assert.Equal([15496, 995, 11, 340, 338, 1160, 2075, 0], tokenizer.Encode("Hello world, it's 2026!"));
        Assert.Equal(50257, tokenizer.VocabSize);
        Assert.Equal(50256, tokenizer.EndOfTextId);
        Assert.Equal([50256], tokenizer.Encode("<|endoftext|>", allowSpecialTokens: true));
    }

    [Fact]
    public void TokenExactWithVocabAndMergesOnTheCorpora()
    {
        string kjv = TextTestData.Kjv;
        AssertAllAgree(kjv[..Math.Min(kjv.Length, 1_000_000)], allowSpecialTokens: false);
        AssertAllAgree(TextTestData.Jargon, allowSpecialTokens: false);
    }

    [Fact]
    public void TokenExactWithVocabAndMergesOnTrickyStrings()
    {
        foreach (var text in Gpt2TokenizerTests.HardCaseTexts)
        {
            AssertAllAgree(text, allowSpecialTokens: false);
            AssertAllAgree(text, allowSpecialTokens: true);
        }
    }

    private string WriteVariant(Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(TestData.Fixture("hf_gpt2/base/tokenizer.json")))!.AsObject();
        edit(json);
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    public static TheoryData<string, string> UnsupportedSettings => new()
    {
        { "model.type=\"WordPiece\"", "model.type is \"WordPiece\"; only \"BPE\"" },
        { "model.dropout=0.1", "model.dropout is 0.1, which is not supported" },
        { "model.continuing_subword_prefix=\"##\"", "model.continuing_subword_prefix is \"##\"" },
        { "model.byte_fallback=true", "model.byte_fallback is true" },
        { "model.ignore_merges=true", "model.ignore_merges is true" },
        { "normalizer={\"type\":\"NFC\"}", "normalizer is {\"type\":\"NFC\"}, which is not supported" },
        { "pre_tokenizer={\"type\":\"Whitespace\"}", "pre_tokenizer is {\"type\":\"Whitespace\"}; only GPT-2's \"ByteLevel\"" },
        { "pre_tokenizer.add_prefix_space=true", "pre_tokenizer.add_prefix_space is true" },
        { "decoder={\"type\":\"WordPiece\"}", "decoder is {\"type\":\"WordPiece\"}" },
        { "model.merges=[\"a\"]", "model.merges[0] is \"a\", expected \"left right\" or [\"left\", \"right\"]" },
        { "model.merges=[[\"a\",\"b\",\"c\"]]", "model.merges[0] is [\"a\",\"b\",\"c\"]" },
        { "model.merges=[\"q z\"]", "model.merges[0]: merge \"q z\" makes \"qz\", which is not in" },
        { "model.vocab={\"a\":-1}", "model.vocab: the id of token \"a\" is not a non-negative integer" },
        { "added_tokens=[{\"id\":3,\"content\":\"<|endoftext|>\"}]", "added_tokens[0] \"<|endoftext|>\" has id 3, but model.vocab gives it 334" },
        { "added_tokens=[{\"id\":3}]", "added_tokens[0] needs a non-negative integer \"id\" and a non-empty \"content\"" },
    };

    [Theory]
    [MemberData(nameof(UnsupportedSettings))]
    public void SettingsThatWouldTokenizeDifferentlyAreRefusedByKey(string setting, string message)
    {
        int equals = setting.IndexOf('=');
        string[] keys = setting[..equals].Split('.');
        var path = WriteVariant(json =>
        {
            var parent = keys.Length == 2 ? json[keys[0]]!.AsObject() : json;
            parent[keys[^1]] = JsonNode.Parse(setting[(equals + 1)..]);
        });
        var error = Assert.Throws<TokenizerFileException>(() => Gpt2Tokenizer.FromTokenizerJson(path)).Message;
        Assert.StartsWith(path + ": ", error);
        Assert.Contains(message, error);
    }

    [Fact]
    public void AnAddedTokenBeyondTheVocabularyExtendsItAndIsSpecial()
    {
        var path = WriteVariant(json => json["added_tokens"]!.AsArray().Add(JsonNode.Parse("{\"id\": 335, \"content\": \"<|pad|>\", \"special\": true}")));
        var tokenizer = Gpt2Tokenizer.FromTokenizerJson(path);
        Assert.Equal(336, tokenizer.VocabSize);
        Assert.Equal(["<|endoftext|>", "<|pad|>"], tokenizer.SpecialTokens);
        int[] ids = tokenizer.Encode("a<|pad|><|endoftext|>b", allowSpecialTokens: true);
        Assert.Equal(335, ids[1]);
        Assert.Equal(334, ids[2]);
        Assert.Equal("a<|pad|><|endoftext|>b", tokenizer.Decode(ids));
        Assert.DoesNotContain(335, tokenizer.Encode("a<|pad|>b")); // ordinary text: not special
    }

    [Fact]
    public void CorruptOrHugeFilesAreNamed()
    {
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,");
        Assert.Contains(path + ":1: corrupt JSON", Assert.Throws<TokenizerFileException>(() => Gpt2Tokenizer.FromTokenizerJson(path)).Message);
        Assert.Contains("/dev/zero: more than 128 MiB", Assert.Throws<TokenizerFileException>(() => Gpt2Tokenizer.FromTokenizerJson("/dev/zero")).Message);
    }
}
