using System.Text;
using Nabla.Text.Preprocessing;

namespace Nabla.Tests.Text.Preprocessing;

public sealed class TextCleaningTests
{
    [Fact]
    public void NfkcFoldsCompatibilityCharactersAndComposesAccents()
    {
        Assert.Equal("fish", TextCleaning.Normalize("\uFB01sh")); // ligature ﬁ
        Assert.Equal("ABC 2", TextCleaning.Normalize("\uFF21\uFF22\uFF23 \u00B2")); // full-width letters, superscript two
        Assert.Equal("caf\u00E9", TextCleaning.Normalize("cafe\u0301")); // e + combining acute → é
        Assert.Equal("\uFB01", TextCleaning.Normalize("\uFB01", NormalizationForm.FormC)); // NFC keeps the ligature
    }

    [Fact]
    public void StripsAccents() => Assert.Equal("cafe naive Ecole", TextCleaning.StripAccents("café naïve École"));

    [Fact]
    public void LowercasesBeyondAscii() => Assert.Equal("àéî σασ strasse", TextCleaning.Lowercase("ÀÉÎ ΣΑΣ STRASSE"));

    [Fact]
    public void ReplacesPunctuationBySpacesAndKeepsSymbols()
    {
        Assert.Equal("end  Start    quoted   $5 + 3  ", TextCleaning.RemovePunctuation("end. Start; \"«quoted»\" $5 + 3!?"));
        Assert.Equal("a   b", TextCleaning.RemovePunctuation("a — b")); // an em dash is punctuation too
    }

    [Fact]
    public void RemovesWordsContainingDigits() =>
        Assert.Equal("in  the  file was  long", TextCleaning.RemoveDigitWords("in 2026 the mp3 file was 3.5min long"));

    [Theory]
    [InlineData("I don't know", "I do not know")]
    [InlineData("Don't stop", "Do not stop")]
    [InlineData("they\u2019re here", "they are here")] // typographic apostrophe
    [InlineData("we can't, won't and shan't", "we cannot, will not and shall not")]
    [InlineData("it's John's book", "it is John's book")] // possessive left alone
    [InlineData("Let's go at 5 o'clock", "Let us go at 5 of the clock")]
    public void ExpandsContractions(string text, string expanded) => Assert.Equal(expanded, TextCleaning.ExpandContractions(text));
}
