using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Nabla.Text;
using Xunit.Abstractions;

namespace Nabla.Tests.Text;

public class Gpt2TokenizerTests(ITestOutputHelper output)
{
    private static Gpt2Tokenizer Gpt2 => TextTestData.Gpt2;

    /// <summary>Strings where tokenizers tend to go wrong; each must match the reference token for token.</summary>
    internal static readonly string[] HardCaseTexts =
    [
        "Hello world, it's 2026!",
        "",
        // Unicode: CJK, accents (precomposed and combining), scripts without spaces, RTL, zalgo.
        "日本語のテキスト、中文文本，한국어 텍스트",
        "café naïve résumé Ångström façade",
        "cafe\u0301 nai\u0308ve a\u030A\u0323 \u0301alone",
        "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
        "Привет, мир! Γειά σου Κόσμε! שלום עולם مرحبا بالعالم",
        "ภาษาไทย हिन्दी தமிழ்",
        // Emoji: single, skin tones, ZWJ families and flags, variation selectors, keycaps.
        "I ❤️ emoji 😀😃😄 👋🏽👋🏿",
        "family: 👨‍👩‍👧‍👦 rainbow: 🏳️‍🌈 flags: 🇫🇷🇯🇵 keycap: 1️⃣ #️⃣",
        "a😀b 😀 😀😀 x👩‍💻y",
        // Whitespace: runs, tabs, newlines, trailing and leading, non-ASCII spaces.
        "a  b   c    d",
        "tab\tseparated\t\tvalues\t",
        "line one\nline two\n\nline four\n\n\n",
        "   leading spaces",
        "trailing spaces   ",
        "trailing newline \n",
        " \n \n  \n\t \t",
        "     ",
        "\n",
        " ",
        "\r\nwindows\r\nline\r\n\r\nends",
        "nbsp\u00a0here, em\u2003space, ideographic\u3000space, line\u2028separator",
        // Contractions, lower and upper case (GPT-2 splits only the lower-case ones).
        "it's don't we're they've I'm you'll he'd",
        "IT'S DON'T WE'RE THEY'VE I'M YOU'LL HE'D",
        "It'S dOn'T we'Re",
        "'s's 'S 't're've'm'll'd",
        "rock 'n' roll, 'quoted', ''double'', '''",
        "'",
        "' s",
        "O'Neil's café's",
        // Numbers and punctuation runs.
        "1234567890 3.14159 1,000,000 -42 +7e-10 0x1F",
        "½ ¾ ² ³ Ⅻ ٣٤٥ ๑๒๓ 2nd 3rd",
        "!!!??? ... --- ==> <=> {[()]} @#$%^&*~`|\\",
        "\"quoted\" and (parenthesised) and [bracketed].",
        "def f(x):\n    return x**2  # squared\n\n\nclass A:\n\tpass\n",
        "<html><body class=\"x\">&amp;&lt;</body></html>",
        "http://example.com/path?query=1&b=2#frag",
        // The special token's text, which Encode treats as ordinary text.
        "<|endoftext|>",
        "a<|endoftext|>b",
        "<|endoftext",
        // Long pieces (the merge loop's pooled-buffer path).
        new string('a', 5000),
        string.Concat(Enumerable.Repeat("ab", 3000)),
        string.Concat(Enumerable.Repeat("Lorem", 400)),
        new string(' ', 3000) + "x",
        string.Concat(Enumerable.Repeat("🙂", 500)),
    ];

    public static TheoryData<string> HardCases => new(HardCaseTexts);

    [Fact]
    public void ReferenceIdsFromGpt2()
    {
        Assert.Equal([15496, 995, 11, 340, 338, 1160, 2075, 0], Gpt2.Encode("Hello world, it's 2026!"));
        Assert.Equal(50257, Gpt2.VocabSize);
        Assert.Equal(50000, Gpt2.Merges.Count);
        Assert.Equal(TextTestData.EndOfTextId, Gpt2.EndOfTextId);
    }

    [Theory]
    [MemberData(nameof(HardCases))]
    public void HardCaseMatchesReferenceAndRoundTrips(string text)
    {
        int[] ours = Gpt2.Encode(text);
        Assert.Equal(TextTestData.Reference.EncodeToIds(text).ToArray(), ours);
        Assert.Equal(text, Gpt2.Decode(ours));
    }

    [Fact]
    public void UpperCaseContractionIsNotSplitOff()
    {
        // "'s" is one piece, "'S" is "'" then "S", as in GPT-2.
        Assert.Equal(["'s", "Ġit", "'", "S"], Gpt2.Encode("'s it'S").Select(Gpt2.TokenOf));
    }

    [Fact]
    public void MergesEveryOccurrenceOfTheBestPairBeforeThePairsItCreates()
    {
        // A merges list where a pair made by a merge ranks above that merge: ("xy", "x") before ("x", "y").
        // GPT-2's bpe() merges both "x y" in "xyxy" first, leaving "xy xy"; merging one occurrence at a time
        // would make "xyx" and strand the last "y". (Python's GPT-2 encoder gives ['xy', 'xy'].)
        var vocabulary = Enumerable.Range(0, 256).Select(value => ByteLevelAlphabet.ToChar((byte)value).ToString()).Order(StringComparer.Ordinal)
            .Concat(["xyx", "xy"]).Select((token, id) => (token, id)).ToDictionary(entry => entry.token, entry => entry.id);
        var tokenizer = new Gpt2Tokenizer(vocabulary, [("xy", "x"), ("x", "y")]);
        Assert.Equal(["xy", "xy"], tokenizer.Encode("xyxy").Select(tokenizer.TokenOf));
        Assert.Equal(["xyx"], tokenizer.Encode("xyx").Select(tokenizer.TokenOf));
    }

    [Fact]
    public void EndOfTextIsSpecialOnlyWhenAllowed()
    {
        const string text = "one<|endoftext|>two <|endoftext|><|endoftext|> three<|endoftext|>";
        int[] special = Gpt2.Encode(text, allowSpecialTokens: true);
        Assert.Equal(TextTestData.ReferenceWithEndOfText.EncodeToIds(text).ToArray(), special);
        Assert.Equal(4, special.Count(id => id == TextTestData.EndOfTextId));
        Assert.Equal(text, Gpt2.Decode(special));

        int[] ordinary = Gpt2.Encode(text);
        Assert.DoesNotContain(TextTestData.EndOfTextId, ordinary);
        Assert.Equal(TextTestData.Reference.EncodeToIds(text).ToArray(), ordinary);
        Assert.Equal(text, Gpt2.Decode(ordinary));

        Assert.Equal([TextTestData.EndOfTextId], Gpt2.Encode(TextTestData.EndOfText, allowSpecialTokens: true));
    }

    [Fact]
    public void AgreesWithReferenceOnMegabytesOfRealText()
    {
        // The first 1.5 MB of the King James Bible (ASCII, verse-per-line) and the whole Jargon File (UTF-8,
        // with typographic quotes, box drawing and indented layout).
        string kjv = TextTestData.Kjv;
        string[] corpora = [kjv[..Math.Min(kjv.Length, 1_500_000)], TextTestData.Jargon];
        long bytes = 0, tokens = 0;
        var ourTime = new Stopwatch();
        var referenceTime = new Stopwatch();
        foreach (string text in corpora)
        {
            ourTime.Start();
            int[] ours = Gpt2.Encode(text);
            ourTime.Stop();
            referenceTime.Start();
            int[] reference = TextTestData.Reference.EncodeToIds(text).ToArray();
            referenceTime.Stop();

            AssertSameTokens(reference, ours);
            Assert.Equal(text, Gpt2.Decode(ours));
            bytes += Encoding.UTF8.GetByteCount(text);
            tokens += ours.Length;
        }
        output.WriteLine($"agreement: {bytes:N0} bytes, {tokens:N0} tokens identical; ours {ourTime.ElapsedMilliseconds} ms, reference {referenceTime.ElapsedMilliseconds} ms");
        Assert.True(bytes >= 1_000_000, $"only {bytes} bytes compared");
    }

    [Fact]
    public void RandomStringsMatchReferenceAndRoundTrip()
    {
        var random = new Random(1234);
        for (int trial = 0; trial < 2000; trial++)
        {
            string text = RandomText(random, random.Next(0, 40), supplementaryLettersAndDigits: false);
            int[] ours = Gpt2.Encode(text);
            Assert.True(TextTestData.Reference.EncodeToIds(text).SequenceEqual(ours), $"mismatch on {Escape(text)}");
            Assert.Equal(text, Gpt2.Decode(ours));
        }

        // Uniformly random BMP characters (no surrogates), with spaces: arbitrary 2- and 3-byte sequences
        // through the merges, in pieces the cache has never seen.
        for (int trial = 0; trial < 1000; trial++)
        {
            var text = new StringBuilder();
            for (int i = random.Next(1, 25); i > 0; i--)
            {
                int code = random.Next(0x10000 - 0x800);
                text.Append(random.Next(4) == 0 ? ' ' : (char)(code < 0xD800 ? code : code + 0x800));
            }
            string value = text.ToString();
            Assert.True(TextTestData.Reference.EncodeToIds(value).SequenceEqual(Gpt2.Encode(value)), $"mismatch on {Escape(value)}");
        }
    }

    [Fact]
    public void ArbitraryValidStringsRoundTrip()
    {
        // Including letters and digits outside the BMP, where .NET's regex (and so the reference) splits
        // differently from GPT-2; decode(encode(x)) == x must hold regardless.
        var random = new Random(99);
        for (int trial = 0; trial < 3000; trial++)
        {
            string text = RandomText(random, random.Next(0, 60), supplementaryLettersAndDigits: true);
            Assert.Equal(text, Gpt2.Decode(Gpt2.Encode(text)));
        }
    }

    [Fact]
    public void SupplementaryPlaneLettersFollowGpt2NotDotNetRegex()
    {
        // GPT-2 (Python's regex module, per code point) pre-tokenises "x𝐀's" as "x𝐀", "'s": 𝐀 is a letter.
        // .NET's regex, per UTF-16 unit, and so the reference, classes 𝐀's surrogates as "other" and splits
        // "x", "𝐀'", "s". The expected ids were computed with Python's regex module and GPT-2's files.
        Assert.Equal([87, 47728, 238, 222, 338], Gpt2.Encode("x𝐀's"));
        Assert.Equal([87, 47728, 238, 222, 6, 82], TextTestData.Reference.EncodeToIds("x𝐀's").ToArray());
    }

    [Fact]
    public void UnpairedSurrogatesEncodeAsReplacementCharacter()
    {
        Assert.Equal(Gpt2.Encode("a\uFFFDb\uFFFD"), Gpt2.Encode("a\uD800b\uDC80"));
        Assert.Equal("a\uFFFDb", Gpt2.Decode(Gpt2.Encode("a\uDFFFb")));
    }

    [Fact]
    public void ArbitraryBytesRoundTripThroughEncodeBytes()
    {
        var random = new Random(7);
        for (int trial = 0; trial < 3000; trial++)
        {
            var bytes = new byte[random.Next(0, 80)];
            random.NextBytes(bytes);
            if (trial % 3 == 0)
            {
                // Mostly-valid UTF-8 with damage: more realistic than uniform noise, which is rarely valid.
                bytes = Encoding.UTF8.GetBytes(RandomText(random, 30, supplementaryLettersAndDigits: true));
                if (bytes.Length > 0) bytes[random.Next(bytes.Length)] = (byte)random.Next(0x80, 0x100);
            }
            Assert.Equal(bytes, Gpt2.DecodeBytes(Gpt2.EncodeBytes(bytes)));
        }
    }

    [Fact]
    public void EveryByteAloneIsItsOwnToken()
    {
        for (int value = 0; value < 256; value++)
        {
            int[] ids = Gpt2.EncodeBytes([(byte)value]);
            Assert.Single(ids);
            Assert.Equal(ByteLevelAlphabet.ToChar((byte)value).ToString(), Gpt2.TokenOf(ids[0]));
            Assert.Equal([(byte)value], Gpt2.DecodeBytes(ids));
        }
    }

    [Fact]
    public void ValidUtf8EncodesLikeItsText()
    {
        var random = new Random(5);
        foreach (string text in HardCaseTexts.Concat(Enumerable.Range(0, 500).Select(_ => RandomText(random, 40, true))))
            Assert.Equal(Gpt2.Encode(text), Gpt2.EncodeBytes(Encoding.UTF8.GetBytes(text)));
    }

    [Fact]
    public void InvalidByteKeepsItsByteToken()
    {
        // 0xFF never occurs in UTF-8; it stays the byte token "ÿ" (GPT-2 has no merge of " " with it).
        byte[] bytes = [.. "hi "u8, 0xFF, .. "there"u8];
        Assert.Equal(["hi", " ", "\u00FF", "there"], Gpt2.EncodeBytes(bytes).Select(Gpt2.TokenOf).Select(TokenBytesAsLatin1));
    }

    [Theory]
    [InlineData(new byte[] { 0xE2, 0x82, (byte)'a' }, "\uFFFDa")]              // truncated 3-byte sequence: one U+FFFD
    [InlineData(new byte[] { 0xC0, 0x80 }, "\uFFFD\uFFFD")]                    // overlong encoding: one per byte
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 }, "\uFFFD\uFFFD\uFFFD")]        // encoded surrogate
    [InlineData(new byte[] { 0xF0, 0x9F, 0x98 }, "\uFFFD")]                    // emoji cut at the end of a sample
    [InlineData(new byte[] { 0xF0, 0x9F, 0x98, 0x80 }, "😀")]
    public void DecodeReplacesInvalidUtf8LikePython(byte[] bytes, string expected)
    {
        // Expected strings are Python's bytes.decode("utf-8", errors="replace"), which Hugging Face's GPT-2
        // decoder uses; tiktoken decodes the same way.
        Assert.Equal(expected, Gpt2.Decode(Gpt2.EncodeBytes(bytes)));
    }

    [Fact]
    public void DecodeRejectsIdsOutsideTheVocabulary()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Gpt2.Decode([15496, 50257]));
        Assert.Contains("50257", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Gpt2.DecodeBytes([-1]));
    }

    [Fact]
    public void ParallelEncodeEqualsSequential()
    {
        string text = TextTestData.Kjv[..600_000] + "<|endoftext|>" + TextTestData.Jargon[..300_000];
        var sequential = Gpt2Tokenizer.FromDirectory(TextTestData.Gpt2Directory);
        sequential.MaxDegreeOfParallelism = 1;
        var parallel = Gpt2Tokenizer.FromDirectory(TextTestData.Gpt2Directory);
        parallel.MaxDegreeOfParallelism = 4;
        Assert.Equal(sequential.Encode(text), parallel.Encode(text));
        Assert.Equal(sequential.Encode(text, allowSpecialTokens: true), parallel.Encode(text, allowSpecialTokens: true));
    }

    [Fact]
    public void SaveReproducesGpt2FilesByteForByte()
    {
        string directory = Directory.CreateTempSubdirectory("nabla-gpt2-save").FullName;
        try
        {
            Gpt2.Save(directory);
            foreach (string name in new[] { "encoder.json", "vocab.bpe" })
                Assert.Equal(Sha256(Path.Combine(TextTestData.Gpt2Directory, name)), Sha256(Path.Combine(directory, name)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void LoadsHuggingFaceFileNames()
    {
        string directory = Directory.CreateTempSubdirectory("nabla-gpt2-hf").FullName;
        try
        {
            File.Copy(TextTestData.PathOf("gpt2/encoder.json"), Path.Combine(directory, "vocab.json"));
            File.Copy(TextTestData.PathOf("gpt2/vocab.bpe"), Path.Combine(directory, "merges.txt"));
            var tokenizer = Gpt2Tokenizer.FromDirectory(directory);
            Assert.Equal([15496, 995, 11, 340, 338, 1160, 2075, 0], tokenizer.Encode("Hello world, it's 2026!"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ByteLevelAlphabetMatchesGpt2Vocabulary()
    {
        // GPT-2's first 256 ids are the byte characters in code-point order; space is 'Ġ' and newline 'Ċ'.
        var byteChars = Enumerable.Range(0, 256).Select(value => ByteLevelAlphabet.ToChar((byte)value)).OrderBy(c => c).ToArray();
        for (int id = 0; id < 256; id++) Assert.Equal(byteChars[id].ToString(), Gpt2.TokenOf(id));
        Assert.Equal('Ġ', ByteLevelAlphabet.ToChar((byte)' '));
        Assert.Equal('Ċ', ByteLevelAlphabet.ToChar((byte)'\n'));
        for (int value = 0; value < 256; value++) Assert.Equal(value, ByteLevelAlphabet.ToByte(ByteLevelAlphabet.ToChar((byte)value)));
        // Space and U+0200 are not in the alphabet: space is written 'Ġ', and only 68 substitutes follow U+00FF.
        Assert.Equal(-1, ByteLevelAlphabet.ToByte(' '));
        Assert.Equal(-1, ByteLevelAlphabet.ToByte('\u0200'));
    }

    internal static string RandomText(Random random, int length, bool supplementaryLettersAndDigits)
    {
        // Pieces chosen to exercise every branch of the pre-tokenizer and multi-byte BPE.
        string[] common =
        [
            "a", "b", "Z", "é", "ß", "中", "語", "я", "ا", "1", "9", "½", "٣", "!", ".", ",", "-", "'", "\"", "<", "|", ">",
            " ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028", "\u0301", "\u200d", "😀", "👍🏽", "🇫🇷", "s", "t", "re",
            "ve", "m", "ll", "d", "S", "the", " the", "ing", "<|endoftext|>", "\x1c", "\u0085", "\0", "\x7f",
        ];
        string[] supplementary = ["𝐀", "𝐛", "𠀀", "𝟎", "𝟗", "𐍈"];
        var text = new StringBuilder();
        for (int i = 0; i < length; i++)
        {
            bool useSupplementary = supplementaryLettersAndDigits && random.Next(8) == 0;
            text.Append(useSupplementary ? supplementary[random.Next(supplementary.Length)] : common[random.Next(common.Length)]);
        }
        return text.ToString();
    }

    internal static string Escape(string text) =>
        string.Concat(text.Select(c => c is >= ' ' and <= '~' ? c.ToString() : $"\\u{(int)c:X4}"));

    private static string TokenBytesAsLatin1(string token) =>
        Encoding.Latin1.GetString(token.Select(c => (byte)ByteLevelAlphabet.ToByte(c)).ToArray());

    private static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    private void AssertSameTokens(int[] expected, int[] actual)
    {
        int mismatch = 0;
        while (mismatch < Math.Min(expected.Length, actual.Length) && expected[mismatch] == actual[mismatch]) mismatch++;
        if (mismatch == expected.Length && mismatch == actual.Length) return;
        int from = Math.Max(0, mismatch - 5);
        string Context(int[] ids) => Escape(Gpt2.Decode(ids.Skip(from).Take(12))) + " = [" + string.Join(", ", ids.Skip(from).Take(12)) + "]";
        Assert.Fail($"token {mismatch} differs (lengths {expected.Length} vs {actual.Length}):\n reference: {Context(expected)}\n ours:      {Context(actual)}");
    }
}
