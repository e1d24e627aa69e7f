using System.Text.Json;
using Nabla.IO;

namespace Nabla.Cli.Runs;

/// <summary>A run's config.json: everything that defines the run, written when it starts and read back by
/// --resume, eval and predict, with one clear line when it is missing or damaged.</summary>
public static class RunConfigFile
{
    public const string Name = "config.json";

    public static void Save<T>(string path, T config, JsonSerializerOptions json) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(config, json));

    /// <param name="writtenBy">The command that writes such runs, for the message when there is none (`nabla train mlp`).</param>
    public static T Load<T>(string path, JsonSerializerOptions json, string writtenBy) where T : class
    {
        if (!File.Exists(path)) throw new CliException($"{path}: not found (is this a run directory written by {writtenBy}?).");
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path), json) ?? throw new CliException($"{path}: empty config.");
        }
        catch (JsonException e)
        {
            throw new CliException($"{path}: corrupt run configuration ({e.Message}).");
        }
    }
}
