using Xunit.Sdk;

namespace Nabla.Tests.Text;

public class TextTestDataTests
{
    [Fact]
    public void MissingDataFailsNamingTheFetchScript()
    {
        var failure = Assert.ThrowsAny<XunitException>(() => TextTestData.PathOf("no-such-corpus.txt"));
        Assert.Contains("tests/data/fetch-test-data.sh", failure.Message);
        Assert.Contains("no-such-corpus.txt", failure.Message);
    }
}
