using Nabla.Text;

namespace Nabla.Tests.Text;

public sealed class CharTokenizerTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("nabla-char-tokenizer").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private string PathOf(string name) => Path.Combine(directory, name);

    [Fact]
    public void VocabularyIsTheSortedDistinctCharacters()
    {
        var tokenizer = CharTokenizer.FromText("hello world");
        Assert.Equal([" ", "d", "e", "h", "l", "o", "r", "w"], tokenizer.Characters);
        Assert.Equal(8, tokenizer.VocabSize);
        Assert.Equal([3, 2, 4, 4, 5, 0, 7, 5, 6, 4, 1], tokenizer.Encode("hello world"));
        Assert.Equal("hello world", tokenizer.Decode(tokenizer.Encode("hello world")));
        Assert.Empty(tokenizer.Encode(""));
    }

    [Fact]
    public void KingJamesBibleRoundTrips()
    {
        string kjv = TextTestData.Kjv;
        var tokenizer = CharTokenizer.FromText(kjv);
        int[] ids = tokenizer.Encode(kjv);
        Assert.Equal(kjv.Length, ids.Length);
        Assert.Equal(kjv, tokenizer.Decode(ids));
        Assert.InRange(tokenizer.VocabSize, 63, 80);
    }

    [Fact]
    public void CharactersOutsideTheBmpAreOneToken()
    {
        const string text = "a😀b👍🏽𝐀é\u0301";
        var tokenizer = CharTokenizer.FromText(text);
        // a, 😀, b, 👍, skin tone, 𝐀, é, combining acute: code points, not UTF-16 units or graphemes.
        Assert.Equal(8, tokenizer.Encode(text).Length);
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        Assert.Equal(["a", "b", "é", "\u0301", "𝐀", "🏽", "👍", "😀"], tokenizer.Characters);
    }

    [Fact]
    public void GivenVocabularyKeepsItsOrder()
    {
        var tokenizer = new CharTokenizer(["z", "a", "\n"]);
        Assert.Equal([1, 0, 2], tokenizer.Encode("az\n"));
    }

    [Fact]
    public void UnknownCharacterIsNamedWithItsPosition()
    {
        var tokenizer = CharTokenizer.FromText("abc");
        var error = Assert.Throws<ArgumentException>(() => tokenizer.Encode("abcaz"));
        Assert.Contains("'z' (U+007A) at position 4", error.Message);

        error = Assert.Throws<ArgumentException>(() => tokenizer.Encode("ab😀"));
        Assert.Contains("'😀' (U+1F600) at position 2", error.Message);
    }

    [Fact]
    public void UnpairedSurrogateIsAnError()
    {
        var error = Assert.Throws<ArgumentException>(() => CharTokenizer.FromText("ab\uD800c"));
        Assert.Contains("U+D800 at position 2", error.Message);
    }

    [Fact]
    public void InvalidVocabulariesAreRejected()
    {
        Assert.Contains("both \"a\"", Assert.Throws<ArgumentException>(() => new CharTokenizer(["a", "b", "a"])).Message);
        Assert.Contains("entry 1 (\"ab\")", Assert.Throws<ArgumentException>(() => new CharTokenizer(["x", "ab"])).Message);
        Assert.Throws<ArgumentException>(() => new CharTokenizer([""]));
    }

    [Fact]
    public void DecodeRejectsIdsOutsideTheVocabulary()
    {
        var tokenizer = CharTokenizer.FromText("abc");
        Assert.Contains("token id 3", Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([0, 3])).Message);
    }

    [Fact]
    public void SaveAndLoadRoundTrip()
    {
        var tokenizer = CharTokenizer.FromText("quote\" backslash\\ newline\n tab\t é 中 😀 \u0000 \u2028");
        tokenizer.Save(PathOf("chars.json"));
        var loaded = CharTokenizer.Load(PathOf("chars.json"));
        Assert.Equal(tokenizer.Characters, loaded.Characters);
    }

    [Fact]
    public void MissingFileIsNamed()
    {
        Assert.StartsWith($"{PathOf("absent.json")}: file not found",
            Assert.Throws<TokenizerFileException>(() => CharTokenizer.Load(PathOf("absent.json"))).Message);
    }

    [Theory]
    [InlineData("{\n  \"type\": \"char\",\n  \"characters\": [\"a\", \"b\"\n", 4, "corrupt JSON")]           // truncated
    [InlineData("{\n  \"type\": \"char\",\n  \"characters\": [\"a\",\n 7]\n}", 4, "character 1 is not a string")]
    [InlineData("[\"a\"]", 1, "expected a JSON object")]
    [InlineData("{\n\"type\": \"char\",\n\"extra\": 1}", 3, "unexpected property \"extra\"")]
    public void CorruptFileNamesFileAndLine(string content, int line, string problem)
    {
        File.WriteAllText(PathOf("bad.json"), content);
        string message = Assert.Throws<TokenizerFileException>(() => CharTokenizer.Load(PathOf("bad.json"))).Message;
        Assert.StartsWith($"{PathOf("bad.json")}:{line}: ", message);
        Assert.Contains(problem, message);
    }

    [Theory]
    [InlineData("{\"type\": \"bpe\", \"characters\": []}", "\"type\" is \"bpe\"")]
    [InlineData("{\"type\": \"char\"}", "no \"characters\"")]
    [InlineData("{\"type\": \"char\", \"characters\": [\"a\", \"a\"]}", "both \"a\"")]
    public void WrongContentNamesFile(string content, string problem)
    {
        File.WriteAllText(PathOf("bad.json"), content);
        string message = Assert.Throws<TokenizerFileException>(() => CharTokenizer.Load(PathOf("bad.json"))).Message;
        Assert.StartsWith(PathOf("bad.json"), message);
        Assert.Contains(problem, message);
    }

    [Fact]
    public void ImplementsTheCommonInterface()
    {
        ITokenizer tokenizer = CharTokenizer.FromText("xyz");
        Assert.Equal(3, tokenizer.VocabSize);
        Assert.Equal("zyx", tokenizer.Decode(tokenizer.Encode("zyx")));
        ITokenizer gpt2 = TextTestData.Gpt2;
        Assert.Equal("zyx", gpt2.Decode(gpt2.Encode("zyx")));
    }
}
