using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Nabla.Text.Preprocessing;

/// <summary>
/// The string-level steps of classic NLP preprocessing, each a pure function of the text. They are meant to run in
/// the order of <see cref="TextPreprocessor"/>: normalise, expand contractions, lowercase, drop words with digits,
/// drop punctuation.
/// </summary>
public static partial class TextCleaning
{
    /// <summary>Unicode normalisation (<see cref="UnicodeNormalizer"/>). NFKC (the default) also folds compatibility
    /// characters: the ligature "ﬁ" becomes "fi", full-width "Ａ" becomes "A", "²" becomes "2"; NFC only composes
    /// ("e" + combining acute → "é").</summary>
    public static string Normalize(string text, NormalizationForm form = NormalizationForm.FormKC) => UnicodeNormalizer.Normalize(text, form);

    /// <summary>Removes accents and other combining marks: "café naïve" → "cafe naive" (decompose, drop the marks, recompose).</summary>
    public static string StripAccents(string text)
    {
        var decomposed = UnicodeNormalizer.Normalize(text, NormalizationForm.FormD);
        var kept = new StringBuilder(decomposed.Length);
        foreach (var c in decomposed)
            if (CharUnicodeInfo.GetUnicodeCategory(c) != UnicodeCategory.NonSpacingMark) kept.Append(c);
        return UnicodeNormalizer.Normalize(kept.ToString(), NormalizationForm.FormC);
    }

    /// <summary>Lower case by the invariant culture's rules (so "I" stays "i" under a Turkish locale).</summary>
    public static string Lowercase(string text) => text.ToLowerInvariant();

    /// <summary>Replaces every punctuation character (Unicode categories P*: . , ; ! ? ' " - ( ) « » … and the like) by a
    /// space, so that "end.Start" stays two words; symbols such as $ + = are kept.</summary>
    public static string RemovePunctuation(string text) => Punctuation().Replace(text, " ");

    /// <summary>Removes every whitespace-separated word that contains a decimal digit ("2026", "mp3", "b12").</summary>
    public static string RemoveDigitWords(string text) => DigitWord().Replace(text, "");

    /// <summary>Expands English contractions listed in <see cref="Contractions"/> ("don't" → "do not", "I'm" → "I am",
    /// with the straight or the typographic apostrophe), keeping the capital of a capitalised first letter. Contractions
    /// whose meaning depends on context are expanded to the most common reading ("'d" → "would", "it's" → "it is");
    /// possessives ("John's") and words not in the list are left alone.</summary>
    public static string ExpandContractions(string text) => ApostropheWord().Replace(text, match =>
    {
        var key = match.Value.Replace('\u2019', '\'').ToLowerInvariant();
        if (!Contractions.TryGetValue(key, out var expansion)) return match.Value;
        return char.IsUpper(match.Value[0]) ? char.ToUpperInvariant(expansion[0]) + expansion[1..] : expansion;
    });

    /// <summary>The contractions <see cref="ExpandContractions"/> knows, in lower case with a straight apostrophe.</summary>
    public static readonly IReadOnlyDictionary<string, string> Contractions = new Dictionary<string, string>
    {
        ["ain't"] = "am not", ["aren't"] = "are not", ["can't"] = "cannot", ["couldn't"] = "could not", ["could've"] = "could have",
        ["didn't"] = "did not", ["doesn't"] = "does not", ["don't"] = "do not", ["hadn't"] = "had not", ["hasn't"] = "has not",
        ["haven't"] = "have not", ["he'd"] = "he would", ["he'll"] = "he will", ["he's"] = "he is", ["here's"] = "here is",
        ["how'd"] = "how did", ["how's"] = "how is", ["i'd"] = "i would", ["i'll"] = "i will", ["i'm"] = "i am", ["i've"] = "i have",
        ["isn't"] = "is not", ["it'd"] = "it would", ["it'll"] = "it will", ["it's"] = "it is", ["let's"] = "let us",
        ["might've"] = "might have", ["mightn't"] = "might not", ["must've"] = "must have", ["mustn't"] = "must not",
        ["needn't"] = "need not", ["o'clock"] = "of the clock", ["shan't"] = "shall not", ["she'd"] = "she would",
        ["she'll"] = "she will", ["she's"] = "she is", ["should've"] = "should have", ["shouldn't"] = "should not",
        ["that'd"] = "that would", ["that's"] = "that is", ["there'd"] = "there would", ["there's"] = "there is",
        ["they'd"] = "they would", ["they'll"] = "they will", ["they're"] = "they are", ["they've"] = "they have",
        ["wasn't"] = "was not", ["we'd"] = "we would", ["we'll"] = "we will", ["we're"] = "we are", ["we've"] = "we have",
        ["weren't"] = "were not", ["what'll"] = "what will", ["what're"] = "what are", ["what's"] = "what is",
        ["what've"] = "what have", ["where'd"] = "where did", ["where's"] = "where is", ["who'd"] = "who would",
        ["who'll"] = "who will", ["who're"] = "who are", ["who's"] = "who is", ["who've"] = "who have", ["why's"] = "why is",
        ["won't"] = "will not", ["would've"] = "would have", ["wouldn't"] = "would not", ["y'all"] = "you all",
        ["you'd"] = "you would", ["you'll"] = "you will", ["you're"] = "you are", ["you've"] = "you have",
    };

    [GeneratedRegex(@"\p{P}")]
    private static partial Regex Punctuation();

    [GeneratedRegex(@"\S*\p{Nd}\S*")]
    private static partial Regex DigitWord();

    [GeneratedRegex(@"\b\p{L}+['\u2019]\p{L}+\b")]
    private static partial Regex ApostropheWord();
}
