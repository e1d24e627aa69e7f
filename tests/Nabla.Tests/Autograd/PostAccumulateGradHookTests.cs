namespace Nabla.Tests.Autograd;

public class PostAccumulateGradHookTests
{
    [Fact]
    public void RunsOncePerBackwardWithTheFinalGradient()
    {
        var w = Tensor.FromArray([1f, 2f], 2).RequiresGrad_();
        var seen = new List<float[]>();
        var hook = w.RegisterPostAccumulateGradHook(t => seen.Add(t.Grad!.ToArray()));
        // w feeds three ops: the hook must see the sum of all three contributions, once.
        var x = Tensor.FromArray([3f, 5f], 2);
        w.Mul(x).Sum().Add(w.Sum()).Add(w.Mul(w).Sum()).Backward();
        Assert.Equal([[3f + 1 + 2, 5f + 1 + 4]], seen);
        // A second backward adds into the gradient; the hook sees the accumulated value.
        w.Sum().Backward();
        Assert.Equal([7f, 11f], seen[1]);
        hook.Dispose();
        w.Sum().Backward();
        Assert.Equal(2, seen.Count);
    }

    [Fact]
    public void OnlyForLeaves()
    {
        var w = Tensor.FromArray([1f], 1).RequiresGrad_();
        Assert.Throws<InvalidOperationException>(() => w.Mul(w).RegisterPostAccumulateGradHook(_ => { }));
    }
}
