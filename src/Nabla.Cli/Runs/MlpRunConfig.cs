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

    public static MlpRunConfig Load(string path) => RunConfigFile.Read<MlpRunConfig>(path, c => c.Problem(), Json);

    /// <summary>Widest hidden layer and most weights accepted, so a corrupt or mistyped size fails at once
    /// instead of allocating gigabytes.</summary>
    public const int MaxHiddenWidth = 1 << 16;
    public const long MaxHiddenWeights = 1L << 26;

    /// <summary>What is wrong with the values (as a config.json or the command line may give them), or null.</summary>
    public string? Problem()
    {
        if (string.IsNullOrEmpty(Csv)) return "\"Csv\" is missing";
        if (string.IsNullOrEmpty(Target)) return "\"Target\" is missing";
        if (Hidden is null) return "\"Hidden\" is missing";
        if (Hidden.Any(h => h is <= 0 or > MaxHiddenWidth)) return $"hidden sizes [{string.Join(", ", Hidden)}] must each be between 1 and {MaxHiddenWidth}";
        long weights = 0;
        for (int i = 1; i < Hidden.Length; i++) weights += (long)Hidden[i - 1] * Hidden[i];
        if (weights > MaxHiddenWeights) return $"hidden sizes [{string.Join(", ", Hidden)}] make {weights:N0} weights, more than the {MaxHiddenWeights:N0} allowed";
        if (!Enum.IsDefined(Task)) return $"task {Task} is not classification, regression or auto";
        if (Activation is null || Optimizer is null) return "\"Activation\" or \"Optimizer\" is missing";
        if (SkipRows < 0) return $"skip rows {SkipRows} is negative";
        if (!(Dropout is >= 0 and < 1)) return $"dropout {Dropout} is not in [0, 1)";
        if (Epochs is <= 0 or > 1_000_000) return $"epochs {Epochs} is not between 1 and 1,000,000";
        if (BatchSize is <= 0 or > 1 << 24) return $"batch size {BatchSize} is not between 1 and {1 << 24}";
        if (!float.IsFinite(LearningRate) || LearningRate <= 0) return $"learning rate {LearningRate} is not a finite positive number";
        if (!float.IsFinite(WeightDecay) || WeightDecay < 0) return $"weight decay {WeightDecay} is not a finite non-negative number";
        if (!float.IsFinite(Momentum) || Momentum is < 0 or >= 1) return $"momentum {Momentum} is not in [0, 1)";
        if (!(ValidationFraction is > 0 and < 1)) return $"validation fraction {ValidationFraction} is not between 0 and 1";
        return null;
    }
}
