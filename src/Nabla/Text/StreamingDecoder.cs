using System.Text;

namespace Nabla.Text;

/// <summary>
/// Turns token ids into text as they are generated. A byte-level BPE token can end in the middle of a UTF-8
/// character; its bytes are held back until the character is complete, so no replacement character is printed
/// for a character split across tokens.
/// </summary>
public sealed class StreamingDecoder(ITokenizer tokenizer)
{
    private readonly Decoder _utf8 = Encoding.UTF8.GetDecoder();

    /// <summary>The text that token <paramref name="id"/> completes (possibly empty).</summary>
    public string Next(int id)
    {
        if (tokenizer is not Gpt2Tokenizer bpe) return tokenizer.Decode([id]);
        var bytes = bpe.DecodeBytes([id]);
        var chars = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
        int n = _utf8.GetChars(bytes, 0, bytes.Length, chars, 0, flush: false);
        return new string(chars, 0, n);
    }
}
