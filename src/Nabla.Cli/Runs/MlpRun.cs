using System.Text.Json;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models;

namespace Nabla.Cli.Runs;

/// <summary>
/// A run directory: config.json, preprocessor.json, model.safetensors (written atomically after every epoch),
/// metrics.jsonl (one line per epoch) and loss/accuracy charts.
/// </summary>
public sealed class MlpRun(string directory)
{
    public string Directory { get; } = directory;
    public string ConfigPath => Path.Combine(Directory, "config.json");
    public string PreprocessorPath => Path.Combine(Directory, "preprocessor.json");
    public string CheckpointPath => Path.Combine(Directory, "model.safetensors");
    public string MetricsPath => Path.Combine(Directory, "metrics.jsonl");

    public static Mlp BuildModel(MlpRunConfig config, TabularPreprocessor prep, Generator? generator = null) =>
        new(prep.FeatureCount, config.Hidden, prep.OutputCount, config.Activation, config.Dropout, generator);

    /// <summary>The model, preprocessor and config of a finished (or interrupted) run.</summary>
    public (MlpRunConfig Config, TabularPreprocessor Preprocessor, Mlp Model) Load()
    {
        if (!System.IO.Directory.Exists(Directory)) throw new CliException($"{Directory}: run directory not found.");
        var config = MlpRunConfig.Load(ConfigPath);
        if (!Path.Exists(PreprocessorPath)) throw new CliException($"{PreprocessorPath}: not found; the run is incomplete.");
        var prep = TabularPreprocessor.Load(PreprocessorPath);
        if (!File.Exists(CheckpointPath)) throw new CliException($"{CheckpointPath}: not found; the run has not finished an epoch.");
        var model = BuildModel(config, prep);
        model.Load(CheckpointPath);
        foreach (var (name, weights) in model.NamedParameters())
            if (weights.ToArray().Any(v => !float.IsFinite(v)))
                throw new CliException($"{CheckpointPath}: tensor '{name}' holds NaN or infinite values; the model is unusable (did training diverge?).");
        return (config, prep, model);
    }

    public void AppendMetrics(object record)
    {
        using var writer = File.AppendText(MetricsPath);
        writer.WriteLine(JsonSerializer.Serialize(record));
    }
}
