using System.Globalization;
using System.Text;

namespace Nabla.Text;

/// <summary>
/// GPT-2's pre-tokenisation: splits text into the pieces that BPE then encodes one by one, as GPT-2's regular
/// expression <see cref="Pattern"/> does, but with a hand-written scanner (no regex engine, no allocation).
/// <para>
/// The regex tries its alternatives in order at each position: the contractions 's 't 're 've 'm 'll 'd
/// (lower case only), then an optional space followed by a run of letters, of numbers, or of "other"
/// characters (neither whitespace, letter nor number), then a run of whitespace that is not followed by a
/// non-whitespace character (so a run before a word leaves its last space to prefix the word), then any run
/// of whitespace.
/// </para>
/// <para>
/// Character classes are taken per Unicode code point, as in Python's <c>regex</c> module that GPT-2 used (and
/// Hugging Face's and tiktoken's Rust engines): a letter outside the Basic Multilingual Plane such as 𝐀 or 𠀀 is
/// a letter. .NET's <see cref="System.Text.RegularExpressions.Regex"/> works on UTF-16 code units instead and
/// classes each half of a surrogate pair as "other", so it splits "a𠀀b" into "a", "𠀀", "b" where GPT-2 keeps
/// one piece. Everywhere else the scanner and the regex agree (the tests check both facts). An unpaired
/// surrogate counts as "other".
/// </para>
/// </summary>
public static class Gpt2PreTokenizer
{
    /// <summary>GPT-2's pre-tokenisation regular expression, as published with its encoder.</summary>
    public const string Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private enum CharKind : byte { Letter, Number, Whitespace, Other }

    private static readonly CharKind[] AsciiKinds = BuildAsciiKinds();

    /// <summary>
    /// Length in UTF-16 code units of the pre-token that starts at <paramref name="start"/>; the end of
    /// <paramref name="text"/> is treated as the end of the input.
    /// </summary>
    public static int TokenLength(ReadOnlySpan<char> text, int start)
    {
        char first = text[start];
        if (first == '\'')
        {
            int contraction = ContractionLength(text, start);
            if (contraction > 0) return contraction;
        }

        // " ?\p{L}+", " ?\p{N}+" and " ?[^\s\p{L}\p{N}]+": a single space joins the run that follows it.
        int runStart = start;
        CharKind kind = KindAt(text, start, out _);
        if (first == ' ' && start + 1 < text.Length)
        {
            CharKind next = KindAt(text, start + 1, out _);
            if (next != CharKind.Whitespace)
            {
                runStart = start + 1;
                kind = next;
            }
        }
        if (kind != CharKind.Whitespace) return RunEnd(text, runStart, kind) - start;

        // "\s+(?!\S)" backs off one character when the run is followed by non-whitespace, so that character
        // (a space) can prefix the next word; a run of one such character falls through to "\s+".
        int runLength = RunEnd(text, start, CharKind.Whitespace) - start;
        bool atEnd = start + runLength == text.Length;
        return atEnd || runLength == 1 ? runLength : runLength - 1;
    }

    /// <summary>Splits <paramref name="text"/> into pre-tokens (a convenience: encoders scan with <see cref="TokenLength"/>).</summary>
    public static List<string> Split(string text)
    {
        var pieces = new List<string>();
        for (int start = 0; start < text.Length;)
        {
            int length = TokenLength(text, start);
            pieces.Add(text.Substring(start, length));
            start += length;
        }
        return pieces;
    }

    /// <summary>
    /// True when a pre-token boundary at <paramref name="position"/> does not depend on anything before it:
    /// whitespace right after non-whitespace. No pre-token mixes the two except a whitespace run's optional
    /// leading space, which belongs to what follows, so every scan ends a piece there. Parallel encoders split
    /// work at such positions.
    /// </summary>
    internal static bool IsIndependentBoundary(ReadOnlySpan<char> text, int position) =>
        position > 0 && position < text.Length
        && IsWhitespaceChar(text[position]) && !IsWhitespaceChar(text[position - 1]);

    private static int ContractionLength(ReadOnlySpan<char> text, int start)
    {
        if (start + 1 >= text.Length) return 0;
        char second = text[start + 1];
        if (second is 's' or 't' or 'm' or 'd') return 2;
        if (start + 2 >= text.Length) return 0;
        char third = text[start + 2];
        return (second, third) is ('r', 'e') or ('v', 'e') or ('l', 'l') ? 3 : 0;
    }

    private static int RunEnd(ReadOnlySpan<char> text, int position, CharKind kind)
    {
        while (position < text.Length)
        {
            // ASCII inline: most text is ASCII, and this loop is the encoder's hottest.
            char c = text[position];
            if (c < 128)
            {
                if (AsciiKinds[c] != kind) break;
                position++;
            }
            else
            {
                if (KindAt(text, position, out int width) != kind) break;
                position += width;
            }
        }
        return position;
    }

    /// <summary>The class of the code point at <paramref name="index"/>; <paramref name="width"/> is 2 for a surrogate pair.</summary>
    private static CharKind KindAt(ReadOnlySpan<char> text, int index, out int width)
    {
        char c = text[index];
        width = 1;
        if (c < 128) return AsciiKinds[c];
        if (!char.IsSurrogate(c)) return KindOf(CharUnicodeInfo.GetUnicodeCategory(c), char.IsWhiteSpace(c));
        if (char.IsHighSurrogate(c) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
        {
            width = 2;
            var rune = new Rune(c, text[index + 1]);
            return KindOf(Rune.GetUnicodeCategory(rune), Rune.IsWhiteSpace(rune));
        }
        return CharKind.Other;
    }

    // \s in both Python's regex module and .NET is Unicode's White_Space property, which is what
    // char.IsWhiteSpace tests; every White_Space character lies in the Basic Multilingual Plane.
    private static bool IsWhitespaceChar(char c) => c < 128 ? AsciiKinds[c] == CharKind.Whitespace : char.IsWhiteSpace(c);

    private static CharKind KindOf(UnicodeCategory category, bool isWhitespace)
    {
        if (isWhitespace) return CharKind.Whitespace;
        return category switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CharKind.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => CharKind.Number,
            _ => CharKind.Other,
        };
    }

    private static CharKind[] BuildAsciiKinds()
    {
        var kinds = new CharKind[128];
        for (int c = 0; c < 128; c++)
            kinds[c] = KindOf(CharUnicodeInfo.GetUnicodeCategory((char)c), char.IsWhiteSpace((char)c));
        return kinds;
    }
}
