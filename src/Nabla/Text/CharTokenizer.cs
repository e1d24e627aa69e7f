using System.Text;
using System.Text.Json;

namespace Nabla.Text;

/// <summary>
/// Character-level tokenizer, as in char-RNN and nanoGPT's Shakespeare example: one token per Unicode
/// character (code point, so an emoji outside the BMP is one token, not two surrogates), ids in code-point
/// order of the vocabulary. Saved as a small JSON file: <c>{"type": "char", "characters": ["\n", " ", "!", ...]}</c>.
/// </summary>
public sealed class CharTokenizer : ITokenizer
{
    private const string FileType = "char";

    private readonly string[] characterOfId;
    private readonly Dictionary<int, int> idOfCodePoint;
    private readonly int[] idOfAscii = new int[128];

    /// <summary>A tokenizer over <paramref name="characters"/> (each one code point, no repeats), ids in the given order.</summary>
    public CharTokenizer(IEnumerable<string> characters)
    {
        characterOfId = characters.ToArray();
        idOfCodePoint = new Dictionary<int, int>(characterOfId.Length);
        Array.Fill(idOfAscii, -1);
        for (int id = 0; id < characterOfId.Length; id++)
        {
            string character = characterOfId[id];
            if (character is null || Rune.DecodeFromUtf16(character, out Rune rune, out int length) != System.Buffers.OperationStatus.Done || length != character.Length)
                throw new ArgumentException($"vocabulary entry {id} (\"{character}\") is not a single Unicode character.", nameof(characters));
            if (!idOfCodePoint.TryAdd(rune.Value, id))
                throw new ArgumentException($"vocabulary entries {idOfCodePoint[rune.Value]} and {id} are both \"{character}\".", nameof(characters));
            if (rune.IsAscii) idOfAscii[rune.Value] = id;
        }
    }

    /// <summary>The distinct characters of <paramref name="text"/>, sorted by code point, as the vocabulary.</summary>
    public static CharTokenizer FromText(string text)
    {
        var codePoints = new SortedSet<int>();
        for (int i = 0; i < text.Length;)
        {
            codePoints.Add(ReadCodePoint(text, ref i));
        }
        return new CharTokenizer(codePoints.Select(char.ConvertFromUtf32));
    }

    public int VocabSize => characterOfId.Length;

    /// <summary>The vocabulary: the character of each id.</summary>
    public IReadOnlyList<string> Characters => characterOfId;

    /// <summary>One id per character; a character outside the vocabulary is an error that names it and its position.</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            int position = i;
            int codePoint = ReadCodePoint(text, ref i);
            int id = codePoint < 128 ? idOfAscii[codePoint] : idOfCodePoint.GetValueOrDefault(codePoint, -1);
            if (id < 0)
                throw new ArgumentException(
                    $"character '{char.ConvertFromUtf32(codePoint)}' (U+{codePoint:X4}) at position {position} is not in the vocabulary of {VocabSize} characters.",
                    nameof(text));
            ids.Add(id);
        }
        return ids.ToArray();
    }

    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)characterOfId.Length)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is outside the vocabulary [0, {characterOfId.Length}).");
            text.Append(characterOfId[id]);
        }
        return text.ToString();
    }

    /// <summary>Writes the vocabulary as JSON to <paramref name="path"/>.</summary>
    public void Save(string path)
    {
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("type", FileType);
        json.WriteStartArray("characters");
        foreach (string character in characterOfId) json.WriteStringValue(character);
        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>Reads a vocabulary written by <see cref="Save"/>; problems are reported with the file and line.</summary>
    public static CharTokenizer Load(string path)
    {
        if (!File.Exists(path)) throw new TokenizerFileException($"{path}: file not found.");
        byte[] content;
        try { content = IO.BoundedFile.ReadAllBytes(path, IO.BoundedFile.SmallFileLimit, "a character vocabulary"); }
        catch (IO.InputFileException e) { throw new TokenizerFileException(e.Message, e); }
        TokenizerFileException.EnsureUtf8(path, content);
        string? type = null;
        List<string>? characters = null;
        var reader = new Utf8JsonReader(content);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw TokenizerFileException.At(path, content, reader.TokenStartIndex, "expected a JSON object with \"type\" and \"characters\"");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                string property = reader.GetString()!;
                long propertyStart = reader.TokenStartIndex;
                reader.Read();
                if (property == "type" && reader.TokenType == JsonTokenType.String)
                {
                    type = reader.GetString();
                }
                else if (property == "characters" && reader.TokenType == JsonTokenType.StartArray)
                {
                    characters = [];
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (reader.TokenType != JsonTokenType.String)
                            throw TokenizerFileException.At(path, content, reader.TokenStartIndex, $"character {characters.Count} is not a string");
                        characters.Add(reader.GetString()!);
                    }
                }
                else
                {
                    throw TokenizerFileException.At(path, content, propertyStart, $"unexpected property \"{property}\" (or wrong kind of value)");
                }
            }
        }
        catch (JsonException e)
        {
            throw TokenizerFileException.CorruptJson(path, e);
        }
        if (type != FileType) throw new TokenizerFileException($"{path}: \"type\" is \"{type}\", expected \"{FileType}\".");
        if (characters is null) throw new TokenizerFileException($"{path}: no \"characters\" array.");
        try
        {
            return new CharTokenizer(characters);
        }
        catch (ArgumentException e)
        {
            throw new TokenizerFileException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>The code point at <paramref name="index"/>, advancing past it; an unpaired surrogate is an error naming its position.</summary>
    private static int ReadCodePoint(string text, ref int index)
    {
        if (Rune.DecodeFromUtf16(text.AsSpan(index), out Rune rune, out int length) != System.Buffers.OperationStatus.Done)
            throw new ArgumentException($"unpaired surrogate U+{(int)text[index]:X4} at position {index}: the text is not valid UTF-16.", nameof(text));
        index += length;
        return rune.Value;
    }
}
