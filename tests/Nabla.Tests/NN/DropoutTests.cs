using Nabla.NN;

namespace Nabla.Tests.NN;

/// <summary>Dropout draws its own random mask, so only its statistics can be compared with PyTorch's: the share of
/// zeros is p, survivors are scaled by 1/(1-p) (so the mean is kept), and the gradient is the same mask.</summary>
public class DropoutTests
{
    [Theory]
    [InlineData(0.1f)]
    [InlineData(0.5f)]
    [InlineData(0.8f)]
    public void MaskHasTheRightRateAndScale(float p)
    {
        const int n = 200_000;
        var x = Tensor.Ones(n).RequiresGrad_();
        var y = F.Dropout(x, p, training: true, generator: new Generator(42));
        var values = y.ToArray();
        int zeros = values.Count(v => v == 0);
        float keep = 1f / (1f - p);
        foreach (var v in values)
            if (v != 0 && Math.Abs(v - keep) > 1e-6f * keep) Assert.Fail($"value {v} is neither 0 nor 1/(1-p) = {keep}");
        // Binomial(n, p): 5 standard deviations is far beyond chance.
        double sd = Math.Sqrt(n * p * (1 - p));
        Assert.InRange(zeros, n * p - 5 * sd, n * p + 5 * sd);
        Assert.InRange(values.Average(), 1 - 5 * sd * keep / n, 1 + 5 * sd * keep / n);

        var g = Tensor.Randn(new Generator(1), n);
        y.Backward(g);
        var dx = x.Grad!.ToArray();
        var gv = g.ToArray();
        for (int i = 0; i < n; i++)
            if (dx[i] != gv[i] * values[i]) Assert.Fail($"gradient at {i}: {dx[i]}, expected upstream {gv[i]} times mask {values[i]}");
    }

    [Fact]
    public void SeededMasksRepeatAndEvalModeIsTheIdentity()
    {
        var x = Tensor.Randn(new Generator(3), 4, 50);
        Assert.Equal(F.Dropout(x, 0.3f, generator: new Generator(9)).ToArray(), F.Dropout(x, 0.3f, generator: new Generator(9)).ToArray());
        Assert.NotEqual(F.Dropout(x, 0.3f, generator: new Generator(9)).ToArray(), F.Dropout(x, 0.3f, generator: new Generator(10)).ToArray());
        Assert.Same(x, F.Dropout(x, 0.3f, training: false));
        Assert.Same(x, F.Dropout(x, 0f));
        Assert.All(F.Dropout(x, 1f).ToArray(), v => Assert.Equal(0f, v));
        var layer = new Dropout(0.5f, new Generator(1));
        layer.Eval();
        Assert.Equal(x.ToArray(), layer.Forward(x).ToArray());
        layer.Train();
        Assert.Contains(0f, layer.Forward(x).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => F.Dropout(x, 1.5f));
    }
}
