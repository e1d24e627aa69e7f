using Nabla.Data;
using Nabla.Distributed;
using Nabla.Models;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Optim;
using Nabla.Training;
using Nabla.Tests.Training;
using static Nabla.Tests.Distributed.ThreadCommunicatorTests;

namespace Nabla.Tests.Distributed;

/// <summary>
/// Data-parallel training with the ranks on threads of this process (<see cref="ThreadCommunicator"/>): N ranks sharing
/// each global batch must end with the parameters one rank reaches on the whole batch. Not bitwise: each rank's
/// loss is a mean over B/N rows and the ranks' gradients are then averaged, where one rank sums all B rows at once,
/// so float additions happen in another order (matmul blocking over a different row count too); the differences are
/// rounding, ~1e-7 relative per step. The real MPI path is tested end to end in <see cref="MpiLaunchTests"/>.
/// </summary>
public class DataParallelTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "nabla-ddp-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    /// <summary>An MLP run with accumulation, clipping, AdamW, a schedule and buckets of 256 bytes (several per model).
    /// Each rank initialises with its own seed: the trainer must start every rank from rank 0's parameters.</summary>
    private static Trainer MlpTrainer(ICommunicator? communicator, string? dir = null, int steps = 6, bool zero = false)
    {
        var (x, y) = TrainerTests.Data(48, 1);
        var (vx, vy) = TrainerTests.Data(24, 2);
        var model = new Mlp(4, [16, 8], 3, generator: new Generator(5 + (ulong)(communicator?.Rank ?? 0)));
        var optimizer = new AdamW(model.Parameters(), 1e-2f, weightDecay: 0.01f);
        var options = new TrainerOptions
        {
            Steps = steps, GradientAccumulation = 2, ClipGradNorm = 0.5f, EvalEvery = 3, EvalBatches = 1, CheckpointEvery = 3, Seed = 11,
            GradientBucketBytes = 256, ChecksumEvery = 2, ShardOptimizerState = zero,
        };
        var trainer = new Trainer(model, (o, t) => F.CrossEntropy(o, t), new TensorBatchSource(x, y, 12, shuffleSeed: 3), optimizer, options,
            new CosineWithWarmup(optimizer, 2, options.Steps, 1e-3f), new TensorBatchSource(vx, vy, 24), dir, communicator);
        trainer.Metrics["accuracy"] = Evaluation.Accuracy;
        return trainer;
    }

    private static Dictionary<string, float[]> Parameters(Trainer t) => t.Model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());

    private static void AssertClose(Dictionary<string, float[]> expected, Dictionary<string, float[]> actual, float tolerance = 2e-6f)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, e) in expected)
            for (int i = 0; i < e.Length; i++)
                Assert.True(Math.Abs(e[i] - actual[name][i]) <= tolerance * Math.Max(1, Math.Abs(e[i])),
                    $"{name}[{i}]: one rank {e[i]}, data parallel {actual[name][i]}");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void MlpOnSeveralRanksMatchesOneRank(int ranks)
    {
        var single = MlpTrainer(null);
        var singleSteps = new List<StepRecord>();
        single.AfterStep += singleSteps.Add;
        single.Train();
        var results = OnRanks(ranks, c =>
        {
            var t = MlpTrainer(c);
            var steps = new List<StepRecord>();
            t.AfterStep += steps.Add;
            t.Train();
            return (Parameters: Parameters(t), Steps: steps);
        });
        foreach (var r in results)
        {
            AssertClose(Parameters(single), r.Parameters);
            // Every rank reports the global batch's loss and sample count, not its share's.
            for (int s = 0; s < singleSteps.Count; s++)
            {
                Assert.Equal(singleSteps[s].Samples, r.Steps[s].Samples);
                Assert.Equal(singleSteps[s].Loss, r.Steps[s].Loss, 1e-5);
                Assert.Equal(singleSteps[s].GradNorm, r.Steps[s].GradNorm, 1e-5);
                Assert.Equal(singleSteps[s].Metrics["accuracy"], r.Steps[s].Metrics["accuracy"], 1e-6);
            }
        }
        // The ranks' parameters are bitwise equal: the all-reduce hands every rank the same averages.
        foreach (var r in results.Skip(1))
            foreach (var (name, values) in results[0].Parameters) Assert.Equal(values, r.Parameters[name]);
    }

    [Fact]
    public void TinyGptOnTwoRanksMatchesOneRank()
    {
        Trainer Gpt(ICommunicator? c)
        {
            var model = new Gpt2Model(new Gpt2Config { VocabSize = 19, MaxSequenceLength = 8, Layers = 2, Heads = 2, Channels = 16 },
                new Generator(7 + (ulong)(c?.Rank ?? 0)));
            var tokens = Enumerable.Range(0, 400).Select(i => (i * 7 + i / 3) % 19).ToArray();
            return LanguageModelTraining.CreateTrainer(model, new TokenBatchLoader(tokens, batchSize: 4, sequenceLength: 8, shuffleSeed: 1), null,
                new LanguageModelTrainingOptions { Steps = 4, LearningRate = 1e-2f, WarmupSteps = 1, EvalEvery = 0, CheckpointEvery = 0 }, null, c);
        }
        var single = Gpt(null);
        single.Train();
        var parallel = OnRanks(2, c => { var t = Gpt(c); t.Train(); return Parameters(t); });
        // The attention's key bias (elements [C, 2C) of c_attn.bias) is left out: its gradient is exactly zero in exact
        // arithmetic (softmax ignores a shift shared by all keys), so in float it is pure rounding noise, different in
        // the two runs, which Adam's normalisation turns into steps of up to ~1e-5 in random directions.
        var expected = Parameters(single);
        foreach (var p in parallel)
        {
            foreach (var (name, values) in p.Where(kv => kv.Key.EndsWith("attn.c_attn.bias")))
                for (int i = 16; i < 32; i++) values[i] = expected[name][i];
            AssertClose(expected, p);
        }
    }

    [Fact]
    public void OnlyRankZeroWritesAndEveryRankResumesOntoAnotherNumberOfRanks()
    {
        var reference = MlpTrainer(null);
        reference.Train();
        // Three steps on two ranks (checkpoint at 3), then the rest on three... the global batch of 12 shares as 4 rows each.
        var dir = Path.Combine(_root, "run");
        // Only rank 1 is cancelled: both ranks stop after the same step.
        var stoppedAt = OnRanks(2, c =>
        {
            var t = MlpTrainer(c, dir, steps: 6);
            t.Train(c.Rank == 1 ? new CancelAfter(t, 3).Token : default);
            t.SaveCheckpoint();
            return t.Step;
        });
        Assert.Equal([3, 3], stoppedAt);
        Assert.Equal(["checkpoints", "metrics.jsonl"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order());
        Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Count(l => l.Contains("\"loss\"")));
        var resumed = OnRanks(3, c =>
        {
            var t = MlpTrainer(c, dir);
            Assert.Equal(3, t.TryResume()!.Step);
            t.Train();
            return Parameters(t);
        });
        foreach (var p in resumed) AssertClose(Parameters(reference), p);
        Assert.Equal(6, File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Count(l => l.Contains("\"loss\"")));
    }

    /// <summary>Cancels training once the trainer has completed <paramref name="steps"/> steps.</summary>
    private sealed class CancelAfter
    {
        private readonly CancellationTokenSource _source = new();

        public CancelAfter(Trainer trainer, int steps) => trainer.AfterStep += s => { if (s.Step == steps) _source.Cancel(); };

        public CancellationToken Token => _source.Token;
    }

    [Fact]
    public void RanksWhoseParametersDivergeAreNamedByTheChecksum()
    {
        var errors = OnRanks(3, c =>
        {
            var t = MlpTrainer(c);
            // A bug on rank 2 after step 1: its parameters change behind the all-reduce's back.
            t.AfterStep += s =>
            {
                if (c.Rank == 2 && s.Step == 1)
                    using (Nabla.Autograd.GradMode.NoGrad()) t.Model.Parameters().First().AsSpan()[0] += 1e-3f;
            };
            return Assert.Throws<RanksDivergedException>(() => t.Train()).Message;
        });
        foreach (var e in errors) Assert.StartsWith("step 2: the parameters of rank 2 differ from rank 0's", e);
    }

    [Fact]
    public void ABatchTheRanksCannotShareIsAnError()
    {
        var errors = OnRanks(5, c => Assert.Throws<ArgumentException>(() => MlpTrainer(c).Train()).Message);
        Assert.All(errors, e => Assert.Equal("batch 0 has 12 rows, which the 5 ranks cannot share equally; choose a batch size divisible by the number of ranks.", e));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void ZeroOneOnSeveralRanksMatchesOneRankAndKeepsOnlyItsShareOfTheState(int ranks)
    {
        var single = MlpTrainer(null);
        single.Train();
        long total = single.Optimizer.StateDict().Where(kv => kv.Key != "step").Sum(kv => (long)kv.Value.Count);
        var results = OnRanks(ranks, c =>
        {
            var t = MlpTrainer(c, zero: true);
            t.Train();
            return (Parameters: Parameters(t), StateElements: t.Optimizer.StateDict().Where(kv => kv.Key != "step").Sum(kv => (long)kv.Value.Count));
        });
        foreach (var r in results) AssertClose(Parameters(single), r.Parameters);
        Assert.Equal(total, results.Sum(r => r.StateElements));
        Assert.All(results, r => Assert.True(r.StateElements < total * 3 / 4, $"a rank keeps {r.StateElements} of {total} state elements"));
    }

    [Fact]
    public void ZeroOneCheckpointsHoldTheWholeStateAndResumeOnAnotherNumberOfRanks()
    {
        var reference = MlpTrainer(null);
        reference.Train();
        var referenceDir = Path.Combine(_root, "reference");
        var referenceAt3 = MlpTrainer(null, referenceDir);
        referenceAt3.Train(new CancelAfter(referenceAt3, 3).Token);
        var dir = Path.Combine(_root, "zero");
        OnRanks(2, c => { var t = MlpTrainer(c, dir, zero: true); t.Train(new CancelAfter(t, 3).Token); return 0; });
        // The sharded run's optimizer file is what one unsharded optimizer writes.
        var expected = Nabla.IO.SafeTensors.Load(Path.Combine(new CheckpointStore(referenceDir).PathOf(3), "optimizer.safetensors"));
        var actual = Nabla.IO.SafeTensors.Load(Path.Combine(new CheckpointStore(dir).PathOf(3), "optimizer.safetensors"));
        AssertClose(expected.ToDictionary(kv => kv.Key, kv => kv.Value.DType == DType.Int32 ? kv.Value.ToIntArray().Select(v => (float)v).ToArray() : kv.Value.ToArray()),
            actual.ToDictionary(kv => kv.Key, kv => kv.Value.DType == DType.Int32 ? kv.Value.ToIntArray().Select(v => (float)v).ToArray() : kv.Value.ToArray()));
        var resumed = OnRanks(3, c =>
        {
            var t = MlpTrainer(c, dir, zero: true);
            Assert.Equal(3, t.TryResume()!.Step);
            t.Train();
            return Parameters(t);
        });
        foreach (var p in resumed) AssertClose(Parameters(reference), p);
    }
}
