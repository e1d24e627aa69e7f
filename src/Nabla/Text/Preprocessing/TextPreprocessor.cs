using System.Text.RegularExpressions;

namespace Nabla.Text.Preprocessing;

/// <summary>How words are reduced to a base form after tokenising.</summary>
public enum WordReduction { None, PorterStem, Lemmatize }

/// <summary>
/// Text to word tokens, the classic pipeline: Unicode normalisation (NFKC), contraction expansion, lowercasing,
/// removal of words containing digits, word tokenisation (punctuation marks become tokens of their own, or are
/// dropped), stop-word removal, then stemming or lemmatisation. Each step can be switched off.
/// </summary>
public sealed partial record TextPreprocessor
{
    public bool Normalize { get; init; } = true;
    public bool ExpandContractions { get; init; } = true;
    public bool Lowercase { get; init; } = true;
    public bool RemoveDigitWords { get; init; }
    /// <summary>Drop punctuation tokens (otherwise each mark is a token: "stop!" → "stop", "!").</summary>
    public bool RemovePunctuation { get; init; }
    public bool RemoveStopWords { get; init; }
    public WordReduction Reduction { get; init; } = WordReduction.None;
    /// <summary>The lemmatiser <see cref="WordReduction.Lemmatize"/> uses (as nouns, then as verbs when that leaves the word unchanged).</summary>
    public WordNetLemmatizer? Lemmatizer { get; init; }

    /// <summary>The word tokens of <paramref name="text"/>.</summary>
    public List<string> Tokens(string text)
    {
        if (Reduction == WordReduction.Lemmatize && Lemmatizer == null)
            throw new InvalidOperationException("TextPreprocessor: Reduction is Lemmatize but no Lemmatizer is set (WordNetLemmatizer.Load()).");
        if (Normalize) text = TextCleaning.Normalize(text);
        if (ExpandContractions) text = TextCleaning.ExpandContractions(text);
        if (Lowercase) text = TextCleaning.Lowercase(text);
        if (RemoveDigitWords) text = TextCleaning.RemoveDigitWords(text);
        IEnumerable<string> tokens = Tokenize(text);
        if (RemovePunctuation) tokens = tokens.Where(t => !Punctuation().IsMatch(t));
        if (RemoveStopWords) tokens = StopWords.Remove(tokens);
        return tokens.Select(Reduce).ToList();
    }

    /// <summary>
    /// Word tokenisation: a word is a run of letters, digits and combining marks, with inner apostrophes and hyphens
    /// kept ("o'clock", "well-known"); every other non-space character is a token by itself.
    /// </summary>
    public static IEnumerable<string> Tokenize(string text) => WordOrMark().Matches(text).Select(m => m.Value);

    private string Reduce(string token) => Reduction switch
    {
        WordReduction.PorterStem => PorterStemmer.Stem(token),
        WordReduction.Lemmatize => Lemmatize(token),
        _ => token,
    };

    private string Lemmatize(string token)
    {
        var noun = Lemmatizer!.Lemmatize(token, WordNetPos.Noun);
        return noun != token ? noun : Lemmatizer.Lemmatize(token, WordNetPos.Verb);
    }

    [GeneratedRegex(@"[\p{L}\p{N}\p{M}]+(?:['\u2019\-][\p{L}\p{N}\p{M}]+)*|[^\s\p{L}\p{N}\p{M}]")]
    private static partial Regex WordOrMark();

    [GeneratedRegex(@"^\p{P}+$")]
    private static partial Regex Punctuation();
}
