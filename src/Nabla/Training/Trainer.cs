using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nabla.Autograd;
using Nabla.Data;
using Nabla.Distributed;
using Nabla.IO;
using Nabla.NN;
using Nabla.Optim;

namespace Nabla.Training;

/// <summary>Training stopped because a loss or gradient stopped being a finite number.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>How long and how a <see cref="Trainer"/> trains.</summary>
public sealed record TrainerOptions
{
    /// <summary>Optimisation steps in the whole run.</summary>
    public int Steps { get; init; } = 1000;
    /// <summary>Micro-batches whose gradients are summed (each scaled by 1/k) into one optimisation step.</summary>
    public int GradientAccumulation { get; init; } = 1;
    /// <summary>Clip the global gradient norm to this (0: no clipping; the norm is still measured and logged).</summary>
    public float ClipGradNorm { get; init; }
    /// <summary>Validation every this many steps and after the last one (0: never).</summary>
    public int EvalEvery { get; init; }
    /// <summary>Batches of the validation source per evaluation.</summary>
    public int EvalBatches { get; init; } = 10;
    /// <summary>Checkpoint every this many steps (0: only after the last one). Needs a run directory.</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Seeds the default generator before every micro-batch (from this, the step and the micro-batch),
    /// so dropout masks are a function of the step: a resumed run draws the same ones as an uninterrupted run.</summary>
    public ulong Seed { get; init; }
    /// <summary>With several ranks: compare the ranks' parameters every this many steps (0: never), stopping if they differ.</summary>
    public int ChecksumEvery { get; init; } = 100;
    /// <summary>With several ranks: gradients are averaged in buckets of about this many bytes (PyTorch DDP's 25 MiB).</summary>
    public long GradientBucketBytes { get; init; } = GradientBuckets.DefaultBucketBytes;
    /// <summary>With several ranks: ZeRO-1, each rank keeps the optimizer state of its share of the parameters only
    /// (<see cref="ShardedOptimizerState"/>) instead of all-reducing gradients into a full copy everywhere.</summary>
    public bool ShardOptimizerState { get; init; }
    /// <summary>With several ranks: start each gradient bucket's all-reduce during backward (false: all after it, to
    /// measure what the overlap hides).</summary>
    public bool OverlapGradientCommunication { get; init; } = true;
    /// <summary>Checkpoints hold only the parameters that train (a LoRA adapter, a new head) and the optimizer: the
    /// frozen rest is the base model its caller loads again, so fine-tuning a large model writes small checkpoints
    /// and never a copy of the base. Resuming then requires exactly these parameters in the checkpoint.</summary>
    public bool CheckpointTrainableOnly { get; init; }
}

/// <summary>What one optimisation step did. <see cref="Metrics"/> are the trainer's extra metrics on the training micro-batches.</summary>
public sealed record StepRecord(int Step, int TotalSteps, double Loss, double LearningRate, double GradNorm, long Samples, double Milliseconds,
    IReadOnlyDictionary<string, double> Metrics)
{
    public double SamplesPerSecond => Samples / Math.Max(1e-9, Milliseconds / 1000);
}

/// <summary>A validation after step <see cref="Step"/>.</summary>
public sealed record EvaluationRecord(int Step, double Loss, IReadOnlyDictionary<string, double> Metrics);

/// <summary>A checkpoint written after step <see cref="Step"/> into <see cref="Directory"/>.</summary>
public sealed record CheckpointRecord(int Step, string Directory);

/// <summary>Where <see cref="Trainer.TryResume"/> continued from, and newer checkpoints it had to pass over as damaged.</summary>
public sealed record ResumeInfo(int Step, IReadOnlyList<string> Skipped);

/// <summary>
/// The training loop every model uses: a model, a loss on its output, a batch source (batch i is a pure
/// function of i, so a resumed or sharded run sees exactly the batches an uninterrupted one does), an
/// optimizer and an optional learning-rate schedule. Each step sums the gradients of
/// <see cref="TrainerOptions.GradientAccumulation"/> micro-batches, measures the global gradient norm in double
/// and clips it, then steps the optimizer and the schedule. It validates periodically, appends every step and
/// validation to metrics.jsonl, and writes checkpoints (model, optimizer, step) that survive a crash at any
/// instant (<see cref="CheckpointStore"/>). A non-finite loss or gradient norm stops training with the step and
/// the first culprit named.
/// Hooks, in order within a step: <see cref="AfterBackward"/> (gradients complete, before clipping and the optimizer step:
/// after the data-parallel all-reduce), <see cref="AfterStep"/>, <see cref="AfterEvaluation"/>, <see cref="AfterCheckpoint"/>.
/// <para>Data parallel: given a communicator of several ranks (each running this same trainer, e.g. under mpirun),
/// each rank trains on its share of every global batch (<see cref="ShardedBatchSource"/>), the gradients are averaged
/// across the ranks in buckets while backward runs (<see cref="GradientBuckets"/>), the parameters start from rank 0's,
/// every rank reports the global loss and metrics, only rank 0 validates and writes metrics.jsonl and checkpoints (all ranks
/// read them to resume, so the run directory must be one they share). Every <see cref="TrainerOptions.ChecksumEvery"/>
/// steps the ranks compare their parameters (<see cref="ParameterChecksum"/>).</para>
/// </summary>
public sealed class Trainer
{
    private readonly Func<Tensor, Tensor, Tensor> _loss;
    private readonly IBatchSource _train;
    private readonly IBatchSource? _validation;
    private readonly CheckpointStore? _checkpoints;
    private readonly MetricsLog? _metrics;
    private readonly IReadOnlyList<Tensor> _parameters;
    private readonly GradientBuckets? _gradients;
    private readonly ShardedOptimizerState? _sharded;
    private int? _lastCheckpointStep;
    private bool _resumeAttempted;
    private bool _parametersSynchronised;

    public Trainer(Module model, Func<Tensor, Tensor, Tensor> loss, IBatchSource train, Optimizer optimizer, TrainerOptions options,
        LRScheduler? schedule = null, IBatchSource? validation = null, string? runDirectory = null, ICommunicator? communicator = null)
    {
        if (options.Steps < 0) throw new ArgumentOutOfRangeException(nameof(options), $"Steps must not be negative, got {options.Steps}.");
        if (options.GradientAccumulation < 1) throw new ArgumentOutOfRangeException(nameof(options), $"GradientAccumulation must be at least 1, got {options.GradientAccumulation}.");
        if (!(options.ClipGradNorm >= 0)) throw new ArgumentOutOfRangeException(nameof(options), $"ClipGradNorm must be 0 (off) or positive, got {options.ClipGradNorm}.");
        if (options.EvalEvery < 0 || options.CheckpointEvery < 0 || options.EvalBatches < 0 || options.ChecksumEvery < 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"EvalEvery, EvalBatches, CheckpointEvery and ChecksumEvery must not be negative (got {options.EvalEvery}, {options.EvalBatches}, {options.CheckpointEvery}, {options.ChecksumEvery}).");
        if (schedule != null && schedule.Optimizer != optimizer) throw new ArgumentException("The schedule drives another optimizer than the trainer's.", nameof(schedule));
        Model = model;
        _loss = loss;
        Communicator = communicator ?? new SingleProcessCommunicator();
        bool parallel = Communicator.Size > 1;
        _train = parallel ? new ShardedBatchSource(train, Communicator.Rank, Communicator.Size) : train;
        _validation = validation;
        Optimizer = optimizer;
        Options = options;
        Schedule = schedule;
        _parameters = optimizer.Groups.SelectMany(g => g.Parameters).ToList();
        if (parallel && options.ShardOptimizerState) _sharded = new ShardedOptimizerState(Communicator, optimizer);
        else if (parallel) _gradients = new GradientBuckets(Communicator, _parameters, options.GradientBucketBytes, options.OverlapGradientCommunication);
        RunDirectory = runDirectory;
        if (runDirectory != null)
        {
            if (IsWriter) Directory.CreateDirectory(runDirectory);
            _checkpoints = new CheckpointStore(runDirectory);
            if (IsWriter) _metrics = new MetricsLog(Path.Combine(runDirectory, "metrics.jsonl"));
        }
    }

    /// <summary>The ranks this trainer trains with (a single-process one unless a communicator was given).</summary>
    public ICommunicator Communicator { get; }
    /// <summary>True on the rank that writes the run's files (rank 0).</summary>
    public bool IsWriter => Communicator.Rank == 0;
    /// <summary>With several ranks: milliseconds the last step waited for its gradient all-reduce after backward (the communication not overlapped).</summary>
    public double ExposedCommunicationMilliseconds => _gradients?.ExposedMilliseconds ?? 0;

    public Module Model { get; }
    public Optimizer Optimizer { get; }
    public LRScheduler? Schedule { get; }
    public TrainerOptions Options { get; }
    public string? RunDirectory { get; }
    public string? MetricsPath => _metrics?.Path;
    /// <summary>Optimisation steps completed.</summary>
    public int Step { get; private set; }

    /// <summary>Extra metrics computed on every training micro-batch and validation batch from (output, targets),
    /// each a mean over the batch's rows (e.g. <see cref="Evaluation.Accuracy"/>). Logged and reported under their names.</summary>
    public Dictionary<string, Func<Tensor, Tensor, double>> Metrics { get; } = new();

    /// <summary>After the backward passes of a step, before the gradient norm, clipping and the optimizer step.</summary>
    public event Action<Trainer>? AfterBackward;
    public event Action<StepRecord>? AfterStep;
    public event Action<EvaluationRecord>? AfterEvaluation;
    public event Action<CheckpointRecord>? AfterCheckpoint;

    /// <summary>Test-only: see <see cref="CheckpointStore.FaultPoint"/>; "metrics: repaired" is reached on resume too.</summary>
    internal Action<string>? FaultPoint
    {
        get => _checkpoints?.FaultPoint;
        set
        {
            if (_checkpoints != null) _checkpoints.FaultPoint = value;
        }
    }

    /// <summary>Runs the remaining steps (all of them, or those after a resumed checkpoint), stopping early when cancelled.</summary>
    public void Train(CancellationToken cancel = default)
    {
        if (Step == 0 && !_resumeAttempted && _checkpoints?.Any() == true)
            throw new InvalidOperationException($"{RunDirectory} already holds checkpoints: call TryResume() first, or train into another directory.");
        if (Step == 0) _metrics?.Clear();
        SynchroniseParameters();
        while (Step < Options.Steps && !Cancelled(cancel))
        {
            // What a step makes (its evaluation and checkpoint included) goes back to the pool when it ends, whenever
            // the garbage collector runs: parameters, gradients and optimizer state outlive the scope.
            using var memory = MemoryScope.Begin();
            var record = TrainStep();
            _metrics?.Append(StepJson(record));
            AfterStep?.Invoke(record);

            // With several ranks only rank 0 validates (on the whole validation set; the ranks hold the same model),
            // since only it reports; the others wait for it at the next step's all-reduce.
            if (IsWriter && _validation != null && Options.EvalEvery > 0 && (Step % Options.EvalEvery == 0 || Step == Options.Steps))
            {
                var result = Evaluate(_validation, Options.EvalBatches);
                var evaluation = new EvaluationRecord(Step, result.Loss, result.Metrics);
                var json = new JsonObject { ["step"] = Step, ["val_loss"] = Number(result.Loss) };
                foreach (var (name, value) in result.Metrics) json["val_" + name] = Number(value);
                _metrics?.Append(json);
                AfterEvaluation?.Invoke(evaluation);
            }
            if (RunDirectory != null && ((Options.CheckpointEvery > 0 && Step % Options.CheckpointEvery == 0) || Step == Options.Steps))
                SaveCheckpoint();
        }
    }

    /// <summary>Whether to stop before the next step. With several ranks they decide together (any rank's cancellation
    /// stops all of them after the same step), since a rank that stopped alone would leave the others waiting in a collective.</summary>
    private bool Cancelled(CancellationToken cancel)
    {
        if (Communicator.Size == 1) return cancel.IsCancellationRequested;
        Span<float> requested = [cancel.IsCancellationRequested ? 1 : 0];
        Communicator.AllReduce(requested, ReduceOp.Sum);
        return requested[0] > 0;
    }

    /// <summary>Once per trainer: every rank takes rank 0's parameters and buffers (initialised or resumed), so the
    /// ranks start as one model whatever their seeds.</summary>
    private void SynchroniseParameters()
    {
        if (_parametersSynchronised || Communicator.Size == 1) return;
        foreach (var (_, p) in Model.NamedParameters()) Communicator.Broadcast(p.AsSpan(), root: 0);
        foreach (var (_, b) in Model.NamedBuffers())
            if (b.DType == DType.Float32) Communicator.Broadcast(b.AsSpan(), root: 0);
        _parametersSynchronised = true;
    }

    private StepRecord TrainStep()
    {
        var clock = Stopwatch.StartNew();
        int k = Options.GradientAccumulation;
        Optimizer.ZeroGrad();
        Model.Train();
        double lossSum = 0;
        long samples = 0;
        var metricSums = new Dictionary<string, double>();
        for (int micro = 0; micro < k; micro++)
        {
            // One scope per micro-batch: accumulating k batches must not hold k batches' activations at once.
            using var microBatch = MemoryScope.Begin();
            var (x, y) = MicroBatch(micro);
            var output = Model.Forward(x);
            var loss = _loss(output, y);
            float value = loss.Item();
            if (!float.IsFinite(value)) throw Diverged($"the loss became {value}");
            if (micro == k - 1) _gradients?.Arm();
            (k == 1 ? loss : loss.Mul(1f / k)).Backward();
            lossSum += value;
            int n = x.Size(0);
            samples += n;
            if (Metrics.Count > 0)
                using (GradMode.NoGrad())
                    foreach (var (name, metric) in Metrics) metricSums[name] = metricSums.GetValueOrDefault(name) + metric(output, y) * n;
        }
        _gradients?.Finish();
        _sharded?.ReduceScatterGradients();
        if (Communicator.Size > 1) (lossSum, samples) = GlobalSums(lossSum, samples, metricSums);
        AfterBackward?.Invoke(this);
        double norm = _sharded?.GlobalNorm() ?? GradientClipping.TotalNorm(_parameters);
        if (!double.IsFinite(norm)) throw Diverged($"the gradient norm became {norm}");
        if (Options.ClipGradNorm > 0) GradientClipping.ClipGradNorm(_parameters, Options.ClipGradNorm, norm);
        double lr = Optimizer.LearningRate;
        Optimizer.Step();
        _sharded?.AllGatherParameters();
        Schedule?.Step();
        Step++;
        if (Communicator.Size > 1 && Options.ChecksumEvery > 0 && Step % Options.ChecksumEvery == 0)
            ParameterChecksum.Verify(Communicator, Model.Parameters(), Step);
        return new StepRecord(Step, Options.Steps, lossSum / k, lr, norm, samples, clock.Elapsed.TotalMilliseconds,
            metricSums.ToDictionary(kv => kv.Key, kv => kv.Value / Math.Max(1, samples)));
    }

    /// <summary>The step's loss (the mean of the ranks' means), sample count and metric sums over all ranks; the metric
    /// sums are replaced in <paramref name="metricSums"/>.</summary>
    private (double LossSum, long Samples) GlobalSums(double lossSum, long samples, Dictionary<string, double> metricSums)
    {
        var names = Metrics.Keys.Where(metricSums.ContainsKey).ToList();
        var values = new float[2 + names.Count];
        values[0] = (float)lossSum;
        values[1] = samples;
        for (int i = 0; i < names.Count; i++) values[2 + i] = (float)metricSums[names[i]];
        Communicator.AllReduce(values, ReduceOp.Sum);
        for (int i = 0; i < names.Count; i++) metricSums[names[i]] = values[2 + i];
        return ((double)values[0] / Communicator.Size, (long)values[1]);
    }

    /// <summary>Micro-batch <paramref name="micro"/> of the current step, with the default generator seeded for it.</summary>
    private (Tensor X, Tensor Y) MicroBatch(int micro)
    {
        long index = (long)Step * Options.GradientAccumulation + micro;
        Generator.ManualSeed(Options.Seed ^ (0x9E3779B97F4A7C15UL * (ulong)(index + 1)));
        return _train.Batch(index);
    }

    private static JsonObject StepJson(StepRecord r)
    {
        var json = new JsonObject
        {
            ["step"] = r.Step, ["loss"] = r.Loss, ["lr"] = r.LearningRate, ["grad_norm"] = r.GradNorm,
            ["samples"] = r.Samples, ["samples_per_second"] = r.SamplesPerSecond, ["ms"] = r.Milliseconds,
        };
        foreach (var (name, value) in r.Metrics) json[name] = Number(value);
        return json;
    }

    /// <summary>A value for metrics.jsonl: JSON has no NaN or infinity, so those (e.g. a validation that overflowed) are null.</summary>
    private static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    /// <summary>Loss and metrics over the first <paramref name="batches"/> batches of a source, without a graph.
    public EvaluationResult Evaluate(IBatchSource source, int batches) => Evaluation.Run(Model, _loss, source, batches, Metrics);

    /// <summary>
    /// Names the culprit of a divergence at the current step: a parameter that is already NaN/Inf; else the first op
    /// that produces a NaN/Inf when the step's micro-batches are replayed under <see cref="AnomalyMode"/> (the
    /// parameters are those the step started from, since the optimizer has not stepped, and the batches and dropout
    /// masks are the same); else the first non-finite gradient.
    /// </summary>
    private TrainingDivergedException Diverged(string what)
    {
        int step = Step + 1;
        const string advice = "Lower the learning rate or check the data for NaN/Inf.";
        if (NonFinite.FirstParameter(Model, gradients: false) is { } parameter)
            return new TrainingDivergedException($"step {step}: {what} ({parameter}). {advice}");
        if (ReplayWithAnomalyChecks() is { } anomaly)
            return new TrainingDivergedException($"step {step}: {anomaly.Message} ({what}). {advice}");
        var gradient = NonFinite.FirstParameter(Model, gradients: true);
        return new TrainingDivergedException($"step {step}: {what}{(gradient != null ? $" ({gradient})" : "")}. {advice}");
    }

    private NonFiniteValueException? ReplayWithAnomalyChecks()
    {
        Optimizer.ZeroGrad();
        Model.Train();
        try
        {
            using var _ = AnomalyMode.Enable();
            int k = Options.GradientAccumulation;
            for (int micro = 0; micro < k; micro++)
            {
                var (x, y) = MicroBatch(micro);
                var loss = _loss(Model.Forward(x), y);
                (k == 1 ? loss : loss.Mul(1f / k)).Backward();
            }
            return null;
        }
        catch (NonFiniteValueException e)
        {
            return e;
        }
    }

    /// <summary>Writes a checkpoint of the current step (unless it already has one), e.g. when training is interrupted.</summary>
    public void SaveCheckpoint()
    {
        if (_checkpoints == null) throw new InvalidOperationException("The trainer has no run directory to write checkpoints into.");
        if (_lastCheckpointStep == Step) return;
        _lastCheckpointStep = Step;
        // With ZeRO-1 every rank contributes its share of the optimizer state; the file holds all of it.
        var optimizerState = _sharded?.ConsolidatedStateDict() ?? Optimizer.StateDict();
        if (!IsWriter) return; // the ranks hold the same model and optimizer state: rank 0's copy is the run's
        var dir = _checkpoints.Save(Step, d => WriteCheckpointFiles(d, optimizerState));
        AfterCheckpoint?.Invoke(new CheckpointRecord(Step, dir));
    }

    private void WriteCheckpointFiles(string dir, Dictionary<string, Tensor> optimizerState)
    {
        var metadata = new Dictionary<string, string> { ["step"] = Step.ToString(CultureInfo.InvariantCulture) };
        var modelPath = Path.Combine(dir, "model.safetensors");
        if (Options.CheckpointTrainableOnly) SafeTensors.Save(modelPath, TrainableParameters(), metadata);
        else Model.Save(modelPath, metadata);
        SafeTensors.Save(Path.Combine(dir, "optimizer.safetensors"), optimizerState);
        AtomicFile.WriteAllText(Path.Combine(dir, "trainer.json"), new JsonObject
        {
            ["step"] = Step,
            ["options"] = JsonNode.Parse(JsonSerializer.Serialize(Options)),
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>
    /// Loads the run's newest complete checkpoint, if any, and continues from its step; metrics logged after it
    /// (and a line torn by a crash) are dropped, since those steps run again. Returns null when the run has no
    /// checkpoint; throws when it has some and none is complete.
    /// </summary>
    public ResumeInfo? TryResume()
    {
        if (_checkpoints == null) return null;
        _resumeAttempted = true;
        if (Communicator.Size == 1) return Resume();
        // Rank 0 recovers first (it may repair or remove a checkpoint torn by a crash); the others then read what it left,
        // and all must have found the same step.
        ResumeInfo? info = IsWriter ? Resume() : null;
        Communicator.Barrier();
        if (!IsWriter) info = Resume();
        Span<float> steps = [Step];
        var all = new float[Communicator.Size];
        Communicator.AllGather(steps, all);
        if (all.Any(s => s != all[0]))
            throw new CheckpointException($"{_checkpoints.Root}: rank {Communicator.Rank} resumed at step {Step}, rank 0 at step {all[0]}; every rank must see the run directory rank 0 writes (a shared file system when the ranks are on several machines).");
        return info;
    }

    private ResumeInfo? Resume()
    {
        var found = _checkpoints!.Recover();
        var legacy = Path.Combine(RunDirectory!, "checkpoint");
        if (found == null && Directory.Exists(legacy))
            throw new CheckpointException($"{legacy}: a checkpoint in the layout of an earlier Nabla (no manifest to prove it complete); it is not resumed, so that training does not silently restart from step 0. Start a new run.");
        if (found == null) return null;
        var statePath = Path.Combine(found.Directory, "trainer.json");
        int step;
        try
        {
            step = JsonNode.Parse(BoundedFile.ReadAllText(statePath, BoundedFile.SmallFileLimit, "a trainer state"))?["step"]?.GetValue<int>() ?? throw new CheckpointException($"{statePath}: no \"step\".");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{statePath}: cannot read the trainer state ({e.Message}).", e);
        }
        if (step != found.Step) throw new CheckpointException($"{statePath}: step {step} in a checkpoint of step {found.Step}.");
        LoadModelCheckpoint(Path.Combine(found.Directory, "model.safetensors"));
        var optimizerPath = Path.Combine(found.Directory, "optimizer.safetensors");
        var optimizerState = SafeTensors.Load(optimizerPath);
        Optimizer.LoadStateDict(_sharded?.OwnShare(optimizerState) ?? optimizerState, optimizerPath);
        Step = step;
        Schedule?.SetStep(step);
        _lastCheckpointStep = step;
        _metrics?.Repair(step);
        FaultPoint?.Invoke("metrics: repaired");
        return new ResumeInfo(step, found.Skipped);
    }

    private Dictionary<string, Tensor> TrainableParameters() =>
        Model.NamedParameters().Where(p => p.Parameter.RequiresGrad).ToDictionary(p => p.Name, p => p.Parameter);

    private void LoadModelCheckpoint(string path)
    {
        if (!Options.CheckpointTrainableOnly)
        {
            Model.Load(path);
            return;
        }
        // Strict over the trainable parameters: the frozen ones are not in the file, and nothing else may be.
        var state = SafeTensors.Load(path);
        var trainable = TrainableParameters();
        var problems = trainable.Where(p => !state.ContainsKey(p.Key)).Select(p => $"missing tensor '{p.Key}' (expected shape {p.Value.ShapeString})")
            .Concat(state.Keys.Where(k => !trainable.ContainsKey(k)).Select(k => $"unexpected tensor '{k}'")).ToList();
        if (problems.Count > 0)
            throw new CheckpointException($"{path} does not hold the trainable parameters of this {Model.GetType().Name}: {string.Join("; ", problems)}.");
        Model.LoadStateDict(state, strict: false, path);
    }
}

/// <summary>Finds NaN and infinities in a model's tensors.</summary>
public static class NonFinite
{
    /// <summary>"parameter 'name' is non-finite" (or "gradient of ...") for the first parameter or gradient holding NaN/Inf, else null.</summary>
    public static string? FirstParameter(Module model, bool gradients)
    {
        foreach (var (name, p) in model.NamedParameters())
        {
            var t = gradients ? p.Grad : p;
            if (t != null && AnomalyMode.FirstNonFinite(t) != null)
                return gradients ? $"first non-finite gradient: '{name}'" : $"first non-finite parameter: '{name}'";
        }
        return null;
    }
}
