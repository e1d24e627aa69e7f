using Nabla.Text.Preprocessing;

namespace Nabla.Tests.Text.Preprocessing;

public sealed class PorterStemmerTests
{
    private static void AssertAllMatch(List<string[]> pairs)
    {
        var wrong = pairs.Where(p => PorterStemmer.Stem(p[0]) != p[1]).Select(p => $"{p[0]}: expected {p[1]}, got {PorterStemmer.Stem(p[0])}").ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {pairs.Count} words stemmed differently, e.g. {string.Join("; ", wrong.Take(10))}");
    }

    [Fact]
    public void MatchesPortersPublishedOutputOnHisWholeVocabulary()
    {
        var pairs = ReferenceFiles.Rows("porter_vocabulary.tsv.gz");
        Assert.Equal(23531, pairs.Count);
        AssertAllMatch(pairs);
    }

    [Fact]
    public void MatchesPortersJavaScriptOnWordNetLemmas()
    {
        var pairs = ReferenceFiles.Rows("porter_wordnet.tsv.gz");
        Assert.Equal(6000, pairs.Count);
        AssertAllMatch(pairs);
    }

    [Theory]
    // Examples of the paper's steps (Porter 1980), whole words through all steps; the paper's intermediate results in comments.
    [InlineData("caresses", "caress")]
    [InlineData("ponies", "poni")]
    [InlineData("cats", "cat")]
    [InlineData("agreed", "agre")] // 1b: agree, 5a: agre
    [InlineData("plastered", "plaster")]
    [InlineData("hopping", "hop")]
    [InlineData("filing", "file")] // 1b: fil + e
    [InlineData("happy", "happi")]
    [InlineData("relational", "relat")] // 2: relate, 5a: relat
    [InlineData("generalizations", "gener")]
    [InlineData("controlling", "control")] // 5b: controll → control
    [InlineData("is", "is")] // two letters: untouched
    public void FollowsThePapersExamples(string word, string stem) => Assert.Equal(stem, PorterStemmer.Stem(word));
}
