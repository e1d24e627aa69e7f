using Nabla.IO;
using Nabla.Text.Preprocessing;

namespace Nabla.Tests.Text.Preprocessing;

/// <summary>Needs Debian's wordnet-base (installed by .ci/run).</summary>
public sealed class WordNetLemmatizerTests
{
    private static readonly Lazy<WordNetLemmatizer> Lemmatizer = new(() =>
    {
        if (!File.Exists(Path.Combine(WordNetLemmatizer.DebianDirectory, "index.noun")))
            throw new FileNotFoundException($"WordNet is missing from {WordNetLemmatizer.DebianDirectory}: apt-get install wordnet-base (.ci/run installs it).");
        return WordNetLemmatizer.Load();
    });

    private static WordNetPos Pos(string tag) => tag switch
    {
        "n" => WordNetPos.Noun, "v" => WordNetPos.Verb, "a" => WordNetPos.Adjective, "r" => WordNetPos.Adverb,
        _ => throw new ArgumentException(tag),
    };

    [Fact]
    public void MatchesNltksMorphyOnASampleOfPortersVocabularyInEveryPartOfSpeech()
    {
        var rows = ReferenceFiles.Rows("wordnet_lemmas.tsv.gz");
        Assert.Equal(15688, rows.Count);
        var wrong = rows.Where(r => Lemmatizer.Value.Lemmatize(r[0], Pos(r[1])) != r[2])
            .Select(r => $"{r[0]}/{r[1]}: expected {r[2]}, got {Lemmatizer.Value.Lemmatize(r[0], Pos(r[1]))}").ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {rows.Count} differ, e.g. {string.Join("; ", wrong.Take(10))}");
        // The sample must exercise the rules, not only return words unchanged.
        Assert.True(rows.Count(r => r[0] != r[2]) > 1500);
    }

    [Theory]
    [InlineData("geese", WordNetPos.Noun, "goose")] // noun.exc
    [InlineData("went", WordNetPos.Verb, "go")] // verb.exc
    [InlineData("better", WordNetPos.Adjective, "good")] // adj.exc (better → good, well; the first of the shortest)
    [InlineData("churches", WordNetPos.Noun, "church")] // -ches → -ch
    [InlineData("wolves", WordNetPos.Noun, "wolf")]
    [InlineData("running", WordNetPos.Verb, "run")] // verb.exc
    [InlineData("making", WordNetPos.Verb, "make")] // -ing → -e (for "hoping" both hope and hop are verbs: the shorter wins, as in NLTK)
    [InlineData("larger", WordNetPos.Adjective, "large")] // -er → -e
    [InlineData("nabla", WordNetPos.Noun, "nabla")] // not in WordNet: unchanged
    public void LemmatizesIrregularAndRegularForms(string word, WordNetPos pos, string lemma) =>
        Assert.Equal(lemma, Lemmatizer.Value.Lemmatize(word, pos));

    [Fact]
    public void AMissingDatabaseIsOneLineNamingTheFolder()
    {
        var e = Assert.Throws<InputFileException>(() => WordNetLemmatizer.Load("/nonexistent/wordnet"));
        Assert.Contains("/nonexistent/wordnet", e.Message);
        Assert.Contains("wordnet-base", e.Message);
    }
}
