using Nabla.Cli.Commands;
using Nabla.NN;

namespace Nabla.Tests.Cli;

/// <summary>`nabla demo adding-problem` on tiny settings (its real outcome is the documented run in
/// docs/vanishing-gradients.md): the data is the adding problem, the gradient per step vanishes or explodes as the
/// recurrent initialisation says, and the command writes its charts and table.</summary>
[Collection("Console")]
public class AddingProblemCliTests : CliTest
{
    [Fact]
    public void BatchesMarkOneValueInEachHalfAndTargetTheirSum()
    {
        var (x, target) = AddingProblemCommand.Batch(new Generator(3), 9, 50);
        var values = x.ToArray();
        var targets = target.ToArray();
        for (int b = 0; b < 50; b++)
        {
            var marked = Enumerable.Range(0, 9).Where(t => values[(t * 50 + b) * 2 + 1] == 1).ToArray();
            Assert.Equal(2, marked.Length);
            Assert.True(marked[0] < 4 && marked[1] >= 4, $"sequence {b}: markers at {string.Join(",", marked)}");
            Assert.Equal(values[(marked[0] * 50 + b) * 2] + values[(marked[1] * 50 + b) * 2], targets[b], 6);
            Assert.All(Enumerable.Range(0, 9), t => Assert.InRange(values[(t * 50 + b) * 2], 0f, 1f));
        }
    }

    [Fact]
    public void GradientVanishesWithTanhAndExplodesWithAScaledIdentityRelu()
    {
        var vanishing = AddingProblemCommand.Train(new AddingProblemConfig { Steps = 1, Hidden = 16 }, "rnn", 40);
        Assert.True(vanishing.GradNormAtStart[0] < 1e-3 * vanishing.GradNormAtStart[^1],
            $"tanh RNN: first step {vanishing.GradNormAtStart[0]:G3} vs last {vanishing.GradNormAtStart[^1]:G3}");
        var exploding = AddingProblemCommand.Train(new AddingProblemConfig
        {
            Steps = 1, Hidden = 16, Nonlinearity = RnnNonlinearity.Relu, RecurrentInit = RecurrentInit.Identity, RecurrentGain = 1.5f,
        }, "rnn", 40);
        Assert.True(exploding.GradNormAtStart[0] > 1e3 * exploding.GradNormAtStart[^1],
            $"1.5·identity ReLU RNN: first step {exploding.GradNormAtStart[0]:G3} vs last {exploding.GradNormAtStart[^1]:G3}");
    }

    [Fact]
    public void WritesChartsAndTable()
    {
        var (exit, output, error) = CliRunner.Run("demo", "adding-problem", "--lengths", "8,12", "--steps", "3", "--hidden", "4",
            "--recurrent-init", "orthogonal", "--clip", "1", "--out", TempDir);
        Assert.True(exit == 0, error);
        foreach (var file in new[] { "adding-gradnorm-rnn.png", "adding-gradnorm-lstm.png", "adding-gradnorm-gru.png", "adding-loss-T8.png", "adding-loss-T12.png", "results.md" })
            Assert.True(File.Exists(Path.Combine(TempDir, file)), $"{file} missing");
        Assert.Equal(6, File.ReadAllLines(Path.Combine(TempDir, "results.md")).Count(l => l.StartsWith("| RNN") || l.StartsWith("| LSTM") || l.StartsWith("| GRU")));
        Assert.Contains("| GRU | 12 |", output);

        var (badExit, _, badError) = CliRunner.Run("demo", "adding-problem", "--models", "rnn,transformer");
        Assert.NotEqual(0, badExit);
        Assert.Contains("--models takes rnn, lstm and gru, got 'rnn,transformer'.", badError);
    }
}
