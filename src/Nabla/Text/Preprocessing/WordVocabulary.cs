using System.Text.Json;
using Nabla.IO;

namespace Nabla.Text.Preprocessing;

/// <summary>
/// A word-level vocabulary: id 0 is <c>&lt;pad&gt;</c>, id 1 is <c>&lt;unk&gt;</c> (every word not in it), then the
/// words by descending frequency, ties in ordinal order (as torchtext's build_vocab_from_iterator sorts them).
/// Saved as JSON: <c>{"type": "words", "tokens": ["&lt;pad&gt;", "&lt;unk&gt;", "the", ...]}</c>.
/// </summary>
public sealed class WordVocabulary
{
    public const string Pad = "<pad>";
    public const string Unknown = "<unk>";
    public const int PadId = 0;
    public const int UnknownId = 1;
    private const string FileType = "words";

    private readonly string[] tokens;
    private readonly Dictionary<string, int> idOf;

    private WordVocabulary(string[] tokens)
    {
        this.tokens = tokens;
        idOf = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (int id = 0; id < tokens.Length; id++)
            if (!idOf.TryAdd(tokens[id], id)) throw new ArgumentException($"vocabulary entries {idOf[tokens[id]]} and {id} are both \"{tokens[id]}\".");
    }

    /// <summary>
    /// The words of <paramref name="documents"/> that occur at least <paramref name="minFrequency"/> times, the most
    /// frequent first, cut so that the vocabulary (with &lt;pad&gt; and &lt;unk&gt;) has at most <paramref name="maxSize"/> entries.
    /// </summary>
    public static WordVocabulary Build(IEnumerable<IEnumerable<string>> documents, int minFrequency = 1, int maxSize = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(minFrequency, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSize, 2);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var document in documents)
            foreach (var word in document)
                counts[word] = counts.GetValueOrDefault(word) + 1;
        counts.Remove(Pad);
        counts.Remove(Unknown);
        var words = counts.Where(kv => kv.Value >= minFrequency)
            .OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal)
            .Take(maxSize - 2).Select(kv => kv.Key);
        return new WordVocabulary([Pad, Unknown, .. words]);
    }

    public int Count => tokens.Length;

    public string this[int id] => tokens[id];

    /// <summary>The id of <paramref name="word"/>, <see cref="UnknownId"/> when it is not in the vocabulary.</summary>
    public int IdOf(string word) => idOf.TryGetValue(word, out int id) ? id : UnknownId;

    public int[] Encode(IEnumerable<string> words) => words.Select(IdOf).ToArray();

    /// <summary>The words of <paramref name="ids"/>, padding left out.</summary>
    public IEnumerable<string> Decode(IEnumerable<int> ids) => ids.Where(id => id != PadId).Select(id => tokens[id]);

    public void Save(string path) =>
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(new VocabularyFile(FileType, tokens)));

    public static WordVocabulary Load(string path)
    {
        VocabularyFile? file;
        try
        {
            file = JsonSerializer.Deserialize<VocabularyFile>(BoundedFile.ReadAllText(path, BoundedFile.SmallFileLimit, "a word vocabulary"));
        }
        catch (JsonException e)
        {
            throw new InputFileException($"{path}: not a word vocabulary ({ErrorText.Json(e)}).", e);
        }
        if (file?.type != FileType || file.tokens is not { Length: >= 2 } || file.tokens[PadId] != Pad || file.tokens[UnknownId] != Unknown)
            throw new InputFileException($"{path}: not a word vocabulary (expected {{\"type\": \"{FileType}\", \"tokens\": [\"{Pad}\", \"{Unknown}\", ...]}}).");
        try
        {
            return new WordVocabulary(file.tokens);
        }
        catch (ArgumentException e)
        {
            throw new InputFileException($"{path}: {e.Message}", e);
        }
    }

    // Lower-case member names: they are the JSON keys.
    private sealed record VocabularyFile(string type, string[] tokens);
}
