namespace Nabla.Text;

/// <summary>
/// GPT-2's reversible map from the 256 byte values to 256 printable characters, so that byte-level BPE tokens
/// can be stored as ordinary strings in encoder.json and vocab.bpe (where a space would break the
/// "left right" merge lines and control bytes would be invisible).
/// Bytes that are already visible Latin-1 characters — '!'..'~', '¡'..'¬', '®'..'ÿ' — stand for themselves;
/// the other 68 (controls, space, DEL, NBSP, soft hyphen) are given U+0100, U+0101, ... in increasing byte
/// order. Hence space (0x20) is 'Ġ' (U+0120) and newline (0x0A) is 'Ċ' (U+010A).
/// </summary>
public static class ByteLevelAlphabet
{
    private static readonly char[] CharOfByte = BuildCharOfByte();
    private static readonly short[] ByteOfChar = BuildByteOfChar(CharOfByte);

    /// <summary>One past the highest character the alphabet uses (U+0100 + 68 substitutes).</summary>
    private const int CharCodeLimit = 256 + 68;

    /// <summary>The character that stands for <paramref name="value"/>.</summary>
    public static char ToChar(byte value) => CharOfByte[value];

    /// <summary>The byte that <paramref name="c"/> stands for, or -1 when <paramref name="c"/> is not in the alphabet.</summary>
    public static int ToByte(char c) => c < CharCodeLimit ? ByteOfChar[c] : -1;

    /// <summary>
    /// Maps a token string back to its bytes. Returns false when some character is not in the alphabet
    /// (the string is not a byte-level token, e.g. an added token containing a plain space). Note that
    /// "&lt;|endoftext|&gt;" is made of characters that stand for themselves, so its bytes are its ASCII text.
    /// </summary>
    public static bool TryToBytes(string token, out byte[] bytes)
    {
        bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            int value = ToByte(token[i]);
            if (value < 0) return false;
            bytes[i] = (byte)value;
        }
        return true;
    }

    private static bool StandsForItself(int value) =>
        value is >= '!' and <= '~' or >= '¡' and <= '¬' or >= '®' and <= 'ÿ';

    private static char[] BuildCharOfByte()
    {
        var map = new char[256];
        int nextSubstitute = 256;
        for (int value = 0; value < 256; value++)
            map[value] = StandsForItself(value) ? (char)value : (char)nextSubstitute++;
        return map;
    }

    private static short[] BuildByteOfChar(char[] charOfByte)
    {
        var map = new short[CharCodeLimit];
        Array.Fill(map, (short)-1);
        for (int value = 0; value < 256; value++) map[charOfByte[value]] = (short)value;
        return map;
    }
}
