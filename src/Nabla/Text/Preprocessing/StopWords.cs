namespace Nabla.Text.Preprocessing;

/// <summary>Stop words: very frequent function words often dropped before bag-of-words models.</summary>
public static class StopWords
{
    /// <summary>
    /// The English list of the npm package <c>stopword</c> 3.1.5 (<c>eng</c>, MIT licence), 108 lower-case words in its
    /// order. It is a short list: unlike NLTK's 179 words or stopwords-iso's 1,298 it keeps negations ("no", "not",
    /// "nor") and many pronouns, which matter for sentiment and sequence models.
    /// </summary>
    public static readonly IReadOnlyList<string> EnglishList =
    [
        "about", "after", "all", "also", "am", "an", "and", "another", "any", "are", "as", "at", "be", "because", "been",
        "before", "being", "between", "both", "but", "by", "came", "can", "come", "could", "did", "do", "each", "for",
        "from", "get", "got", "has", "had", "he", "have", "her", "here", "him", "himself", "his", "how", "if", "in", "into",
        "is", "it", "like", "make", "many", "me", "might", "more", "most", "much", "must", "my", "never", "now", "of", "on",
        "only", "or", "other", "our", "out", "over", "said", "same", "should", "since", "some", "still", "such", "take",
        "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too",
        "under", "up", "very", "was", "way", "we", "well", "were", "what", "where", "which", "while", "who", "with",
        "would", "you", "your", "a", "i",
    ];

    /// <summary><see cref="EnglishList"/> as a set, for lookups.</summary>
    public static readonly IReadOnlySet<string> English = new HashSet<string>(EnglishList, StringComparer.Ordinal);

    /// <summary>The tokens that are not in <paramref name="stopWords"/> (default <see cref="English"/>), in order.</summary>
    public static IEnumerable<string> Remove(IEnumerable<string> tokens, IReadOnlySet<string>? stopWords = null)
    {
        var set = stopWords ?? English;
        return tokens.Where(t => !set.Contains(t));
    }
}
