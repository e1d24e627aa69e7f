using Nabla.Text;

namespace Nabla.Tests.Text;

public class StreamingDecoderTests
{
    [Fact]
    public void CharactersSplitAcrossTokensAreHeldBackUntilComplete()
    {
        var gpt2 = TextTestData.Gpt2;
        const string text = "naïve 🤗 日本語 ok";
        var ids = gpt2.Encode(text);
        var decoder = new StreamingDecoder(gpt2);
        var pieces = ids.Select(decoder.Next).ToList();
        Assert.Equal(text, string.Concat(pieces));
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
        // the emoji's four UTF-8 bytes span several tokens: the ones that end mid-character yield nothing
        Assert.True(ids.Length > text.Split(' ').Length + 3, $"expected some characters to be split across tokens: {ids.Length} ids");
        Assert.Contains(pieces, p => p.Length == 0);
    }

    [Fact]
    public void ACharacterTokenizerDecodesTokenByToken()
    {
        var chars = CharTokenizer.FromText("abc");
        var decoder = new StreamingDecoder(chars);
        Assert.Equal("cab", string.Concat(chars.Encode("cab").Select(decoder.Next)));
    }
}
