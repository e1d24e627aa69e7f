using System.Text.Json;
using Nabla.IO;

namespace Nabla.Cli.Runs;

/// <summary>A run's config.json: written once when the run starts, read back by --resume so the run is rebuilt as it began.</summary>
internal static class RunConfigFile
{
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Reads a run configuration (for --resume, eval, predict); a missing, corrupt or out-of-range one is an error
    /// naming the file (<paramref name="problem"/> says what is out of range, or null).</summary>
    /// <param name="json">The serializer options the configuration was written with (default <see cref="Json"/>).</param>
    public static T Read<T>(string path, Func<T, string?> problem, JsonSerializerOptions? json = null) where T : class
    {
        if (!File.Exists(path)) throw new CliException($"{path}: not found; {Path.GetDirectoryName(path)} holds no training run.");
        T config;
        try
        {
            config = JsonSerializer.Deserialize<T>(BoundedFile.ReadAllText(path, BoundedFile.SmallFileLimit, "a run configuration"), json ?? Json)
                ?? throw new CliException($"{path}: empty.");
        }
        catch (JsonException e)
        {
            throw new CliException($"{path}: corrupt run configuration ({ErrorText.Json(e)}).");
        }
        if (problem(config) is { } wrong) throw new CliException($"{path}: {wrong}; the run configuration is corrupt.");
        return config;
    }

    /// <summary>The SHA-256 of a run's input file (its text, its CSV), kept in its config.json so that --resume can tell
    /// when the file changed (<see cref="RequireUnchanged"/>).</summary>
    public static string Sha256(string path) => Downloader.Hash(path);

    /// <summary>Refuses to resume the run in <paramref name="directory"/> on an input file that is not the one it started with.</summary>
    public static void RequireUnchanged(string path, string sha256, string directory)
    {
        if (!File.Exists(path)) throw new CliException($"{path}: file not found; the run in {directory} trains on it.");
        if (Downloader.Hash(path) != sha256)
            throw new CliException($"{path} changed since the run in {directory} started (its SHA-256 differs); resuming would train on other data. Start a new run.");
    }

    /// <summary>Starts a new run in <paramref name="directory"/> by writing its configuration; a directory that already
    /// holds a run is refused.</summary>
    public static void WriteNew<T>(string directory, string path, T config)
    {
        RunDirectory.RefuseExistingRun(directory, path);
        Directory.CreateDirectory(directory);
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(config, Json));
    }
}
