using Nabla.Cli;
using Nabla.Data;
using Nabla.IO;

namespace Nabla.Tests.Cli;

public class CliErrorsTests
{
    [Fact]
    public void UserProblemsAreReportedAsWordedByTheCodeThatFoundThem()
    {
        Assert.Equal("a.csv:3: bad", CliErrors.Describe(new DataFormatException("a.csv:3: bad")));
        Assert.Equal("m.safetensors: truncated", CliErrors.Describe(new AggregateException(new CheckpointException("m.safetensors: truncated"))));
        Assert.Equal("x: is a directory, expected y.", CliErrors.Describe(new InputFileException("x: is a directory, expected y.")));
    }

    [Fact]
    public void AnythingElseIsLabelledAnInternalError()
    {
        foreach (var bug in new Exception[] { new NullReferenceException("boom"), new IndexOutOfRangeException("boom"), new ArgumentOutOfRangeException("i", "boom"),
            new EndOfStreamException("boom"), new System.Text.Json.JsonException("boom") })
        {
            var message = CliErrors.Describe(bug);
            Assert.StartsWith($"internal error: {bug.GetType().Name}: ", message);
            Assert.Contains("NABLA_DEBUG=1", message);
        }
    }

    [Fact]
    public void ProjectErrorsAlwaysHaveOneLine()
    {
        Assert.Equal("f.json: bad value 'a b' here", new CheckpointException("f.json: bad value 'a\nb' here").Message);
        Assert.DoesNotContain('\n', new CliException("x\r\ny").Message);
        Assert.DoesNotContain('\u0001', new DataFormatException("x\u0001y").Message);
    }
}
