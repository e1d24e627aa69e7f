using Nabla.IO;
using Nabla.Text.Preprocessing;

namespace Nabla.Tests.Text.Preprocessing;

public sealed class WordVocabularyTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("nabla-vocabulary").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private static readonly string[][] Documents =
    [
        ["the", "cat", "sat", "on", "the", "mat"],
        ["the", "dog", "sat"],
        ["a", "cat", "and", "a", "dog"],
    ];

    [Fact]
    public void OrdersByFrequencyThenAlphabeticallyAfterPadAndUnknown()
    {
        var vocabulary = WordVocabulary.Build(Documents);
        // the: 3; a, cat, dog, sat: 2; and, mat, on: 1.
        Assert.Equal(["<pad>", "<unk>", "the", "a", "cat", "dog", "sat", "and", "mat", "on"], Enumerable.Range(0, vocabulary.Count).Select(i => vocabulary[i]));
    }

    [Fact]
    public void MinimumFrequencyAndMaximumSizeCutTheRareWords()
    {
        var frequent = WordVocabulary.Build(Documents, minFrequency: 2);
        Assert.Equal(7, frequent.Count); // <pad>, <unk>, the, a, cat, dog, sat
        Assert.Equal(WordVocabulary.UnknownId, frequent.IdOf("mat"));
        var small = WordVocabulary.Build(Documents, maxSize: 4);
        Assert.Equal(["<pad>", "<unk>", "the", "a"], Enumerable.Range(0, small.Count).Select(i => small[i]));
    }

    [Fact]
    public void EncodesUnknownWordsAsUnkAndDecodesWithoutPadding()
    {
        var vocabulary = WordVocabulary.Build(Documents);
        Assert.Equal([2, 4, 1], vocabulary.Encode(["the", "cat", "zebra"]));
        Assert.Equal(["the", "cat", "<unk>"], vocabulary.Decode([2, 4, 1, 0, 0]));
    }

    [Fact]
    public void SavesAndLoads()
    {
        var vocabulary = WordVocabulary.Build(Documents);
        var path = Path.Combine(directory, "vocab.json");
        vocabulary.Save(path);
        var loaded = WordVocabulary.Load(path);
        Assert.Equal(Enumerable.Range(0, vocabulary.Count).Select(i => vocabulary[i]), Enumerable.Range(0, loaded.Count).Select(i => loaded[i]));
    }

    [Theory]
    [InlineData("{\"type\": \"char\", \"tokens\": [\"<pad>\", \"<unk>\"]}")]
    [InlineData("{\"type\": \"words\", \"tokens\": [\"<unk>\", \"<pad>\"]}")]
    [InlineData("{\"type\": \"words\", \"tokens\": [\"<pad>\", \"<unk>\", \"a\", \"a\"]}")]
    [InlineData("not json")]
    public void ABadFileIsOneLineNamingIt(string content)
    {
        var path = Path.Combine(directory, "bad.json");
        File.WriteAllText(path, content);
        var e = Assert.Throws<InputFileException>(() => WordVocabulary.Load(path));
        Assert.StartsWith(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
