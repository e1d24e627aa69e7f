using Nabla.Data;
using Nabla.IO;
using Nabla.Models;
using Nabla.NN;
using Nabla.Training;

namespace Nabla.Cli.Runs;

/// <summary>
/// A run directory: config.json, preprocessor.json, model.safetensors (written atomically after every epoch),
/// checkpoints/ (model and optimizer, for --resume), metrics.jsonl (a line per step and per epoch's validation)
/// and loss/accuracy charts.
/// </summary>
public sealed class MlpRun(string directory)
{
    public string Directory { get; } = directory;
    public string ConfigPath => Path.Combine(Directory, "config.json");
    public string PreprocessorPath => Path.Combine(Directory, "preprocessor.json");
    public string CheckpointPath => Path.Combine(Directory, "model.safetensors");

    public static Mlp BuildModel(MlpRunConfig config, TabularPreprocessor prep, Generator? generator = null) =>
        new(prep.FeatureCount, config.Hidden, prep.OutputCount, config.Activation, config.Dropout, generator);

    /// <summary>Cross-entropy on class indices for classification, mean squared error for regression.</summary>
    public static Func<Tensor, Tensor, Tensor> Loss(bool classification) =>
        classification ? (logits, labels) => F.CrossEntropy(logits, labels) : (predictions, values) => F.MseLoss(predictions, values);

    /// <summary>Accuracy for classification; nothing beyond the loss for regression.</summary>
    public static Dictionary<string, Func<Tensor, Tensor, double>> Metrics(bool classification) =>
        classification ? new() { ["accuracy"] = Evaluation.Accuracy } : new();

    public TabularPreprocessor LoadPreprocessor()
    {
        if (!Path.Exists(PreprocessorPath)) throw new CliException($"{PreprocessorPath}: not found; the run is incomplete.");
        return TabularPreprocessor.Load(PreprocessorPath);
    }

    /// <summary>The model, preprocessor and config of a finished (or interrupted) run.</summary>
    public (MlpRunConfig Config, TabularPreprocessor Preprocessor, Mlp Model) Load()
    {
        if (!System.IO.Directory.Exists(Directory)) throw new CliException($"{Directory}: run directory not found.");
        var config = MlpRunConfig.Load(ConfigPath);
        var prep = LoadPreprocessor();
        if (!File.Exists(CheckpointPath)) throw new CliException($"{CheckpointPath}: not found; the run has not finished an epoch.");
        var model = BuildModel(config, prep);
        model.Load(CheckpointPath);
        foreach (var (name, weights) in model.NamedParameters())
            if (weights.ToArray().Any(v => !float.IsFinite(v)))
                throw new CliException($"{CheckpointPath}: tensor '{name}' holds NaN or infinite values; the model is unusable (did training diverge?).");
        return (config, prep, model);
    }
}
