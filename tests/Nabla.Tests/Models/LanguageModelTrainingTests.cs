using Nabla.Data;
using Nabla.Models.Gpt2;
using Nabla.Training;

namespace Nabla.Tests.Models;

public class LanguageModelTrainingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nabla-lm-" + Guid.NewGuid().ToString("N"));
    private static readonly Gpt2Config Tiny = new() { VocabSize = 13, MaxSequenceLength = 16, Channels = 32, Layers = 2, Heads = 2 };
    private static readonly LanguageModelTrainingOptions Options = new() { Steps = 8, LearningRate = 3e-3f, WarmupSteps = 2, EvalEvery = 4, EvalBatches = 2, CheckpointEvery = 3 };

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private sealed class KilledException : Exception;

    [Fact]
    public void ResumingAfterAKillLosesOnlyTheStepsSinceTheCheckpoint()
    {
        var data = new AdditionDataset(2, batchSize: 8, seed: 3);
        // Uninterrupted run.
        var straight = new Gpt2Model(Tiny, new Generator(7));
        LanguageModelTraining.CreateTrainer(straight, data, data, Options, Path.Combine(_dir, "a")).Train();

        // The same run, killed during step 5 (after the checkpoint of step 3), then resumed by a new process.
        var killed = new Gpt2Model(Tiny, new Generator(7));
        var first = LanguageModelTraining.CreateTrainer(killed, data, data, Options, Path.Combine(_dir, "b"));
        first.AfterStep += s => { if (s.Step == 5) throw new KilledException(); };
        Assert.Throws<KilledException>(() => first.Train());

        var resumed = new Gpt2Model(Tiny, new Generator(99)); // different init: everything must come from the checkpoint
        var second = LanguageModelTraining.CreateTrainer(resumed, data, data, Options, Path.Combine(_dir, "b"));
        Assert.Equal(3, second.TryResume()?.Step);
        second.Train();
        Assert.Equal(8, second.Step);

        var expected = straight.StateDict();
        foreach (var (name, p) in resumed.StateDict())
            Assert.True(expected[name].ToArray().SequenceEqual(p.ToArray()), $"{name} differs from the uninterrupted run");
        // metrics: one line per step (steps 4-5 of the killed run were dropped and redone), plus validations
        var steps = File.ReadAllLines(Path.Combine(_dir, "b", "metrics.jsonl")).Where(l => l.Contains("\"loss\"")).ToList();
        Assert.Equal(8, steps.Count);
    }

    [Fact]
    public void DivergingLossStopsWithTheStepAndTensorNamed()
    {
        var data = new AdditionDataset(2, batchSize: 4, seed: 3);
        var model = new Gpt2Model(Tiny, new Generator(1));
        // A NaN weight poisons the forward pass.
        model.Blocks[1].Mlp.CFc.Weight.AsSpan()[5] = float.NaN;
        var trainer = LanguageModelTraining.CreateTrainer(model, data, null, Options, null);
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Train());
        Assert.Contains("step 1", e.Message);
        Assert.Contains("'h.1.mlp.c_fc.weight'", e.Message);
    }

    [Fact]
    public void AdditionBatchesAreDeterministicAndOnlyTheAnswerIsTrained()
    {
        var data = new AdditionDataset(3, batchSize: 4, seed: 11);
        var (x1, y1) = data.Batch(5);
        var (x2, y2) = new AdditionDataset(3, batchSize: 4, seed: 11).Batch(5);
        Assert.Equal(x1.ToIntArray(), x2.ToIntArray());
        Assert.Equal(y1.ToIntArray(), y2.ToIntArray());
        var row = AdditionDataset.Decode(x1.Select(0, 0).ToIntArray());
        var question = row[..(row.IndexOf('=') + 1)];
        var parts = question.TrimEnd('=').Split('+').Select(int.Parse).ToArray();
        Assert.Equal(question, data.Question(parts[0], parts[1])); // fixed width: "007+120="
        Assert.Equal(8, question.Length);
        var targets = y1.Select(0, 0).ToIntArray();
        var learned = AdditionDataset.Decode(targets.Where(t => t >= 0));
        Assert.Equal(data.Answer(parts[0], parts[1]), learned);
        Assert.Equal($"{parts[0] + parts[1]:D4}\n", learned);
        Assert.All(targets.Take(question.Length - 1), t => Assert.Equal(AdditionDataset.IgnoreIndex, t));
        Assert.DoesNotContain(data.HeldOut, p => p == (parts[0], parts[1]));
    }

    [Fact]
    public void ShardsRoundTripAndCorruptShardsAreNamed()
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "train_000000.bin");
        var tokens = Enumerable.Range(0, 1000).Select(i => i * 37 % 50257).ToArray();
        TokenShard.Write(path, tokens);
        Assert.Equal(tokens, TokenShard.Read(path).Select(t => (int)t).ToArray());
        var loader = TokenBatchLoader.FromShards([path], 2, 10, shuffleSeed: 1);
        var (x, y) = loader.Batch(3);
        for (int b = 0; b < 2; b++)
            Assert.Equal(x.Select(0, b).ToIntArray()[1..], y.Select(0, b).ToIntArray()[..^1]);

        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^7]);
        var e = Assert.Throws<DataFormatException>(() => TokenShard.Read(path));
        Assert.Contains("train_000000.bin", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void SlidingWindowPerplexityScoresEveryTokenOnceAndMatchesOneWindow()
    {
        var model = new Gpt2Model(Tiny, new Generator(5));
        var tokens = Enumerable.Range(0, 15).Select(i => i * 7 % 13).ToArray();
        var whole = PerplexityEvaluator.Evaluate(model, tokens, window: 15, stride: 15);
        Assert.Equal(14, whole.Tokens);
        // direct: mean cross-entropy of one forward pass over all positions
        var logits = model.Forward(Tensor.FromArray(tokens[..14], 1, 14));
        double direct = F.CrossEntropy(logits.Reshape(14, -1), Tensor.FromArray(tokens[1..])).Item();
        Assert.Equal(direct, whole.Loss, 5);
        var sliding = PerplexityEvaluator.Evaluate(model, tokens, window: 6, stride: 2);
        Assert.Equal(14, sliding.Tokens);
        Assert.True(sliding.Perplexity > 1 && double.IsFinite(sliding.Perplexity));
    }
}
