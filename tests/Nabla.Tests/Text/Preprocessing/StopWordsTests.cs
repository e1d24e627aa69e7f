using Nabla.Text.Preprocessing;

namespace Nabla.Tests.Text.Preprocessing;

public sealed class StopWordsTests
{
    [Fact]
    public void TheEnglishListIsNpmStopwordsEngList()
    {
        var reference = File.ReadAllLines(TestData.Fixture(Path.Combine("text", "stopwords_eng.txt")));
        Assert.Equal(reference, StopWords.EnglishList);
        Assert.Equal(108, StopWords.English.Count);
    }

    [Fact]
    public void RemovesStopWordsAndKeepsNegations() =>
        Assert.Equal(["cat", "not", "happy"], StopWords.Remove(["the", "cat", "was", "not", "happy"]));
}
