using System.Text.Json;

namespace Nabla.Text;

/// <summary>
/// Reads Hugging Face's <c>tokenizer.json</c> (the tokenizers library's serialization) when it describes
/// GPT-2's kind of tokenizer: <c>model.type = "BPE"</c> with <c>model.vocab</c> (token → id) and
/// <c>model.merges</c> (priority order; each "left right" in older files, ["left", "right"] in newer ones),
/// <c>added_tokens</c> (special tokens such as &lt;|endoftext|&gt;), no normalizer, and the byte-level
/// pre-tokenizer and decoder. Anything that would tokenize differently (another model type, dropout, a
/// prefix space, a normalizer, word prefixes or suffixes) is refused with the key that says so, rather than
/// encoded wrongly.
/// </summary>
internal static class HuggingFaceTokenizerFile
{
    public const string FileName = "tokenizer.json";

    /// <summary>One entry of <c>added_tokens</c>.</summary>
    public readonly record struct AddedToken(string Content, int Id);

    public static (Dictionary<string, int> Vocabulary, List<MergeLine> Merges, List<AddedToken> AddedTokens) Read(string path, JsonElement root)
    {
        TokenizerFileException Problem(string what) => new($"{path}: {what}.");
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw Problem("not a Hugging Face tokenizers file (no \"model\" object)");

        if (model.TryGetProperty("type", out var type) && !(type.ValueKind == JsonValueKind.String && type.GetString() == "BPE"))
            throw Problem($"model.type is {Short(type)}; only \"BPE\" (GPT-2's byte-level BPE) is supported");
        RequireAbsentOrNull(model, "dropout", "model.dropout", "it makes BPE random", Problem);
        RequireEmpty(model, "continuing_subword_prefix", Problem);
        RequireEmpty(model, "end_of_word_suffix", Problem);
        RequireAbsentOrFalse(model, "byte_fallback", Problem);
        RequireAbsentOrFalse(model, "ignore_merges", Problem);
        RequireAbsentOrNull(root, "normalizer", "normalizer", "it changes the text before GPT-2's byte-level BPE sees it", Problem);
        RequireByteLevel(root, "pre_tokenizer", nullAllowed: false, Problem);
        RequireByteLevel(root, "decoder", nullAllowed: true, Problem);
        RequireByteLevel(root, "post_processor", nullAllowed: true, Problem);

        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw Problem("model.vocab is missing or not an object mapping each token to its id");
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocab.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw Problem($"model.vocab: the id of token \"{entry.Name}\" is not a non-negative integer");
            if (!vocabulary.TryAdd(entry.Name, id)) throw Problem($"model.vocab: token \"{entry.Name}\" appears twice");
        }

        if (!model.TryGetProperty("merges", out var mergesElement) || mergesElement.ValueKind != JsonValueKind.Array)
            throw Problem("model.merges is missing or not an array");
        var merges = new List<MergeLine>(mergesElement.GetArrayLength());
        int index = 0;
        foreach (var merge in mergesElement.EnumerateArray())
        {
            merges.Add(ReadMerge(merge, index) ?? throw Problem(
                $"model.merges[{index}] is {merge.GetRawText()}, expected \"left right\" or [\"left\", \"right\"]"));
            index++;
        }

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var addedTokens) && addedTokens.ValueKind != JsonValueKind.Null)
        {
            if (addedTokens.ValueKind != JsonValueKind.Array) throw Problem("added_tokens is not an array");
            index = 0;
            foreach (var token in addedTokens.EnumerateArray())
            {
                if (token.ValueKind != JsonValueKind.Object
                    || !token.TryGetProperty("id", out var id) || id.ValueKind != JsonValueKind.Number || !id.TryGetInt32(out int tokenId) || tokenId < 0
                    || !token.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String || content.GetString() is not { Length: > 0 } text)
                    throw Problem($"added_tokens[{index}] needs a non-negative integer \"id\" and a non-empty \"content\" string");
                added.Add(new AddedToken(text, tokenId));
                index++;
            }
        }
        return (vocabulary, merges, added);
    }

    /// <summary>A merge in either of the two forms tokenizers has written; null when it is neither.</summary>
    private static MergeLine? ReadMerge(JsonElement merge, int index)
    {
        if (merge.ValueKind == JsonValueKind.String)
        {
            string line = merge.GetString()!;
            int space = line.IndexOf(' ');
            if (space <= 0 || space == line.Length - 1 || line.IndexOf(' ', space + 1) >= 0) return null;
            return new MergeLine(line[..space], line[(space + 1)..], index + 1);
        }
        if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
            && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String
            && merge[0].GetString() is { Length: > 0 } left && merge[1].GetString() is { Length: > 0 } right)
            return new MergeLine(left, right, index + 1);
        return null;
    }

    private static void RequireAbsentOrNull(JsonElement parent, string key, string label, string why, Func<string, TokenizerFileException> problem)
    {
        if (parent.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null)
            throw problem($"{label} is {Short(value)}, which is not supported ({why})");
    }

    private static void RequireEmpty(JsonElement model, string key, Func<string, TokenizerFileException> problem)
    {
        if (model.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null && !(value.ValueKind == JsonValueKind.String && value.GetString() == ""))
            throw problem($"model.{key} is {Short(value)}; GPT-2's byte-level BPE has none");
    }

    private static void RequireAbsentOrFalse(JsonElement model, string key, Func<string, TokenizerFileException> problem)
    {
        if (model.TryGetProperty(key, out var value) && value.ValueKind is not (JsonValueKind.False or JsonValueKind.Null))
            throw problem($"model.{key} is {Short(value)}, which GPT-2's byte-level BPE does not use (not supported)");
    }

    /// <summary>The component must be GPT-2's ByteLevel one: no prefix space, GPT-2's split pattern.</summary>
    private static void RequireByteLevel(JsonElement root, string key, bool nullAllowed, Func<string, TokenizerFileException> problem)
    {
        if (!root.TryGetProperty(key, out var component) || component.ValueKind == JsonValueKind.Null)
        {
            if (nullAllowed) return;
            throw problem($"{key} is missing; GPT-2's tokenizer needs the ByteLevel pre-tokenizer");
        }
        if (component.ValueKind != JsonValueKind.Object || !component.TryGetProperty("type", out var type)
            || type.ValueKind != JsonValueKind.String || type.GetString() != "ByteLevel")
            throw problem($"{key} is {Short(component)}; only GPT-2's \"ByteLevel\" is supported");
        // add_prefix_space and use_regex shape the pre-tokens; for the decoder and post-processor they do not
        // change the ids or the text, so only the pre-tokenizer's settings matter.
        if (key != "pre_tokenizer") return;
        if (component.TryGetProperty("add_prefix_space", out var prefix) && prefix.ValueKind == JsonValueKind.True)
            throw problem("pre_tokenizer.add_prefix_space is true, which GPT-2 does not do (not supported)");
        if (component.TryGetProperty("use_regex", out var regex) && regex.ValueKind == JsonValueKind.False)
            throw problem("pre_tokenizer.use_regex is false; GPT-2 splits with its pattern (not supported)");
    }

    /// <summary>A value as it stands in the file, on one line and cut short for a message.</summary>
    private static string Short(JsonElement value)
    {
        string text = string.Join(' ', value.GetRawText().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return text.Length <= 80 ? text : text[..77] + "...";
    }
}
