namespace Nabla.Tests.Tensors;

public class SmokeTests
{
    [Fact]
    public void MatMulAndBackwardAgreeWithHandComputedValues()
    {
        var a = Tensor.FromArray(new float[] { 1, 2, 3, 4 }, 2, 2).RequiresGrad_();
        var b = Tensor.FromArray(new float[] { 5, 6, 7, 8 }, 2, 2).RequiresGrad_();
        var y = a.MatMul(b);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, y.ToArray());
        y.Sum().Backward();
        // d(sum(AB))/dA = 1·Bᵀ row sums: [[11, 15], [11, 15]]
        Assert.Equal(new float[] { 11, 15, 11, 15 }, a.Grad!.ToArray());
        Assert.Equal(new float[] { 4, 4, 6, 6 }, b.Grad!.ToArray());
    }
}
