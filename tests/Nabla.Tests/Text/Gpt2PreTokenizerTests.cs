using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Nabla.Text;

namespace Nabla.Tests.Text;

/// <summary>
/// The hand-written scanner must split exactly as GPT-2's regular expression does. .NET's Regex is the
/// oracle for text in the Basic Multilingual Plane; beyond it, where .NET's Regex sees UTF-16 units and GPT-2
/// saw code points, the oracle is the same Regex run on a copy of the text with each supplementary code point
/// replaced by one BMP character of its class.
/// </summary>
public class Gpt2PreTokenizerTests
{
    private static readonly Regex Gpt2Regex = new(Gpt2PreTokenizer.Pattern, RegexOptions.Compiled);

    private static List<string> RegexSplit(string text) => Gpt2Regex.Matches(text).Select(match => match.Value).ToList();

    [Fact]
    public void MatchesRegexOnEveryShortStringOverAnAlphabetOfClasses()
    {
        // Every string of up to 4 symbols from an alphabet that covers each alternative of the pattern: the
        // contraction letters, upper case, space, other whitespace (ASCII and not), letters, numbers, "other"
        // (ASCII, non-ASCII, a surrogate pair, a lone surrogate). 19^4 + ... ≈ 137,000 strings.
        string[] alphabet = ["'", "s", "t", "r", "e", "l", "d", "S", " ", "\n", "\t", "\u00a0", "a", "é", "1", "²", "!", "😀", "\ud800"];
        int checkedCount = 0;
        var text = new StringBuilder();
        void Extend(int remaining)
        {
            string current = text.ToString();
            Assert.True(RegexSplit(current).SequenceEqual(Gpt2PreTokenizer.Split(current)), $"split differs on \"{Gpt2TokenizerTests.Escape(current)}\"");
            checkedCount++;
            if (remaining == 0) return;
            foreach (string symbol in alphabet)
            {
                text.Append(symbol);
                Extend(remaining - 1);
                text.Length -= symbol.Length;
            }
        }
        Extend(4);
        Assert.Equal(1 + 19 + 19 * 19 + 19 * 19 * 19 + 19 * 19 * 19 * 19, checkedCount);
    }

    [Fact]
    public void MatchesRegexOnRandomBmpText()
    {
        var random = new Random(42);
        for (int trial = 0; trial < 20_000; trial++)
        {
            string text = RandomBmpText(random, random.Next(1, 50));
            Assert.True(RegexSplit(text).SequenceEqual(Gpt2PreTokenizer.Split(text)), $"split differs on \"{Gpt2TokenizerTests.Escape(text)}\"");
        }
    }

    [Fact]
    public void MatchesRegexPerCodePointOnSupplementaryText()
    {
        var random = new Random(43);
        for (int trial = 0; trial < 5_000; trial++)
        {
            string text = Gpt2TokenizerTests.RandomText(random, random.Next(1, 30), supplementaryLettersAndDigits: true);
            Assert.True(CodePointRegexSplit(text).SequenceEqual(Gpt2PreTokenizer.Split(text)), $"split differs on \"{Gpt2TokenizerTests.Escape(text)}\"");
        }
    }

    [Theory]
    // Expected splits from Python's regex module with GPT-2's pattern (what GPT-2's encoder.py ran).
    [InlineData("a𠀀b x", new[] { "a𠀀b", " x" })]
    [InlineData(" 𝐀bc 𝟎𝟏2", new[] { " 𝐀bc", " 𝟎𝟏2" })]
    [InlineData("x\x1cy", new[] { "x", "\x1c", "y" })]
    [InlineData("a  \n\nb", new[] { "a", "  \n", "\n", "b" })]
    [InlineData("I'M don't", new[] { "I", "'", "M", " don", "'t" })]
    [InlineData("a\u00a0b", new[] { "a", "\u00a0", "b" })]
    [InlineData("\x85", new[] { "\x85" })]
    [InlineData("Hello world, it's 2026!", new[] { "Hello", " world", ",", " it", "'s", " 2026", "!" })]
    [InlineData("  x \ty\n", new[] { " ", " x", " ", "\t", "y", "\n" })]
    [InlineData("!'s 'll", new[] { "!'", "s", " '", "ll" })]
    public void SplitsAsGpt2(string text, string[] expected)
    {
        Assert.Equal(expected, Gpt2PreTokenizer.Split(text));
    }

    [Fact]
    public void EscapedInvalidBytesSplitLikeSymbols()
    {
        // A byte that is not UTF-8 becomes an unpaired surrogate, which scans as "other": " \xFF" is one piece
        // like " !", and it does not join the letters after it.
        string text = SurrogateEscape.Decode([.. "hi "u8, 0xFF, .. "there"u8]);
        Assert.Equal(["hi", " \uDCFF", "there"], Gpt2PreTokenizer.Split(text));
    }

    /// <summary>
    /// GPT-2's split per code point: run the regex on a stand-in string with one character per code point
    /// (supplementary letters → 'x', numbers → '0', anything else → '#'; none of them can start or complete a
    /// contraction, just as the originals cannot), then cut the original at the same code point offsets.
    /// </summary>
    private static List<string> CodePointRegexSplit(string text)
    {
        var standIn = new StringBuilder();
        var codePointStarts = new List<int>();
        for (int i = 0; i < text.Length; i += char.IsSurrogatePair(text, i) ? 2 : 1)
        {
            codePointStarts.Add(i);
            if (!char.IsSurrogatePair(text, i))
            {
                standIn.Append(text[i]);
                continue;
            }
            var category = CharUnicodeInfo.GetUnicodeCategory(text, i);
            standIn.Append(category switch
            {
                UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                    or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => 'x',
                UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => '0',
                _ => '#',
            });
        }
        codePointStarts.Add(text.Length);
        return Gpt2Regex.Matches(standIn.ToString())
            .Select(match => text[codePointStarts[match.Index]..codePointStarts[match.Index + match.Length]])
            .ToList();
    }

    private static string RandomBmpText(Random random, int length)
    {
        // Half the characters from a small set of tricky ones (with a lone high surrogate, never paired, as
        // no low surrogate is drawn), half uniform over the BMP's non-surrogate code points (any class).
        const string tricky = "'''sstrevmlldSTRVM  \t\n\r\v\f\u0085\u00a0\u1680\u2000\u2028\u2029\u202f\u3000\x1c\u200b\u180eaZé1½٣!?.-_\u0301\ud800";
        var text = new StringBuilder(length);
        for (int i = 0; i < length; i++)
        {
            int uniform = random.Next(0x10000 - 0x800);
            text.Append(random.Next(2) == 0 ? tricky[random.Next(tricky.Length)] : (char)(uniform < 0xD800 ? uniform : uniform + 0x800));
        }
        return text.ToString();
    }
}
