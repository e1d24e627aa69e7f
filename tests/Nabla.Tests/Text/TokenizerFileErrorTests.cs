using System.Text;
using Nabla.Text;

namespace Nabla.Tests.Text;

/// <summary>Missing and malformed tokenizer files fail with a message that names the file and the line.</summary>
public sealed class TokenizerFileErrorTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("nabla-tokenizer-errors").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private string EncoderPath => Path.Combine(directory, "encoder.json");
    private string MergesPath => Path.Combine(directory, "vocab.bpe");

    /// <summary>The 256 byte tokens, then "Ġt", "he", "Ġthe": one JSON entry per line, so entry k is on line k + 2.</summary>
    private static List<string> TinyVocabularyLines()
    {
        var tokens = Enumerable.Range(0, 256).Select(value => ByteLevelAlphabet.ToChar((byte)value).ToString()).Order(StringComparer.Ordinal)
            .Concat(["Ġt", "he", "Ġthe"]).ToList();
        var lines = new List<string> { "{" };
        for (int id = 0; id < tokens.Count; id++)
            lines.Add($"  {System.Text.Json.JsonSerializer.Serialize(tokens[id])}: {id}{(id + 1 < tokens.Count ? "," : "")}");
        lines.Add("}");
        return lines;
    }

    private static readonly string[] TinyMerges = ["#version: 0.2", "Ġ t", "h e", "Ġt he"];

    private void WriteTinyTokenizer(List<string>? vocabularyLines = null, string[]? mergeLines = null)
    {
        File.WriteAllLines(EncoderPath, vocabularyLines ?? TinyVocabularyLines());
        File.WriteAllLines(MergesPath, mergeLines ?? TinyMerges);
    }

    private TokenizerFileException LoadFails() => Assert.Throws<TokenizerFileException>(() => Gpt2Tokenizer.FromDirectory(directory));

    [Fact]
    public void TinyTokenizerLoadsAndMerges()
    {
        WriteTinyTokenizer();
        var tokenizer = Gpt2Tokenizer.FromDirectory(directory);
        Assert.Equal(259, tokenizer.VocabSize);
        Assert.Equal(["Ġthe", "Ġt"], tokenizer.Encode(" the t").Select(tokenizer.TokenOf));
        Assert.Null(tokenizer.EndOfTextId);
        Assert.Throws<InvalidOperationException>(() => tokenizer.Encode("x", allowSpecialTokens: true));
    }

    [Fact]
    public void MissingDirectory()
    {
        string missing = Path.Combine(directory, "nope");
        Assert.Contains(missing, Assert.Throws<TokenizerFileException>(() => Gpt2Tokenizer.FromDirectory(missing)).Message);
    }

    [Fact]
    public void EmptyDirectoryNamesBothConventions()
    {
        string message = LoadFails().Message;
        Assert.Contains("encoder.json + vocab.bpe", message);
        Assert.Contains("vocab.json + merges.txt", message);
    }

    [Fact]
    public void MissingMergesFileIsNamed()
    {
        WriteTinyTokenizer();
        File.Delete(MergesPath);
        Assert.StartsWith($"{MergesPath}: file not found", LoadFails().Message);
    }

    [Fact]
    public void MissingFileGivenExplicitly()
    {
        string missing = Path.Combine(directory, "absent.json");
        var error = Assert.Throws<TokenizerFileException>(() => Gpt2Tokenizer.FromFiles(missing, MergesPath));
        Assert.StartsWith($"{missing}: file not found", error.Message);
    }

    [Fact]
    public void TruncatedJsonNamesFileAndLine()
    {
        var lines = TinyVocabularyLines();
        WriteTinyTokenizer(lines.Take(100).ToList());
        Assert.StartsWith($"{EncoderPath}:", LoadFails().Message);
        Assert.Contains("corrupt JSON", LoadFails().Message);
    }

    [Fact]
    public void SyntaxErrorNamesItsLine()
    {
        var lines = TinyVocabularyLines();
        lines[41] = lines[41].Replace(":", "");
        WriteTinyTokenizer(lines);
        string message = LoadFails().Message;
        Assert.StartsWith($"{EncoderPath}:42: corrupt JSON at byte ", message);
        Assert.DoesNotContain("LineNumber", message);
    }

    [Fact]
    public void NonIntegerIdNamesItsLine()
    {
        var lines = TinyVocabularyLines();
        lines[10] = "  \"x\": \"eight\",";
        WriteTinyTokenizer(lines);
        string message = LoadFails().Message;
        Assert.StartsWith($"{EncoderPath}:11:", message);
        Assert.Contains("\"x\"", message);
    }

    [Fact]
    public void NotAnObject()
    {
        WriteTinyTokenizer(["", "[1, 2, 3]"]);
        Assert.StartsWith($"{EncoderPath}:2: expected a JSON object", LoadFails().Message);
    }

    [Fact]
    public void SharedIdIsRejected()
    {
        var lines = TinyVocabularyLines();
        lines[^2] = lines[^2].Replace("258", "257");
        WriteTinyTokenizer(lines);
        string message = LoadFails().Message;
        Assert.StartsWith(EncoderPath, message);
        Assert.Contains("share id 257", message);
    }

    [Fact]
    public void MissingByteTokenIsNamed()
    {
        var lines = TinyVocabularyLines();
        lines.RemoveAt(1);                                    // "!" (byte 0x21), id 0
        lines = lines.Select(line => line.Replace(": 258", ": 0")).ToList();
        WriteTinyTokenizer(lines);
        string message = LoadFails().Message;
        Assert.StartsWith(EncoderPath, message);
        Assert.Contains("byte 0x21", message);
    }

    [Fact]
    public void MalformedMergeLineNamesFileAndLine()
    {
        WriteTinyTokenizer(mergeLines: ["#version: 0.2", "Ġ t", "h e", "Ġthe", "Ġt he"]);
        string message = LoadFails().Message;
        Assert.StartsWith($"{MergesPath}:4: expected a merge as two tokens", message);
        Assert.Contains("\"Ġthe\"", message);

        WriteTinyTokenizer(mergeLines: ["#version: 0.2", "Ġ t", "h e f"]);
        Assert.StartsWith($"{MergesPath}:3:", LoadFails().Message);
    }

    [Fact]
    public void MergeOfUnknownTokenNamesFileAndLine()
    {
        WriteTinyTokenizer(mergeLines: ["#version: 0.2", "Ġ t", "h e", "Ġt hex"]);
        string message = LoadFails().Message;
        Assert.StartsWith($"{MergesPath}:4: merge \"Ġt hex\" uses \"hex\"", message);
        Assert.Contains(EncoderPath, message);
    }

    [Fact]
    public void MergeWhoseResultIsMissingIsRejected()
    {
        WriteTinyTokenizer(mergeLines: ["#version: 0.2", "Ġ t", "h e", "t h"]);
        Assert.StartsWith($"{MergesPath}:4: merge \"t h\" makes \"th\"", LoadFails().Message);
    }

    [Fact]
    public void RepeatedMergeNamesBothLines()
    {
        WriteTinyTokenizer(mergeLines: ["#version: 0.2", "Ġ t", "h e", "Ġ t"]);
        Assert.Equal($"{MergesPath}:4: merge \"Ġ t\" repeats {MergesPath}:2.", LoadFails().Message);
    }

    [Fact]
    public void WindowsLineEndingsAndMissingVersionLineAreAccepted()
    {
        WriteTinyTokenizer();
        File.WriteAllText(MergesPath, "Ġ t\r\nh e\r\nĠt he\r\n", Encoding.UTF8);
        var tokenizer = Gpt2Tokenizer.FromDirectory(directory);
        Assert.Equal(["Ġthe"], tokenizer.Encode(" the").Select(tokenizer.TokenOf));
    }
}
