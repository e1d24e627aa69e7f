using System.Text;
using System.Text.Json;

namespace Nabla.Text;

/// <summary>One line of a merges file: the pair it merges and where it was read (for error messages).</summary>
internal readonly record struct MergeLine(string Left, string Right, int LineNumber);

/// <summary>
/// Reads and writes GPT-2's tokenizer files:
/// <list type="bullet">
/// <item><c>encoder.json</c> (Hugging Face: <c>vocab.json</c>) — one JSON object mapping each token, written
/// in <see cref="ByteLevelAlphabet"/> characters, to its id.</item>
/// <item><c>vocab.bpe</c> (Hugging Face: <c>merges.txt</c>) — a <c>#version: 0.2</c> line, then one merge per
/// line, "left right", highest priority first.</item>
/// </list>
/// Writing reproduces OpenAI's files byte for byte: Python's <c>json.dumps</c> layout (", " and ": "
/// separators, everything outside printable ASCII escaped as lower-case \uXXXX, no final newline) and "\n"
/// line ends.
/// </summary>
internal static class Gpt2TokenizerFiles
{
    public const string OpenAIVocabularyName = "encoder.json";
    public const string OpenAIMergesName = "vocab.bpe";
    public const string HuggingFaceVocabularyName = "vocab.json";
    public const string HuggingFaceMergesName = "merges.txt";
    private const string MergesHeader = "#version: 0.2";

    private static readonly UTF8Encoding Utf8NoBom = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Finds the vocabulary and merges files in <paramref name="directory"/> under either naming.</summary>
    public static (string VocabularyPath, string MergesPath) Locate(string directory)
    {
        if (!Directory.Exists(directory))
            throw new TokenizerFileException($"{directory}: tokenizer directory not found.");
        foreach (var (vocabularyName, mergesName) in new[] { (OpenAIVocabularyName, OpenAIMergesName), (HuggingFaceVocabularyName, HuggingFaceMergesName) })
        {
            string vocabularyPath = Path.Combine(directory, vocabularyName), mergesPath = Path.Combine(directory, mergesName);
            bool hasVocabulary = File.Exists(vocabularyPath), hasMerges = File.Exists(mergesPath);
            if (hasVocabulary && hasMerges) return (vocabularyPath, mergesPath);
            if (hasVocabulary != hasMerges)
                throw new TokenizerFileException(
                    $"{(hasVocabulary ? mergesPath : vocabularyPath)}: file not found (it belongs with {(hasVocabulary ? vocabularyName : mergesName)}, which is present).");
        }
        throw new TokenizerFileException(
            $"{directory}: no GPT-2 tokenizer files; expected {OpenAIVocabularyName} + {OpenAIMergesName} (OpenAI's names) " +
            $"or {HuggingFaceVocabularyName} + {HuggingFaceMergesName} (Hugging Face's names).");
    }

    /// <summary>Reads a token → id JSON object, rejecting anything else with the file and line of the problem.</summary>
    public static Dictionary<string, int> ReadVocabulary(string path)
    {
        ReadOnlySpan<byte> json = ReadAllBytes(path, "a GPT-2 vocabulary (encoder.json / vocab.json)");
        if (json.StartsWith(Encoding.UTF8.Preamble)) json = json[Encoding.UTF8.Preamble.Length..];
        TokenizerFileException.EnsureUtf8(path, json);
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(json);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw TokenizerFileException.At(path, json, reader.TokenStartIndex, "expected a JSON object mapping each token to its id");
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                string token = reader.GetString()!;
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out int id) || id < 0)
                    throw TokenizerFileException.At(path, json, reader.TokenStartIndex, $"the id of token \"{token}\" is not a non-negative integer");
                if (!vocabulary.TryAdd(token, id))
                    throw TokenizerFileException.At(path, json, reader.TokenStartIndex, $"token \"{token}\" appears twice");
            }
            if (reader.Read())
                throw TokenizerFileException.At(path, json, reader.TokenStartIndex, "unexpected content after the vocabulary object");
        }
        catch (JsonException e)
        {
            throw TokenizerFileException.CorruptJson(path, e);
        }
        return vocabulary;
    }

    /// <summary>Reads the merges, in priority order; the optional "#version" first line and blank lines are skipped.</summary>
    public static List<MergeLine> ReadMerges(string path)
    {
        ReadOnlySpan<byte> content = ReadAllBytes(path, "a GPT-2 merges file (vocab.bpe / merges.txt)");
        if (content.StartsWith(Encoding.UTF8.Preamble)) content = content[Encoding.UTF8.Preamble.Length..];
        TokenizerFileException.EnsureUtf8(path, content);
        var text = Encoding.UTF8.GetString(content);
        var merges = new List<MergeLine>();
        int lineNumber = 0;
        using var lines = new StringReader(text);
        while (lines.ReadLine() is { } line)
        {
            lineNumber++;
            if (line.Length == 0 || lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)) continue;
            int space = line.IndexOf(' ');
            if (space <= 0 || space == line.Length - 1 || line.IndexOf(' ', space + 1) >= 0)
                throw new TokenizerFileException(
                    $"{path}:{lineNumber}: expected a merge as two tokens separated by one space, got \"{(line.Length > 80 ? line[..80] + "…" : line)}\".");
            merges.Add(new MergeLine(line[..space], line[(space + 1)..], lineNumber));
        }
        return merges;
    }

    /// <summary>Writes tokens (index = id) in OpenAI's encoder.json layout.</summary>
    public static void WriteVocabulary(string path, IReadOnlyList<string> tokenOfId)
    {
        var json = new StringBuilder(tokenOfId.Count * 16);
        json.Append('{');
        for (int id = 0; id < tokenOfId.Count; id++)
        {
            if (id > 0) json.Append(", ");
            AppendPythonJsonString(json, tokenOfId[id]);
            json.Append(": ").Append(id);
        }
        json.Append('}');
        File.WriteAllText(path, json.ToString(), Utf8NoBom);
    }

    /// <summary>Writes merges in OpenAI's vocab.bpe layout.</summary>
    public static void WriteMerges(string path, IEnumerable<(string Left, string Right)> merges)
    {
        var text = new StringBuilder();
        text.Append(MergesHeader).Append('\n');
        foreach (var (left, right) in merges) text.Append(left).Append(' ').Append(right).Append('\n');
        File.WriteAllText(path, text.ToString(), Utf8NoBom);
    }

    /// <summary>
    /// Python's <c>json.dumps</c> string form with <c>ensure_ascii</c>: short escapes for " \ \b \f \n \r \t,
    /// \u00XX for other control characters, lower-case \uXXXX for every UTF-16 unit outside ' '..'~'.
    /// </summary>
    private static void AppendPythonJsonString(StringBuilder json, string value)
    {
        json.Append('"');
        foreach (char c in value)
        {
            switch (c)
            {
                case '"': json.Append("\\\""); break;
                case '\\': json.Append("\\\\"); break;
                case '\b': json.Append("\\b"); break;
                case '\f': json.Append("\\f"); break;
                case '\n': json.Append("\\n"); break;
                case '\r': json.Append("\\r"); break;
                case '\t': json.Append("\\t"); break;
                case >= ' ' and <= '~': json.Append(c); break;
                default: json.Append("\\u").Append(((int)c).ToString("x4")); break;
            }
        }
        json.Append('"');
    }

    private static byte[] ReadAllBytes(string path, string what)
    {
        if (!File.Exists(path)) throw new TokenizerFileException($"{path}: file not found.");
        try
        {
            return IO.BoundedFile.ReadAllBytes(path, IO.BoundedFile.SmallFileLimit, what);
        }
        catch (IO.InputFileException e)
        {
            throw new TokenizerFileException(e.Message, e);
        }
    }
}
