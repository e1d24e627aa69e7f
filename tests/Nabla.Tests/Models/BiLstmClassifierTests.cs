using Nabla.Autograd;
using Nabla.Models.Text;
using Nabla.Optim;
using Nabla.Text.Preprocessing;
using Nabla.Training;

namespace Nabla.Tests.Models;

public sealed class BiLstmClassifierTests
{
    [Fact]
    public void LearnsATaskThatOnlyWordOrderSolves()
    {
        var train = OrderTask.Generate(pairs: 500, seed: 1);
        var test = OrderTask.Generate(pairs: 200, seed: 2);
        // The twins share their bag of words: a bag-of-words model cannot beat 50 % on this test set.
        for (int i = 0; i < test.Count; i += 2)
            Assert.Equal(test[i].Words.Order(), test[i + 1].Words.Order());

        var vocabulary = WordVocabulary.Build(train.Select(t => t.Words));
        var trainBatches = new SequenceClassificationBatches(train.Select(t => vocabulary.Encode(t.Words)).ToArray(), train.Select(t => t.Label).ToArray(), 32, seed: 3);
        var testBatches = new SequenceClassificationBatches(test.Select(t => vocabulary.Encode(t.Words)).ToArray(), test.Select(t => t.Label).ToArray(), 100, seed: null);
        Generator.ManualSeed(4);
        var model = new BiLstmClassifier(vocabulary.Count, classes: 2, embeddingDim: 16, hiddenSize: 16, dropout: 0f);
        var optimizer = new AdamW(model.Parameters(), learningRate: 1e-2f, weightDecay: 0f);
        var trainer = new Trainer(model, (logits, labels) => F.CrossEntropy(logits, labels), trainBatches, optimizer,
            new TrainerOptions { Steps = 2 * trainBatches.BatchesPerEpoch, Seed = 5 });
        trainer.Train();

        var metrics = ClassificationMetrics.Evaluate(model, testBatches, testBatches.BatchesPerEpoch, 2);
        Assert.Equal(400, metrics.Total);
        Assert.True(metrics.Accuracy > 0.95, $"test accuracy {metrics.Accuracy:P1} after 2 epochs; the recurrence should have learnt the order");
    }

    [Fact]
    public void PaddingDoesNotChangeARowsLogits()
    {
        Generator.ManualSeed(6);
        var model = new BiLstmClassifier(vocabularySize: 20, classes: 3, embeddingDim: 8, hiddenSize: 6, numLayers: 2);
        model.Eval();
        using var _ = GradMode.NoGrad();
        int[] shortText = [5, 9, 2], longText = [3, 4, 5, 6, 7, 8, 9];
        var alone = model.Forward(Tensor.FromArray(shortText, 1, 3)).ToArray();
        var (batch, _) = SequenceBatching.Pad([longText, shortText]);
        var together = model.Forward(batch).ToArray();
        for (int k = 0; k < 3; k++) Assert.Equal(alone[k], together[3 + k], 5);
    }

    [Fact]
    public void LoadsPretrainedVectorsForTheWordsItKnows()
    {
        var vocabulary = WordVocabulary.Build([["cat", "dog"]]);
        var model = new BiLstmClassifier(vocabulary.Count, classes: 2, embeddingDim: 3, hiddenSize: 4);
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(path, ["3 3", "cat 0.5 -1 2e-1", "zebra 1 1 1", "dog 4 5 6"]); // word2vec text header, then GloVe lines
            Assert.Equal(2, model.LoadPretrainedEmbeddings(path, vocabulary));
            var weight = model.StateDict()["embedding.weight"].ToArray();
            Assert.Equal([0.5f, -1f, 0.2f], weight.Skip(3 * vocabulary.IdOf("cat")).Take(3));
            Assert.Equal([4f, 5f, 6f], weight.Skip(3 * vocabulary.IdOf("dog")).Take(3));

            File.WriteAllLines(path, ["cat 1 2"]);
            var e = Assert.Throws<Nabla.IO.InputFileException>(() => model.LoadPretrainedEmbeddings(path, vocabulary));
            Assert.Equal($"{path}:1: 2 numbers after the word, expected 3 (the embedding size).", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
