using Nabla.Data;
using Nabla.Models.Text;
using Nabla.Optim;
using Nabla.Training;

namespace Nabla.Tests.Models;

public sealed class CharLstmTests
{
    [Fact]
    public void LearnsAPatternThatNeedsMemoryAndGreedilyContinuesIt()
    {
        // "aab" repeated: after an 'a' the next character is 'a' or 'b' depending on the one before, so predicting it
        // needs the state; a model that learnt it is near 0 bits/char, one without memory stays at ≥ 2/3·1 bit.
        int[] pattern = [0, 0, 1];
        var ids = Enumerable.Range(0, 3000).Select(i => pattern[i % 3]).ToArray();
        Generator.ManualSeed(1);
        var model = new CharLstm(vocabularySize: 2, embeddingDim: 8, hiddenSize: 16, numLayers: 1, dropout: 0f);
        var batches = new TokenBatchLoader(ids, batchSize: 8, sequenceLength: 12, shuffleSeed: 2);
        var trainer = new Trainer(model, CharLstm.Loss, batches, new AdamW(model.Parameters(), 1e-2f, weightDecay: 0f), new TrainerOptions { Steps = 150 });
        trainer.Train();
        double bits = trainer.Evaluate(new TokenBatchLoader(ids, 8, 12), 4).Loss / Math.Log(2);
        Assert.True(bits < 0.1, $"{bits:F3} bits/char on a deterministic pattern");
        Assert.Equal([0, 1, 0, 0, 1, 0, 0, 1], model.Generate([0, 0, 1, 0], 8, temperature: 0, new Generator(3)));
    }

    [Fact]
    public void SamplingAtAHighTemperatureDrawsEveryCharacter()
    {
        Generator.ManualSeed(4);
        var model = new CharLstm(vocabularySize: 5, embeddingDim: 4, hiddenSize: 8, numLayers: 2);
        var drawn = model.Generate([0], 400, temperature: 100, new Generator(5));
        Assert.Equal([0, 1, 2, 3, 4], drawn.Distinct().Order());
        Assert.True(model.Training, "Generate restores the training mode");
    }
}
