using Nabla.Autograd;
using Nabla.NN;

namespace Nabla.Tests.NN;

/// <summary>What the PyTorch parity fixtures cannot pin down: initialisation range, dropout between layers (random),
/// a finite-difference check of a small packed bidirectional LSTM, and the one-line errors for bad input.</summary>
public class RecurrentTests
{
    [Fact]
    public void ParametersAreUniformInPlusMinusOneOverSqrtHidden()
    {
        var gru = new GRU(5, 16, numLayers: 2, bidirectional: true, generator: new Generator(3));
        float bound = 1f / MathF.Sqrt(16);
        var values = gru.Parameters().SelectMany(p => p.ToArray()).ToArray();
        Assert.All(values, v => Assert.InRange(v, -bound, bound));
        Assert.InRange(values.Max(), 0.95f * bound, bound); // spread over the whole range, not a constant
        Assert.InRange(values.Min(), -bound, -0.95f * bound);
        Assert.Equal(
            ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse",
             "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1", "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse"],
            gru.NamedParameters().Select(p => p.Name));
        Assert.Equal([48, 32], gru.StateDict()["weight_ih_l1"].Shape.ToArray()); // (3·hidden, 2·hidden) after a bidirectional layer
    }

    [Fact]
    public void DropoutActsBetweenLayersOnlyInTraining()
    {
        var x = Tensor.Randn(new Generator(1), 6, 2, 3);
        var withDropout = new LSTM(3, 8, numLayers: 2, dropout: 0.5f, generator: new Generator(7));
        var without = new LSTM(3, 8, numLayers: 2);
        without.LoadStateDict(withDropout.StateDict());
        var reference = without.Forward(x).ToArray();
        Assert.NotEqual(reference, withDropout.Train().Forward(x).ToArray());
        Assert.Equal(reference, withDropout.Eval().Forward(x).ToArray());
        // One layer: nothing lies between layers, so dropout changes nothing even in training (as in PyTorch).
        var single = new RNN(3, 4, dropout: 0.5f, generator: new Generator(2));
        Assert.Equal(single.Eval().Forward(x).ToArray(), single.Train().Forward(x).ToArray());
    }

    [Fact]
    public void PackedBidirectionalLstmGradientsMatchFiniteDifferences()
    {
        var lstm = new LSTM(2, 3, bidirectional: true, batchFirst: true, generator: new Generator(11));
        var gen = new Generator(12);
        var x = Tensor.Randn(gen, 2, 4, 2).RequiresGrad_();
        var h0 = Tensor.Randn(gen, 2, 2, 3).RequiresGrad_();
        var c0 = Tensor.Randn(gen, 2, 2, 3).RequiresGrad_();
        Tensor[] inputs = [x, h0, c0, .. lstm.Parameters()];
        var result = GradCheck.Check(t =>
        {
            var (output, hidden, cell) = lstm.Forward(t[0], t[1], t[2], lengths: [4, 2]);
            return Tensor.Concat([output.Reshape(-1), hidden.Reshape(-1), cell.Reshape(-1)]);
        }, inputs, eps: 1e-2f);
        Assert.True(result.Passed, result.ToString());
    }

    [Fact]
    public void BadInputIsNamedInOneLine()
    {
        var lstm = new LSTM(3, 4, numLayers: 2, batchFirst: true);
        Assert.Equal("LSTM: input must be (batch, time, features) with 3 features, got [2, 5, 4].",
            Assert.Throws<ArgumentException>(() => lstm.Forward(Tensor.Zeros(2, 5, 4))).Message);
        Assert.Equal("LSTM: c0 must be (layers·directions, batch, hidden) = [2, 2, 4], got [1, 2, 4].",
            Assert.Throws<ArgumentException>(() => lstm.Forward(Tensor.Zeros(2, 5, 3), null, Tensor.Zeros(1, 2, 4))).Message);
        var gru = new GRU(3, 4);
        Assert.Equal("GRU: every length must be in 1..5 (the padded length), got 0.",
            Assert.Throws<ArgumentException>(() => gru.Forward(Tensor.Zeros(5, 2, 3), null, [3, 0])).Message);
        Assert.Equal("GRU: 1 lengths given for a batch of 2 sequences.",
            Assert.Throws<ArgumentException>(() => gru.Forward(Tensor.Zeros(5, 2, 3), null, [3])).Message);
        Assert.Equal("LSTM: proj_size must be in 0..3 (below hidden_size), got 4.",
            Assert.Throws<ArgumentException>(() => new LSTM(3, 4, projSize: 4)).Message);
        Assert.Throws<ArgumentException>(() => new RNN(0, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RNN(3, 4, dropout: 1.5f));
    }
}
