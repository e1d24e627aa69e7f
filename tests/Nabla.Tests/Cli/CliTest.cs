namespace Nabla.Tests.Cli;

/// <summary>What every CLI test class has: a temporary directory of its own for each test, deleted after it, and the
/// checks of a command's result. (Each subclass joins the "Console" collection, since <see cref="CliRunner"/> redirects
/// the console.)</summary>
public abstract class CliTest : IDisposable
{
    protected string TempDir { get; } = Directory.CreateTempSubdirectory("nabla-cli-").FullName;

    public void Dispose()
    {
        if (Directory.Exists(TempDir)) Directory.Delete(TempDir, recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>The command succeeded; otherwise the failure shows its output.</summary>
    public static void Ok((int Exit, string Out, string Err) r) => Assert.True(r.Exit == 0, $"exit {r.Exit}\n{r.Out}\n{r.Err}");

    /// <summary>The command failed with exit code 1 and one line "error: ..." on stderr, which is returned.</summary>
    public static string OneLineError((int Exit, string Out, string Err) r)
    {
        Assert.True(r.Exit == 1, $"exit {r.Exit}, expected 1\n{r.Out}\n{r.Err}");
        var line = r.Err.TrimEnd('\n');
        Assert.DoesNotContain('\n', line);
        Assert.StartsWith("error: ", line);
        return line;
    }
}
