using Nabla.Text.Preprocessing;

namespace Nabla.Tests.Text.Preprocessing;

public sealed class TextPreprocessorTests
{
    private const string Sentence = "The \uFB01shermen didn't catch 12 fish in 2026: they're RUNNING home!";

    [Fact]
    public void TokenizesWordsWithInnerApostrophesAndHyphensAndPunctuationMarksApart() =>
        Assert.Equal(["o'clock", "well-known", ",", "\u00E9t\u00E9", "3", ".", "5", "!", "!"], TextPreprocessor.Tokenize("o'clock well-known, \u00E9t\u00E9 3.5!!"));

    [Fact]
    public void DefaultPipelineNormalisesExpandsContractionsAndLowercases() =>
        Assert.Equal(["the", "fishermen", "did", "not", "catch", "12", "fish", "in", "2026", ":", "they", "are", "running", "home", "!"],
            new TextPreprocessor().Tokens(Sentence));

    private static readonly TextPreprocessor EveryFilter = new() { RemoveDigitWords = true, RemovePunctuation = true, RemoveStopWords = true };

    [Fact]
    public void FiltersThenStems() =>
        Assert.Equal(["fishermen", "not", "catch", "fish", "run", "home"], (EveryFilter with { Reduction = WordReduction.PorterStem }).Tokens(Sentence));

    [Fact]
    public void FiltersThenLemmatizesAsNounElseVerb() =>
        Assert.Equal(["fisherman", "not", "catch", "fish", "run", "home"],
            (EveryFilter with { Reduction = WordReduction.Lemmatize, Lemmatizer = WordNetLemmatizer.Load() }).Tokens(Sentence));
}
