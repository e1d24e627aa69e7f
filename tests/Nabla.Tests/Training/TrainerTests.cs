using System.Text.Json.Nodes;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Optim;
using Nabla.Training;

namespace Nabla.Tests.Training;

public class TrainerTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "nabla-trainer-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private string Dir(string name) => Path.Combine(_root, name);

    private sealed class CrashException : Exception;

    /// <summary>Rows of 4 normal features, labelled 0-2 by a fixed rule (also the data of <see cref="Distributed.DataParallelTests"/>).</summary>
    internal static (Tensor X, Tensor Y) Data(int rows, ulong seed)
    {
        var g = new Generator(seed);
        var x = new float[rows * 4];
        var y = new int[rows];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < 4; j++) x[i * 4 + j] = (float)g.NextNormal();
            y[i] = x[i * 4] + x[i * 4 + 1] > 0.5f ? 2 : x[i * 4 + 2] > 0 ? 1 : 0;
        }
        return (Tensor.FromArray(x, rows, 4), Tensor.FromArray(y));
    }

    /// <summary>A small but complete run: dropout, AdamW, a schedule, accumulation, clipping, validation, a metric,
    /// and three checkpoints; everything from fixed seeds, so two trainers built here train identically.</summary>
    private static Trainer MlpTrainer(string? dir)
    {
        var (x, y) = Data(50, 1);
        var (vx, vy) = Data(20, 2);
        var model = new Mlp(4, [16], 3, dropout: 0.2f, generator: new Generator(5));
        var optimizer = new AdamW(model.Parameters(), 1e-2f, weightDecay: 0.01f);
        var options = new TrainerOptions { Steps = 9, GradientAccumulation = 2, ClipGradNorm = 1f, EvalEvery = 3, EvalBatches = 1, CheckpointEvery = 3, Seed = 11 };
        var trainer = new Trainer(model, (o, t) => F.CrossEntropy(o, t), new TensorBatchSource(x, y, 8, shuffleSeed: 3), optimizer, options,
            new CosineWithWarmup(optimizer, 2, options.Steps, 1e-3f), new TensorBatchSource(vx, vy, 32), dir);
        trainer.Metrics["accuracy"] = Evaluation.Accuracy;
        return trainer;
    }

    private static Dictionary<string, float[]> Parameters(Trainer t) => t.Model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());

    /// <summary>metrics.jsonl without the timing fields (which no two runs share).</summary>
    private static List<string> Metrics(string dir) => File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(line =>
    {
        var o = (JsonObject)JsonNode.Parse(line)!;
        o.Remove("ms");
        o.Remove("samples_per_second");
        return o.ToJsonString();
    }).ToList();

    private static void AssertSameRun(Dictionary<string, float[]> expectedParameters, List<string> expectedMetrics, Trainer actual, string dir, string context)
    {
        foreach (var (name, values) in Parameters(actual))
            Assert.True(expectedParameters[name].SequenceEqual(values), $"{context}: {name} differs from the uninterrupted run");
        Assert.Equal(expectedMetrics, Metrics(dir));
    }

    private static void Copy(string from, string to)
    {
        if (Directory.Exists(to)) Directory.Delete(to, recursive: true);
        Directory.CreateDirectory(to);
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(dir.Replace(from, to));
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(file, file.Replace(from, to));
    }

    /// <summary>Crashes (throws) at the <paramref name="n"/>-th fault point the trainer reaches.</summary>
    private static void CrashAt(Trainer t, int n)
    {
        int calls = 0;
        t.FaultPoint = _ => { if (calls++ == n) throw new CrashException(); };
    }

    [Fact]
    public void ACrashAtAnyPointOfTheSwapThenAgainAtAnyPointOfTheRecoveryResumesFromTheNewestCompleteCheckpointAndEndsBitForBitAsAnUninterruptedRun()
    {
        var reference = MlpTrainer(Dir("reference"));
        reference.Train();
        var (expectedParameters, expectedMetrics) = (Parameters(reference), Metrics(Dir("reference")));

        // Every point the three checkpoint swaps pass, and the step each belongs to.
        var points = new List<(string Name, int Step)>();
        var probe = MlpTrainer(Dir("probe"));
        probe.FaultPoint = p => points.Add((p, probe.Step));
        probe.Train();
        Assert.Equal(3, points.Count(p => p.Name == "save: renamed into place"));
        Assert.Contains(points, p => p.Name == "remove: manifest deleted");

        int recoveryCrashes = 0;
        for (int crash = 0; crash < points.Count; crash++)
        {
            var dir = Dir("run");
            var snapshot = Dir("crashed");
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            var first = MlpTrainer(dir);
            CrashAt(first, crash);
            Assert.Throws<CrashException>(() => first.Train());
            // A checkpoint is complete once its manifest is written, renamed into place or not.
            int? newestComplete = points.Take(crash + 1).Where(p => p.Name == "save: manifest written").Select(p => (int?)p.Step).LastOrDefault();
            Copy(dir, snapshot);

            for (int again = 0; ; again++)
            {
                Copy(snapshot, dir);
                var second = MlpTrainer(dir);
                CrashAt(second, again);
                bool crashedAgain = false;
                try { second.TryResume(); }
                catch (CrashException) { crashedAgain = true; recoveryCrashes++; }

                var third = MlpTrainer(dir);
                string context = $"crash at '{points[crash].Name}' (step {points[crash].Step}), then {(crashedAgain ? $"at recovery point {again}" : "a clean recovery")}";
                Assert.True(newestComplete == third.TryResume()?.Step, $"{context}: resumed from the wrong checkpoint");
                third.Train();
                AssertSameRun(expectedParameters, expectedMetrics, third, dir, context);
                if (!crashedAgain) break;
            }
        }
        Assert.True(recoveryCrashes > 0);
    }

    [Fact]
    public void ADamagedNewestCheckpointIsPassedOverForTheOlderCompleteOneAndNamed()
    {
        var reference = MlpTrainer(Dir("reference"));
        reference.Train();
        var dir = Dir("run");
        var first = MlpTrainer(dir);
        // Stop right after the second checkpoint (step 6) is renamed into place, before step 3's is removed.
        int renames = 0;
        first.FaultPoint = p => { if (p == "save: renamed into place" && ++renames == 2) throw new CrashException(); };
        Assert.Throws<CrashException>(() => first.Train());
        var model = Path.Combine(dir, "checkpoints", "step-00000006", "model.safetensors");
        var bytes = File.ReadAllBytes(model);
        bytes[^3] ^= 0x40;
        File.WriteAllBytes(model, bytes);

        var resumed = MlpTrainer(dir);
        var info = resumed.TryResume()!;
        Assert.Equal(3, info.Step);
        Assert.Contains("step-00000006", Assert.Single(info.Skipped));
        Assert.Contains("model.safetensors", info.Skipped[0]);
        resumed.Train();
        AssertSameRun(Parameters(reference), Metrics(Dir("reference")), resumed, dir, "after passing over the damaged checkpoint");
    }

    [Fact]
    public void WhenNoCheckpointIsCompleteResumeFailsNamingTheFileInsteadOfRestarting()
    {
        var dir = Dir("run");
        MlpTrainer(dir).Train();
        var optimizer = Path.Combine(dir, "checkpoints", "step-00000009", "optimizer.safetensors");
        File.WriteAllBytes(optimizer, File.ReadAllBytes(optimizer)[..100]);
        var e = Assert.Throws<CheckpointException>(() => MlpTrainer(dir).TryResume());
        Assert.Contains("optimizer.safetensors", e.Message);
        Assert.Contains("No complete checkpoint", e.Message);
    }

    /// <summary>A two-layer net with one layer frozen (<paramref name="frozen"/>: "0" or "1"), checkpointing only what trains.</summary>
    private static Trainer PartlyFrozenTrainer(string dir, string frozen)
    {
        var (x, y) = Data(40, 1);
        Linear[] layers = [new Linear(4, 8, generator: new Generator(1)), new Linear(8, 3, generator: new Generator(2))];
        var model = new Sequential(layers);
        layers[frozen == "0" ? 0 : 1].RequiresGrad_(false);
        var optimizer = new AdamW(model.Parameters().Where(p => p.RequiresGrad), 1e-2f);
        return new Trainer(model, (o, t) => F.CrossEntropy(o, t), new TensorBatchSource(x, y, 8, shuffleSeed: 3), optimizer,
            new TrainerOptions { Steps = 4, CheckpointEvery = 2, CheckpointTrainableOnly = true }, runDirectory: dir);
    }

    [Fact]
    public void TrainableOnlyCheckpointsHoldWhatTrainsAndResumeRequiresExactlyThat()
    {
        var dir = Dir("frozen");
        var first = PartlyFrozenTrainer(dir, frozen: "0");
        first.Train();
        var checkpoint = Path.Combine(dir, "checkpoints", "step-00000004", "model.safetensors");
        Assert.Equal(new[] { "1.bias", "1.weight" }, SafeTensors.Load(checkpoint).Keys.Order());

        var resumed = PartlyFrozenTrainer(dir, frozen: "0");
        Assert.Equal(4, resumed.TryResume()!.Step);
        Assert.Equal(first.Model.StateDict()["1.weight"].ToArray(), resumed.Model.StateDict()["1.weight"].ToArray());

        var e = Assert.Throws<CheckpointException>(() => PartlyFrozenTrainer(dir, frozen: "1").TryResume());
        Assert.Contains($"{checkpoint} does not hold the trainable parameters", e.Message);
        Assert.Contains("missing tensor '0.weight'", e.Message);
        Assert.Contains("unexpected tensor '1.weight'", e.Message);
    }

    [Fact]
    public void TrainingFromScratchIntoARunThatHasCheckpointsIsRefused()
    {
        var dir = Dir("run");
        MlpTrainer(dir).Train();
        var e = Assert.Throws<InvalidOperationException>(() => MlpTrainer(dir).Train());
        Assert.Contains("call TryResume() first", e.Message);
    }

    [Fact]
    public void AnOptimizerStateMissingAMomentTensorIsRefusedNamingFileAndTensor()
    {
        var dir = Dir("run");
        MlpTrainer(dir).Train();
        var path = Path.Combine(dir, "checkpoints", "step-00000009", "optimizer.safetensors");
        var state = SafeTensors.Load(path);
        Assert.True(state.Remove("1.exp_avg_sq"));
        var fresh = MlpTrainer(null);
        var e = Assert.Throws<CheckpointException>(() => fresh.Optimizer.LoadStateDict(state, path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'1.exp_avg_sq'", e.Message);
        Assert.Contains("missing", e.Message);

        // Written into the checkpoint, the change breaks its manifest: the file is named too.
        SafeTensors.Save(path, state);
        Assert.Contains("optimizer.safetensors", Assert.Throws<CheckpointException>(() => MlpTrainer(dir).TryResume()).Message);
    }

    [Fact]
    public void ATornLastMetricsLineAndTheLinesOfRedoneStepsAreDroppedOnResume()
    {
        var reference = MlpTrainer(Dir("reference"));
        reference.Train();
        var dir = Dir("run");
        var first = MlpTrainer(dir);
        first.FaultPoint = p => { if (p == "save: files written" && first.Step == 6) throw new CrashException(); };
        Assert.Throws<CrashException>(() => first.Train());
        File.AppendAllText(Path.Combine(dir, "metrics.jsonl"), "{\"step\":7,\"loss\":0.5"); // torn by the crash

        var resumed = MlpTrainer(dir);
        Assert.Equal(3, resumed.TryResume()!.Step);
        Assert.All(MetricsLog.Read(Path.Combine(dir, "metrics.jsonl")), r => Assert.True(r["step"]!.GetValue<int>() <= 3));
        resumed.Train();
        AssertSameRun(Parameters(reference), Metrics(Dir("reference")), resumed, dir, "after a torn metrics line");
    }

    [Fact]
    public void ABadCompleteMetricsLineIsNamedByFileAndLine()
    {
        Directory.CreateDirectory(_root);
        var path = Path.Combine(_root, "metrics.jsonl");
        File.WriteAllText(path, "{\"step\":1,\"loss\":2}\nnot json\n{\"step\":2,\"loss\":1}\n");
        var e = Assert.Throws<DataFormatException>(() => MetricsLog.Read(path));
        Assert.StartsWith($"{path}:2: ", e.Message);
    }

    [Fact]
    public void HooksRunInOrderAndBackwardHookSeesTheGradientsBeforeTheStep()
    {
        var trainer = MlpTrainer(Dir("run"));
        var events = new List<string>();
        trainer.AfterBackward += t =>
        {
            Assert.All(t.Optimizer.Groups.SelectMany(g => g.Parameters), p => Assert.NotNull(p.Grad));
            events.Add($"backward {t.Step + 1}");
        };
        trainer.AfterStep += s => events.Add($"step {s.Step}");
        trainer.AfterEvaluation += e => events.Add($"eval {e.Step}");
        trainer.AfterCheckpoint += c => events.Add($"checkpoint {c.Step}");
        trainer.Train();
        Assert.Equal(["backward 1", "step 1", "backward 2", "step 2", "backward 3", "step 3", "eval 3", "checkpoint 3"], events.Take(8));
        Assert.Equal(["step 9", "eval 9", "checkpoint 9"], events.TakeLast(3));
    }

    /// <summary>Concatenates the rows of k consecutive batches of a source: one batch k times larger.</summary>
    private sealed class Concatenated(IBatchSource inner, int k) : IBatchSource
    {
        public (Tensor Inputs, Tensor Targets) Batch(long index)
        {
            var parts = Enumerable.Range(0, k).Select(j => inner.Batch(index * k + j)).ToList();
            return (Rows(parts.Select(p => p.Inputs).ToList()), Rows(parts.Select(p => p.Targets).ToList()));
        }

        private static Tensor Rows(List<Tensor> parts)
        {
            var shape = parts[0].Shape.ToArray();
            shape[0] = parts.Sum(p => p.Size(0));
            return parts[0].DType == DType.Int32
                ? Tensor.FromArray(parts.SelectMany(p => p.ToIntArray()).ToArray(), shape)
                : Tensor.FromArray(parts.SelectMany(p => p.ToArray()).ToArray(), shape);
        }
    }

    /// <summary>The largest difference between any two corresponding parameters, and where.</summary>
    private static (double Difference, string Name) MaxDifference(Module expected, Module actual)
    {
        var e = expected.StateDict();
        return actual.StateDict().Select(kv => (e[kv.Key].ToArray().Zip(kv.Value.ToArray()).Max(p => (double)Math.Abs(p.First - p.Second)), kv.Key)).Max();
    }

    /// <summary>Trains <paramref name="model"/> for <paramref name="steps"/> SGD steps and returns the per-step losses.</summary>
    private static List<double> TrainSgd(Module model, Func<Tensor, Tensor, Tensor> loss, IBatchSource source, int accumulation, int steps)
    {
        var losses = new List<double>();
        var trainer = new Trainer(model, loss, source, new SGD(model.Parameters(), 0.5f),
            new TrainerOptions { Steps = steps, GradientAccumulation = accumulation });
        trainer.AfterStep += s => losses.Add(s.Loss);
        trainer.Train();
        return losses;
    }

    [Fact]
    public void KMicroBatchesOfAccumulationEqualOneKTimesLargerBatchForAnMlp()
    {
        var (x, y) = Data(96, 4);
        const int k = 4;
        var micro = new Mlp(4, [32, 16], 3, generator: new Generator(9));
        var whole = new Mlp(4, [32, 16], 3, generator: new Generator(9));
        Func<Tensor, Tensor, Tensor> loss = (o, t) => F.CrossEntropy(o, t);
        var microLosses = TrainSgd(micro, loss, new TensorBatchSource(x, y, 8), k, steps: 3);
        var wholeLosses = TrainSgd(whole, loss, new Concatenated(new TensorBatchSource(x, y, 8), k), 1, steps: 3);
        var (difference, name) = MaxDifference(whole, micro);
        Assert.True(difference <= 1e-6, $"MLP after 3 steps: {name} differs by {difference}");
        for (int s = 0; s < 3; s++) Assert.Equal(wholeLosses[s], microLosses[s], 1e-6);
        // and the steps did move the weights (the comparison is not between two untouched models)
        Assert.True(MaxDifference(new Mlp(4, [32, 16], 3, generator: new Generator(9)), micro).Difference > 1e-3);
    }

    [Fact]
    public void KMicroBatchesOfAccumulationEqualOneKTimesLargerBatchForAGpt2()
    {
        var config = new Gpt2Config { VocabSize = 17, MaxSequenceLength = 8, Channels = 16, Layers = 2, Heads = 2 };
        var tokens = Enumerable.Range(0, 400).Select(i => (i * 7 + i / 5) % 17).ToArray();
        const int k = 3;
        var micro = new Gpt2Model(config, new Generator(2));
        var whole = new Gpt2Model(config, new Generator(2));
        Func<Tensor, Tensor, Tensor> loss = (logits, targets) => Gpt2Model.Loss(logits, targets);
        // Unshuffled windows: batch i of size k·B holds exactly micro-batches k·i … k·i+k-1 of size B.
        var microLosses = TrainSgd(micro, loss, new TokenBatchLoader(tokens, 2, 8), k, steps: 2);
        var wholeLosses = TrainSgd(whole, loss, new TokenBatchLoader(tokens, 2 * k, 8), 1, steps: 2);
        var (difference, name) = MaxDifference(whole, micro);
        Assert.True(difference <= 1e-6, $"GPT-2 after 2 steps: {name} differs by {difference}");
        for (int s = 0; s < 2; s++) Assert.Equal(wholeLosses[s], microLosses[s], 1e-6);
        Assert.True(MaxDifference(new Gpt2Model(config, new Generator(2)), micro).Difference > 1e-3);
    }

    private sealed class ExpModule : Module { public override Tensor Forward(Tensor input) => input.Exp(); }

    /// <summary>Linear → exp → Linear: exp overflows for large inputs although every weight stays finite.</summary>
    private sealed class ExpNet : Module
    {
        public ExpNet()
        {
            RegisterModule("fc1", new Linear(4, 8, generator: new Generator(3)));
            RegisterModule("act", new ExpModule());
            RegisterModule("fc2", new Linear(8, 3, generator: new Generator(4)));
        }

        public override Tensor Forward(Tensor x) => ForwardChild("fc2", ForwardChild("act", ForwardChild("fc1", x)));
    }

    /// <summary>The inner source's batches, with the inputs of batch <paramref name="at"/> scaled by <paramref name="scale"/>.</summary>
    private sealed class ScaledBatch(IBatchSource inner, long at, float scale) : IBatchSource
    {
        public (Tensor Inputs, Tensor Targets) Batch(long index)
        {
            var (x, y) = inner.Batch(index);
            return index == at ? (x.Mul(scale), y) : (x, y);
        }
    }

    [Fact]
    public void ActivationsOverflowingWithFiniteWeightsNameTheStepOpAndModule()
    {
        var (x, y) = Data(32, 6);
        var model = new ExpNet();
        var trainer = new Trainer(model, (o, t) => F.CrossEntropy(o, t), new ScaledBatch(new TensorBatchSource(x, y, 16), at: 2, scale: 1000f),
            new SGD(model.Parameters(), 0.01f), new TrainerOptions { Steps = 5 });
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Train());
        Assert.StartsWith("step 3: op Exp in module 'act' produced Inf in its output of shape (16, 8) during the forward pass", e.Message);
        Assert.Equal(2, trainer.Step);
        Assert.All(model.Parameters(), p => Assert.All(p.ToArray(), v => Assert.True(float.IsFinite(v))));
    }

    [Fact]
    public void AGradientThatBecomesNonFiniteNamesTheStepAndTheOpOfTheBackwardPass()
    {
        var (x, y) = Data(16, 7);
        var model = new Mlp(4, [8], 3, generator: new Generator(1));
        // sqrt(0) is finite, its derivative is not: the loss is finite and the gradient is not.
        var trainer = new Trainer(model, (o, t) => F.CrossEntropy(o, t).Add(o.Mul(0f).Sum().Sqrt()), new TensorBatchSource(x, y, 16),
            new SGD(model.Parameters(), 0.01f), new TrainerOptions { Steps = 2 });
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Train());
        Assert.StartsWith("step 1: op Sqrt produced Inf in an input gradient of shape () during the backward pass", e.Message);
        Assert.Contains("the gradient norm became NaN", e.Message);
    }
}
