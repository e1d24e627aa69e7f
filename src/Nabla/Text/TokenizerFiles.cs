using System.Text.Json;

namespace Nabla.Text;

/// <summary>
/// Finds, reads and writes the tokenizer of a model or data directory, whichever of its forms is there:
/// <list type="bullet">
/// <item><c>char_vocab.json</c> — Nabla's character vocabulary (<see cref="CharTokenizer"/>); run and data
/// directories of earlier versions kept it as <c>tokenizer.json</c>, which is still read.</item>
/// <item><c>tokenizer.json</c> — Hugging Face's tokenizers file (GPT-2's byte-level BPE).</item>
/// <item><c>vocab.json</c> + <c>merges.txt</c> (Hugging Face) or <c>encoder.json</c> + <c>vocab.bpe</c> (OpenAI).</item>
/// </list>
/// A <c>tokenizer.json</c> is told apart by its content (a tokenizers file has a "model" object, a character
/// vocabulary a "type": "char"), never by its name alone.
/// </summary>
public static class TokenizerFiles
{
    public const string CharVocabularyName = "char_vocab.json";
    public const string HuggingFaceTokenizerName = HuggingFaceTokenizerFile.FileName;

    /// <summary>Largest tokenizer file read (GPT-2's tokenizer.json is 1.4 MB, the largest published ones ~35 MB).</summary>
    private const long MaxJsonBytes = 128L << 20;

    /// <summary>The tokenizer in <paramref name="directory"/>; an error names the directory and the files it looked for.</summary>
    public static ITokenizer Load(string directory)
    {
        if (!Directory.Exists(directory)) throw new TokenizerFileException($"{directory}: tokenizer directory not found.");
        var charVocabulary = Path.Combine(directory, CharVocabularyName);
        if (File.Exists(charVocabulary)) return CharTokenizer.Load(charVocabulary);
        var tokenizerJson = Path.Combine(directory, HuggingFaceTokenizerName);
        if (File.Exists(tokenizerJson)) return LoadTokenizerJson(tokenizerJson);
        string[] bpeFiles = [Gpt2TokenizerFiles.HuggingFaceVocabularyName, Gpt2TokenizerFiles.HuggingFaceMergesName,
                             Gpt2TokenizerFiles.OpenAIVocabularyName, Gpt2TokenizerFiles.OpenAIMergesName];
        if (bpeFiles.Any(name => File.Exists(Path.Combine(directory, name)))) return Gpt2Tokenizer.FromDirectory(directory);
        throw new TokenizerFileException(
            $"{directory}: no tokenizer; expected {CharVocabularyName} (Nabla's character vocabulary), {HuggingFaceTokenizerName} (Hugging Face's), " +
            "vocab.json + merges.txt (Hugging Face's BPE files) or encoder.json + vocab.bpe (OpenAI's).");
    }

    /// <summary>A file named tokenizer.json: Hugging Face's tokenizers file, or the character vocabulary that earlier
    /// versions of Nabla wrote under that name.</summary>
    public static ITokenizer LoadTokenizerJson(string path)
    {
        using var document = ReadJson(path);
        var root = document.RootElement;
        if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("model", out _)) return Gpt2Tokenizer.FromTokenizerJson(path, root);
        if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "char")
            return CharTokenizer.Load(path);
        throw new TokenizerFileException(
            $"{path}: neither a Hugging Face tokenizers file (it has no \"model\" object) nor a Nabla character vocabulary (it has no \"type\": \"char\").");
    }

    /// <summary>Writes <paramref name="tokenizer"/> into <paramref name="directory"/>: a character vocabulary as
    /// char_vocab.json, a GPT-2 BPE as encoder.json + vocab.bpe.</summary>
    public static void Save(ITokenizer tokenizer, string directory)
    {
        Directory.CreateDirectory(directory);
        switch (tokenizer)
        {
            case CharTokenizer chars: chars.Save(Path.Combine(directory, CharVocabularyName)); break;
            case Gpt2Tokenizer bpe: bpe.Save(directory); break;
            default: throw new ArgumentException($"{tokenizer.GetType().Name} has no file format.", nameof(tokenizer));
        }
    }

    /// <summary>Parses a JSON file of bounded size (a path to a device or a huge file is an error, not a hang).</summary>
    internal static JsonDocument ReadJson(string path)
    {
        if (!File.Exists(path)) throw new TokenizerFileException($"{path}: file not found.");
        byte[] content;
        try { content = IO.BoundedFile.ReadAllBytes(path, MaxJsonBytes, "a tokenizer file"); }
        catch (IO.InputFileException e) { throw new TokenizerFileException(e.Message, e); }
        // JsonDocument accepts invalid UTF-8 inside strings and fails only when one is read: check it all first.
        for (int offset = 0; offset < content.Length;)
        {
            if (System.Text.Rune.DecodeFromUtf8(content.AsSpan(offset), out _, out int length) != System.Buffers.OperationStatus.Done)
                throw TokenizerFileException.At(path, content, offset, $"invalid UTF-8 (byte 0x{content[offset]:X2})");
            offset += length;
        }
        try
        {
            return JsonDocument.Parse(content, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw TokenizerFileException.CorruptJson(path, e); // on one line, like every TokenizerFileException
        }
    }
}
