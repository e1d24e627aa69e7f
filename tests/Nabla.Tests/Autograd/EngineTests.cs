using Nabla.Autograd;

namespace Nabla.Tests.Autograd;

/// <summary>The autograd engine's contract, as PyTorch users expect it.</summary>
public class EngineTests
{
    private static Tensor Leaf(params float[] values) => Tensor.FromArray(values).RequiresGrad_();

    [Fact]
    public void GradientsAccumulateAcrossBackwardCalls()
    {
        var x = Leaf(1, 2, 3);
        x.Mul(2f).Sum().Backward();
        x.Mul(3f).Sum().Backward();
        Assert.Equal(new float[] { 5, 5, 5 }, x.Grad!.ToArray());
        x.Grad = null;
        x.Square().Sum().Backward();
        Assert.Equal(new float[] { 2, 4, 6 }, x.Grad!.ToArray());
    }

    [Fact]
    public void ATensorUsedTwiceGetsBothContributions()
    {
        var x = Leaf(1, -2, 3);
        var y = x.Mul(x).Add(x); // y = x² + x, dy/dx = 2x + 1
        y.Backward(Tensor.FromArray(new float[] { 1, 10, 100 }));
        Assert.Equal(new float[] { 3, -30, 700 }, x.Grad!.ToArray());

        var z = Leaf(0.5f, 1.5f);
        var e = z.Exp();
        e.Mul(2f).Add(e.Mul(3f)).Sum().Backward(); // diamond: 5·exp(z)
        Assert.Equal(new[] { 5 * MathF.Exp(0.5f), 5 * MathF.Exp(1.5f) }, z.Grad!.ToArray(), new FloatComparer(1e-6f));
    }

    [Fact]
    public void GradientsStayValidAfterTheEngineRecyclesItsBuffers()
    {
        var x = Leaf(Enumerable.Range(0, 1000).Select(i => i / 1000f).ToArray());
        x.Exp().Mul(2f).Square().Sum().Backward();
        var saved = x.Grad!.ToArray();
        // Churn the pool with buffers of the same size; a buffer released while still in use would change.
        for (int i = 0; i < 50; i++) _ = Tensor.Full(i, 1000).Mul(3f).Add(1f);
        Assert.Equal(saved, x.Grad!.ToArray());
        var expected = x.Detach().ToArray().Select(v => 2 * MathF.Exp(v) * 2 * (2 * MathF.Exp(v))).ToArray();
        Assert.Equal(expected, saved, new FloatComparer(2e-5f));
    }

    [Fact]
    public void DetachCutsTheGraphButSharesMemory()
    {
        var x = Leaf(1, 2);
        var d = x.Detach();
        Assert.False(d.RequiresGrad);
        Assert.Same(x.Storage, d.Storage);
        var y = d.Mul(2f);
        Assert.False(y.RequiresGrad);
        var e = Assert.Throws<InvalidOperationException>(() => y.Sum().Backward());
        Assert.Contains("does not require grad", e.Message);
        d[0] = 7; // allowed: detached
        Assert.Equal(7, x.Detach()[0]);
    }

    [Fact]
    public void NoGradScopeRecordsNothing()
    {
        var x = Leaf(1, 2);
        Tensor y;
        using (GradMode.NoGrad())
        {
            Assert.False(GradMode.IsEnabled);
            y = x.Mul(2f).Exp();
            x.AddInPlace(Tensor.Ones(2)); // in-place on a leaf is allowed here (optimizer updates)
        }
        Assert.True(GradMode.IsEnabled);
        Assert.False(y.RequiresGrad);
        Assert.Null(y.GradFn);
        Assert.Equal(new float[] { 2, 3 }, x.ToArray());
        Assert.True(x.Mul(2f).RequiresGrad);
    }

    [Fact]
    public void RetainGraphAllowsASecondBackward()
    {
        var x = Leaf(1, 2);
        var y = x.Square().Sum();
        y.Backward(retainGraph: true);
        y.Backward();
        Assert.Equal(new float[] { 4, 8 }, x.Grad!.ToArray());
    }

    [Fact]
    public void SecondBackwardWithoutRetainGraphSaysWhatToDo()
    {
        var x = Leaf(1, 2);
        var y = x.Square().Exp().Sum();
        y.Backward();
        var e = Assert.Throws<InvalidOperationException>(() => y.Backward());
        Assert.Contains("second time", e.Message);
        Assert.Contains("retainGraph", e.Message);
    }

    [Fact]
    public void NonScalarBackwardNeedsAGradient()
    {
        var x = Leaf(1, 2, 3);
        var y = x.Mul(2f).Reshape(3, 1);
        var e = Assert.Throws<InvalidOperationException>(() => y.Backward());
        Assert.Contains("[3, 1]", e.Message);
        var wrong = Assert.Throws<ArgumentException>(() => y.Backward(Tensor.Ones(3)));
        Assert.Contains("[3]", wrong.Message);
        Assert.Contains("[3, 1]", wrong.Message);
        y.Backward(Tensor.FromArray(new float[] { 1, 2, 3 }, 3, 1));
        Assert.Equal(new float[] { 2, 4, 6 }, x.Grad!.ToArray());
    }

    [Fact]
    public void RetainGradKeepsANonLeafGradient()
    {
        var x = Leaf(1, 2);
        var h = x.Mul(3f).RetainGrad();
        var k = x.Mul(2f); // not retained
        h.Square().Add(k).Sum().Backward();
        Assert.Equal(new float[] { 6, 12 }, h.Grad!.ToArray()); // d(h²)/dh = 2h
        Assert.Null(k.Grad);
        Assert.Equal(new float[] { 20, 38 }, x.Grad!.ToArray()); // 2h·3 + 2
    }

    [Fact]
    public void InPlaceChangesOfTensorsThatRequireGradAreRefused()
    {
        var x = Leaf(1, 2, 3, 4);
        Assert.Throws<InvalidOperationException>(() => x.AddInPlace(Tensor.Ones(4)));
        Assert.Throws<InvalidOperationException>(() => x.MulInPlace(2f));
        Assert.Throws<InvalidOperationException>(() => x.Fill(0f));
        Assert.Throws<InvalidOperationException>(() => x.CopyFrom(Tensor.Zeros(4)));
        var e = Assert.Throws<InvalidOperationException>(() => x[1] = 5);
        Assert.Contains("NoGrad", e.Message);
        var view = x.Narrow(0, 1, 2);
        Assert.Throws<InvalidOperationException>(() => view.Fill(0f)); // a view of it too
        var y = x.Mul(2f);
        Assert.Throws<InvalidOperationException>(() => y.Zero()); // and results computed from it
        Assert.Equal(new float[] { 1, 2, 3, 4 }, x.ToArray());
    }

    [Fact]
    public void RequiresGradRules()
    {
        Assert.Throws<InvalidOperationException>(() => Tensor.FromArray(new[] { 1, 2 }).RequiresGrad = true);
        var y = Leaf(1).Mul(2f);
        Assert.Throws<InvalidOperationException>(() => y.RequiresGrad = false);
        Assert.False(y.IsLeaf);
        Assert.True(Leaf(1).IsLeaf);
    }

    [Fact]
    public void BackwardOnALeafAndThroughIntOnlyInputs()
    {
        var x = Leaf(1, 2);
        x.Backward(Tensor.FromArray(new float[] { 3, 4 }));
        Assert.Equal(new float[] { 3, 4 }, x.Grad!.ToArray());
        var w = Tensor.Randn(new Generator(1), 5, 3).RequiresGrad_();
        F.Embedding(Tensor.FromArray(new[] { 4, 4, 0 }), w).Sum().Backward();
        Assert.Equal(new float[] { 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2 }, w.Grad!.ToArray());
    }

    private sealed class FloatComparer(float tol) : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) <= tol * Math.Max(1, Math.Abs(b));
        public int GetHashCode(float obj) => 0;
    }
}
