namespace Nabla.Cli.Runs;

/// <summary>The run directory of a `nabla train` command: --out, or a new one under runs/; the same rules for
/// every model kind.</summary>
internal static class RunDirectory
{
    /// <summary>--out, or runs/PREFIX-TIME when it is not given.</summary>
    public static string ForNewRun(string? output, string prefix) =>
        output ?? Path.Combine("runs", $"{prefix}-{DateTime.Now:yyyyMMdd-HHmmss}");

    /// <summary>A new run must not overwrite one: its directory must not hold a config.json yet.</summary>
    public static void RefuseExistingRun(string directory, string configPath)
    {
        if (File.Exists(configPath))
            throw new CliException($"{directory} already holds a training run; pass --resume to continue it or choose another --out.");
    }

    /// <summary>The directory --resume continues: --out, which it needs.</summary>
    public static string ToResume(string? output) =>
        output ?? throw new CliException("--resume needs --out: the run directory to continue.");
}
