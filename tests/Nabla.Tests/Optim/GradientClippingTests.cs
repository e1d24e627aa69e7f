using Nabla.Optim;

namespace Nabla.Tests.Optim;

public class GradientClippingTests
{
    [Fact]
    public void TheNormOfHugeButFiniteGradientsIsFiniteAndRight()
    {
        // Each square (up to 9e60) overflows float; the norm (~1e31) does not.
        var values = Enumerable.Range(0, 1000).Select(i => (i % 7 - 3) * 1e30f).ToArray();
        var a = Tensor.Zeros(600).RequiresGrad_();
        var b = Tensor.Zeros(20, 20).RequiresGrad_();
        a.Grad = Tensor.FromArray(values[..600]);
        b.Grad = Tensor.FromArray(values[600..], 20, 20);
        double expected = Math.Sqrt(values.Sum(v => (double)v * v));

        float norm = GradientClipping.ClipGradNorm([a, b], maxNorm: 1f);

        Assert.True(float.IsFinite(norm));
        Assert.Equal(expected, norm, expected * 1e-6);
        // clipped to norm 1: every gradient scaled by 1 / norm
        var clipped = a.Grad.ToArray().Concat(b.Grad.ToArray()).ToArray();
        Assert.Equal(1.0, Math.Sqrt(clipped.Sum(v => (double)v * v)), 1e-5);
        for (int i = 0; i < values.Length; i++) Assert.Equal(values[i] / expected, clipped[i], 1e-6);
    }
}
