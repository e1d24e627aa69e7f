using System.Buffers;
using System.Text;

namespace Nabla.Text;

/// <summary>
/// Carries arbitrary bytes through string-based text processing (the idea of Python's "surrogateescape" error
/// handler, PEP 383): decoding maps each byte that is not part of valid UTF-8 to the unpaired low surrogate
/// U+DC80 + (byte − 0x80), which valid UTF-8 can never produce, and encoding maps such a surrogate back to its
/// byte. The pre-tokenizer sees an escaped byte as an "other" character, so pieces split as they would around
/// any symbol.
/// </summary>
internal static class SurrogateEscape
{
    private const char FirstEscape = '\uDC80';

    /// <summary>Decodes UTF-8, escaping the bytes of invalid or truncated sequences one by one.</summary>
    public static string Decode(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder(bytes.Length);
        Span<char> pair = stackalloc char[2];
        while (!bytes.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(bytes, out Rune rune, out int consumed) == OperationStatus.Done)
            {
                text.Append(pair[..rune.EncodeToUtf16(pair)]);
                bytes = bytes[consumed..];
            }
            else
            {
                // Only the first byte is escaped: the rest of an invalid sequence are continuation bytes, which
                // are invalid on their own and so are escaped in turn, while a byte that starts a valid
                // sequence decodes normally.
                text.Append((char)(FirstEscape + bytes[0] - 0x80));
                bytes = bytes[1..];
            }
        }
        return text.ToString();
    }

    /// <summary>
    /// Encodes <paramref name="text"/> as UTF-8 into <paramref name="destination"/> (at least 3 bytes per char),
    /// turning escapes back into their bytes; returns the number of bytes written.
    /// </summary>
    public static int Encode(ReadOnlySpan<char> text, Span<byte> destination)
    {
        int written = 0;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c < 0x80)
            {
                destination[written++] = (byte)c;
            }
            else if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                written += new Rune(c, text[i + 1]).EncodeToUtf8(destination[written..]);
                i++;
            }
            else if (c is >= FirstEscape and <= '\uDCFF')
            {
                destination[written++] = (byte)(c - FirstEscape + 0x80);
            }
            else
            {
                // Any other unpaired surrogate cannot come from Decode; encode it as U+FFFD like Encoding.UTF8.
                written += (Rune.TryCreate(c, out Rune rune) ? rune : Rune.ReplacementChar).EncodeToUtf8(destination[written..]);
            }
        }
        return written;
    }

    /// <summary>
    /// Replaces each unpaired surrogate of ordinary text with U+FFFD, as <see cref="Encoding.UTF8"/> would when
    /// encoding it, so that no unpaired surrogate is left to be mistaken for an escaped byte. Returns the same
    /// string when there is nothing to replace.
    /// </summary>
    public static string ReplaceUnpairedSurrogates(string text)
    {
        int first = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (first < 0) return text;
        var chars = text.ToCharArray();
        for (int i = first; i < chars.Length; i++)
        {
            if (!char.IsSurrogate(chars[i])) continue;
            if (char.IsHighSurrogate(chars[i]) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1])) i++;
            else chars[i] = '\uFFFD';
        }
        return new string(chars);
    }
}
