using Nabla.Autograd;

namespace Nabla.Tests.Ops;

/// <summary>Finite-difference checks of whole small convolutional networks: every op's backward, chained.</summary>
public class ConvNetGradCheckTests
{
    private static Tensor Leaf(Generator g, params int[] shape) => Tensor.Randn(g, shape).RequiresGrad_();

    [Fact]
    public void ConvMaxPoolLinearGradientsAgreeWithFiniteDifferences()
    {
        var g = new Generator(11);
        // x, conv weight, conv bias, linear weight, linear bias
        Tensor[] inputs = [Leaf(g, 2, 2, 6, 7), Leaf(g, 3, 2, 3, 3), Leaf(g, 3), Leaf(g, 4, 3 * 3 * 3), Leaf(g, 4)];
        var result = GradCheck.Check(p =>
        {
            var h = F.Conv2d(p[0], p[1], p[2], padding: 1).Tanh();                 // (2, 3, 6, 7)
            h = F.MaxPool2d(h, 2);                                                 // (2, 3, 3, 3)
            return F.Linear(h.Flatten(1), p[3], p[4]);                             // (2, 4)
        }, inputs, eps: 1e-2f);
        Assert.True(result.Passed, result.ToString());
    }

    [Fact]
    public void StridedGroupedDepthwiseBatchNormAvgPoolGradientsAgreeWithFiniteDifferences()
    {
        var g = new Generator(12);
        // x, grouped conv weight, depthwise weight, depthwise bias, batch-norm weight and bias, linear weight
        Tensor[] inputs = [Leaf(g, 3, 2, 9, 8), Leaf(g, 4, 1, 3, 2), Leaf(g, 4, 1, 3, 3), Leaf(g, 4), Leaf(g, 4), Leaf(g, 4), Leaf(g, 3, 4 * 2 * 2)];
        var result = GradCheck.Check(p =>
        {
            var h = F.Conv2d(p[0], p[1], null, stride: (2, 1), padding: (1, 0), dilation: (1, 2), groups: 2);  // (3, 4, 5, 6)
            h = F.Conv2d(h, p[2], p[3], padding: 1, groups: 4);                                            // (3, 4, 5, 6)
            h = F.BatchNorm(h, null, null, p[4], p[5], training: true).Tanh();
            h = F.AvgPool2d(h, 3, stride: 2, padding: 1, countIncludePad: false);                         // (3, 4, 3, 3)
            h = F.AdaptiveAvgPool2d(h, 2);                                                                 // (3, 4, 2, 2)
            return F.Linear(h.Flatten(1), p[6]);                                                           // (3, 3)
        }, inputs, eps: 1e-2f);
        Assert.True(result.Passed, result.ToString());
    }
}
