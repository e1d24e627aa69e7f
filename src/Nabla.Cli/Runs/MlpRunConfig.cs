using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Nabla.Data;

namespace Nabla.Cli.Runs;

/// <summary>Everything that defines an MLP training run; saved as config.json in the run directory.</summary>
public sealed record MlpRunConfig
{
    /// <summary>Path of the CSV file, or "builtin:iris" for the dataset inside the program.</summary>
    public string Csv { get; init; } = BuiltinIris;
    public string Target { get; init; } = "species";
    public bool NoHeader { get; init; }
    public int SkipRows { get; init; }
    public TabularTask Task { get; init; } = TabularTask.Auto;
    public int[] Hidden { get; init; } = [128, 64];
    public string Activation { get; init; } = "relu";
    public float Dropout { get; init; }
    public int Epochs { get; init; } = 60;
    public int BatchSize { get; init; } = 32;
    public float LearningRate { get; init; } = 1e-3f;
    public string Optimizer { get; init; } = "adamw";
    public float WeightDecay { get; init; } = 1e-4f;
    public float Momentum { get; init; } = 0.9f;
    public double ValidationFraction { get; init; } = 0.2;
    public ulong Seed { get; init; } = 42;

    public const string BuiltinIris = "builtin:iris";

    public CsvOptions CsvOptions => new() { HasHeader = !NoHeader, SkipRows = SkipRows };

    /// <summary>Reads the CSV the config names (from disk, or from the program's resources).</summary>
    public CsvTable ReadTable()
    {
        if (!Csv.StartsWith("builtin:", StringComparison.Ordinal)) return CsvTable.Read(Csv, CsvOptions);
        var name = Csv["builtin:".Length..];
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream($"Nabla.Cli.Datasets.{name}.csv")
            ?? throw new CliException($"There is no built-in dataset '{name}' (available: iris).");
        using var reader = new StreamReader(stream);
        return CsvTable.Parse(reader, Csv, CsvOptions);
    }

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static MlpRunConfig Load(string path)
    {
        if (!File.Exists(path)) throw new CliException($"{path}: not found (is this a run directory written by `nabla train mlp`?).");
        try
        {
            return JsonSerializer.Deserialize<MlpRunConfig>(File.ReadAllText(path), Json) ?? throw new CliException($"{path}: empty config.");
        }
        catch (JsonException e)
        {
            throw new CliException($"{path}: corrupt config ({e.Message}).");
        }
    }
}
