using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nabla.Autograd;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.Optim;

namespace Nabla.Training;

public sealed record LanguageModelTrainingOptions
{
    public int Steps { get; init; } = 1000;
    /// <summary>Micro-batches summed into one optimisation step.</summary>
    public int GradientAccumulation { get; init; } = 1;
    public float LearningRate { get; init; } = 6e-4f;
    public float MinLearningRate { get; init; } = 6e-5f;
    public int WarmupSteps { get; init; } = 100;
    public float WeightDecay { get; init; } = 0.1f;
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.95f;
    public float ClipGradNorm { get; init; } = 1f;
    /// <summary>Validation loss every this many steps (0: never).</summary>
    public int EvalEvery { get; init; } = 100;
    public int EvalBatches { get; init; } = 10;
    /// <summary>Checkpoint every this many steps (0: only at the end).</summary>
    public int CheckpointEvery { get; init; } = 200;
}

public readonly record struct LmStep(int Step, int TotalSteps, float Loss, float LearningRate, float GradNorm, double TokensPerSecond, double Milliseconds);

/// <summary>
/// Trains a GPT-2 on next-token prediction: AdamW (weight decay on matrices and embeddings only), global
/// gradient clipping, linear warm-up then cosine decay, gradient accumulation, periodic validation, and
/// checkpoints (model, optimizer moments, step) written atomically so that a killed run resumes losing only
/// the steps since the last one. A NaN or infinite loss or gradient stops training with the step and the
/// first offending tensor named.
/// </summary>
public sealed class LanguageModelTrainer
{
    private readonly Gpt2Model _model;
    private readonly IBatchSource _train;
    private readonly IBatchSource? _validation;
    private readonly LanguageModelTrainingOptions _options;
    private readonly AdamW _optimizer;
    private readonly CosineWithWarmup _schedule;

    public LanguageModelTrainer(Gpt2Model model, IBatchSource train, IBatchSource? validation, LanguageModelTrainingOptions options, string? runDirectory)
    {
        _model = model;
        _train = train;
        _validation = validation;
        _options = options;
        RunDirectory = runDirectory;
        if (runDirectory != null) Directory.CreateDirectory(runDirectory);
        var (decay, noDecay) = model.WeightDecayGroups();
        _optimizer = new AdamW([new ParamGroup(decay, weightDecay: options.WeightDecay), new ParamGroup(noDecay, weightDecay: 0)],
            options.LearningRate, options.Beta1, options.Beta2, 1e-8f);
        _schedule = new CosineWithWarmup(_optimizer, options.WarmupSteps, options.Steps, options.MinLearningRate);
    }

    public string? RunDirectory { get; }
    /// <summary>Optimisation steps completed.</summary>
    public int Step { get; private set; }

    public event Action<LmStep>? StepCompleted;
    public event Action<int, double>? Evaluated;
    public event Action<int>? CheckpointSaved;

    private string CheckpointDir => Path.Combine(RunDirectory!, "checkpoint");
    private string MetricsPath => Path.Combine(RunDirectory!, "metrics.jsonl");

    /// <summary>Runs the remaining steps (all of them, or those after a resumed checkpoint).</summary>
    public void Train(CancellationToken cancel = default)
    {
        while (Step < _options.Steps && !cancel.IsCancellationRequested)
        {
            // Each step's activations go back to the pool when it ends, whenever the collector runs.
            using var memory = MemoryScope.Begin();
            var clock = Stopwatch.StartNew();
            _optimizer.ZeroGrad();
            float lossSum = 0;
            long tokens = 0;
            for (int micro = 0; micro < _options.GradientAccumulation; micro++)
            {
                // One scope per micro-batch: accumulating k batches must not hold k batches' activations at once.
                using var microBatch = MemoryScope.Begin();
                var (x, y) = _train.Batch((long)Step * _options.GradientAccumulation + micro);
                _model.Train();
                var loss = Gpt2Model.Loss(_model.Forward(x), y);
                float value = loss.Item();
                if (!float.IsFinite(value))
                    throw new TrainingDivergedException($"The loss became {value} at step {Step + 1}{SupervisedTrainer.FirstNonFinite(_model, gradients: false)}. Lower the learning rate or check the data.");
                loss.Mul(1f / _options.GradientAccumulation).Backward();
                lossSum += value;
                tokens += x.Count;
            }
            float norm = _options.ClipGradNorm > 0
                ? GradientClipping.ClipGradNorm(_model.Parameters(), _options.ClipGradNorm)
                : GradientClipping.ClipGradNorm(_model.Parameters(), float.PositiveInfinity);
            if (!float.IsFinite(norm))
                throw new TrainingDivergedException($"The gradient norm became {norm} at step {Step + 1}{SupervisedTrainer.FirstNonFinite(_model, gradients: true)}.");
            float lr = _optimizer.LearningRate;
            _optimizer.Step();
            _schedule.Step();
            Step++;
            float meanLoss = lossSum / _options.GradientAccumulation;
            double ms = clock.Elapsed.TotalMilliseconds;
            AppendMetrics(new JsonObject { ["step"] = Step, ["loss"] = meanLoss, ["lr"] = lr, ["grad_norm"] = norm, ["tokens_per_second"] = tokens / (ms / 1000), ["ms"] = ms });
            StepCompleted?.Invoke(new LmStep(Step, _options.Steps, meanLoss, lr, norm, tokens / (ms / 1000), ms));

            if (_validation != null && _options.EvalEvery > 0 && (Step % _options.EvalEvery == 0 || Step == _options.Steps))
            {
                double valLoss = Evaluate(_validation, _options.EvalBatches);
                AppendMetrics(new JsonObject { ["step"] = Step, ["val_loss"] = valLoss });
                Evaluated?.Invoke(Step, valLoss);
            }
            if (RunDirectory != null && ((_options.CheckpointEvery > 0 && Step % _options.CheckpointEvery == 0) || Step == _options.Steps))
            {
                SaveCheckpoint();
                CheckpointSaved?.Invoke(Step);
            }
        }
    }

    /// <summary>Mean loss over the first <paramref name="batches"/> batches of a source, without a graph.</summary>
    public double Evaluate(IBatchSource source, int batches)
    {
        _model.Eval();
        using var _ = GradMode.NoGrad();
        double sum = 0;
        for (int i = 0; i < batches; i++)
        {
            using var memory = MemoryScope.Begin();
            var (x, y) = source.Batch(i);
            sum += Gpt2Model.Loss(_model.Forward(x), y).Item();
        }
        _model.Train();
        return sum / Math.Max(1, batches);
    }

    private void AppendMetrics(JsonObject record)
    {
        if (RunDirectory == null) return;
        File.AppendAllText(MetricsPath, record.ToJsonString() + "\n");
    }

    /// <summary>Writes model, optimizer state and step to a fresh directory, then swaps it in: a crash at any
    /// moment leaves the previous checkpoint or the new one whole.</summary>
    public void SaveCheckpoint()
    {
        var tmp = CheckpointDir + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        _model.Save(Path.Combine(tmp, "model.safetensors"), new Dictionary<string, string> { ["format"] = "nabla-gpt2", ["step"] = Step.ToString() });
        SafeTensors.Save(Path.Combine(tmp, "optimizer.safetensors"), _optimizer.StateDict());
        AtomicFile.WriteAllText(Path.Combine(tmp, "trainer.json"), new JsonObject
        {
            ["step"] = Step,
            ["config"] = JsonNode.Parse(_model.Config.ToJson()),
            ["options"] = JsonNode.Parse(JsonSerializer.Serialize(_options)),
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var old = CheckpointDir + ".old";
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        if (Directory.Exists(CheckpointDir)) Directory.Move(CheckpointDir, old);
        Directory.Move(tmp, CheckpointDir);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }

    /// <summary>Loads the run's last checkpoint, if any, and continues from its step (metrics logged after it
    /// are dropped: those steps run again). Returns the step resumed from, or null.</summary>
    public int? TryResume()
    {
        if (RunDirectory == null) return null;
        // A crash between the two renames of SaveCheckpoint leaves only checkpoint.old.
        var dir = Directory.Exists(CheckpointDir) ? CheckpointDir : Directory.Exists(CheckpointDir + ".old") ? CheckpointDir + ".old" : null;
        if (dir == null) return null;
        var statePath = Path.Combine(dir, "trainer.json");
        JsonNode state;
        try { state = JsonNode.Parse(File.ReadAllText(statePath)) ?? throw new CheckpointException($"{statePath}: empty."); }
        catch (Exception e) when (e is JsonException or IOException) { throw new CheckpointException($"{statePath}: cannot read the trainer state ({e.Message}).", e); }
        var savedConfig = Gpt2Config.FromJson(state["config"]!.ToJsonString(), statePath);
        if (savedConfig != _model.Config)
            throw new CheckpointException($"{statePath}: the checkpoint is of a different model ({savedConfig}) than the one being trained ({_model.Config}).");
        _model.Load(Path.Combine(dir, "model.safetensors"));
        var optimizerPath = Path.Combine(dir, "optimizer.safetensors");
        _optimizer.LoadStateDict(SafeTensors.Load(optimizerPath), optimizerPath);
        Step = state["step"]!.GetValue<int>();
        _schedule.SetStep(Step);
        if (File.Exists(MetricsPath))
        {
            var kept = File.ReadAllLines(MetricsPath).Where(line => JsonNode.Parse(line)?["step"]?.GetValue<int>() <= Step);
            AtomicFile.WriteAllText(MetricsPath, string.Concat(kept.Select(l => l + "\n")));
        }
        return Step;
    }
}
