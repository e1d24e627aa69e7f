namespace Nabla.Tests.Tensors;

/// <summary>Views share memory, View refuses what Reshape copies, Int32 tensors, and errors that name shapes.</summary>
public class TensorTests
{
    private static Tensor Grid() => Tensor.Arange(12).Reshape(3, 4);

    [Fact]
    public void WritesThroughAViewAreSeenInTheBase()
    {
        var b = Grid();
        var t = b.T;
        t[1, 2] = 100;
        Assert.Equal(100, b[2, 1]);
        b.Slice(1, 0, 4, 2).Fill(-1); // columns 0 and 2
        Assert.Equal(new float[] { -1, 1, -1, 3, -1, 5, -1, 7, -1, 9, -1, 11 }.Select((v, i) => i == 9 ? 100 : v), b.ToArray());
        b.Narrow(0, 2, 1).CopyFrom(Tensor.FromArray(new float[] { 7, 7, 7, 7 }));
        Assert.Equal(new float[] { 7, 7, 7, 7 }, b.Select(0, 2).ToArray());
        var u = Tensor.Zeros(6);
        u.Unfold(0, 2, 2).Select(1, 1).Fill(1); // every second element
        Assert.Equal(new float[] { 0, 1, 0, 1, 0, 1 }, u.ToArray());
        Assert.Same(b.Storage, b.Reshape(4, 3).Storage);
        Assert.Same(b.Storage, b.Permute(1, 0).Storage);
        Assert.Same(b.Storage, b.Unsqueeze(0).Expand(2, 3, 4).Storage);
    }

    [Fact]
    public void ViewRefusesWhatReshapeCopies()
    {
        var b = Grid();
        var t = b.T;
        var e = Assert.Throws<InvalidOperationException>(() => t.View(12));
        Assert.Contains("[4, 3]", e.Message);
        Assert.Contains("Reshape", e.Message);
        var r = t.Reshape(12);
        Assert.NotSame(b.Storage, r.Storage);
        Assert.Equal(new float[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, r.ToArray());
        // A non-contiguous tensor can still be viewed where its strides allow it (splitting a dimension).
        var sliced = Tensor.Arange(24).Reshape(4, 6).Narrow(1, 0, 3);
        var v = sliced.View(2, 2, 3);
        Assert.Same(sliced.Storage, v.Storage);
        Assert.Equal(sliced.ToArray(), v.ToArray());
    }

    [Fact]
    public void Int32Tensors()
    {
        var t = Tensor.FromArray(new[] { 3, -1, 16777217 }, 3);
        Assert.Equal(DType.Int32, t.DType);
        Assert.Equal(new[] { 3, -1, 16777217 }, t.ToIntArray());
        Assert.Equal(-1, t[1]);
        t[0] = 9;
        Assert.Equal(new[] { 9, -1, 16777217 }, t.ToIntArray());
        Assert.Equal(-1, t.Narrow(0, 1, 1).Item());
        Assert.Equal(new[] { 16777217, -1, 9 }, Tensor.Concat([t.Narrow(0, 2, 1), t.Narrow(0, 1, 1), t.Narrow(0, 0, 1)]).ToIntArray());
        Assert.Equal(DType.Int32, t.Clone().DType);
        Assert.Equal(new float[] { 9, -1, 16777216 }, t.To(DType.Float32).ToArray());
        Assert.Equal(new[] { 1, -2 }, Tensor.FromArray(new float[] { 1.7f, -2.9f }).To(DType.Int32).ToIntArray());
        var e = Assert.Throws<InvalidOperationException>(() => t.Add(t));
        Assert.Contains("Int32", e.Message);
        Assert.Contains("[3]", e.Message);
    }

    [Fact]
    public void ErrorsNameTheShapes()
    {
        var a = Tensor.Zeros(3, 4);
        void Names(Action act, params string[] parts)
        {
            var e = Record.Exception(act);
            Assert.NotNull(e);
            foreach (var p in parts) Assert.Contains(p, e!.Message);
        }
        Names(() => a.Add(Tensor.Zeros(5)), "[3, 4]", "[5]");
        Names(() => a.MatMul(Tensor.Zeros(5, 2)), "[3, 4]", "[5, 2]");
        Names(() => a.Reshape(5, 2), "[5, 2]", "[3, 4]", "12");
        Names(() => a.View(-1, 5), "[-1, 5]", "[3, 4]");
        Names(() => a.Expand(3, 5), "[3, 4]", "[3, 5]");
        Names(() => F.Linear(a, Tensor.Zeros(2, 5)), "[3, 4]", "[2, 5]");
        Names(() => F.CrossEntropy(a, Tensor.FromArray(new[] { 0, 1 })), "[2]", "[3, 4]");
        Names(() => Tensor.FromArray(new float[] { 1, 2, 3 }, 2, 2), "3", "[2, 2]");
        Names(() => Tensor.Concat([a, Tensor.Zeros(3, 5)], 0), "[3, 4]", "[3, 5]");
        Names(() => Tensor.Zeros(2, -1), "[2, -1]");
        Names(() => a.Sum(2), "[3, 4]", "2");
        Names(() => a.Unfold(1, 5, 1), "[3, 4]", "5");
        Names(() => F.LayerNorm(a, [3]), "[3, 4]", "[3]");
        Names(() => a.Item(), "[3, 4]");
        Names(() => a[3, 0].ToString(), "3", "size 3");
    }

    [Fact]
    public void ZeroDimensionalAndEmptyTensors()
    {
        var s = Tensor.Scalar(2.5f);
        Assert.Equal(0, s.Rank);
        Assert.Equal(2.5f, s.Item());
        Assert.Equal(2.5f, s.Sum().Item());
        Assert.Equal(new int[0], s.Reshape().Shape.ToArray());
        var e = Tensor.Zeros(0, 3);
        Assert.Equal(0, e.Count);
        Assert.Equal(new[] { 3 }, e.Sum(0).Shape.ToArray());
        Assert.Equal(new float[] { 0, 0, 0 }, e.Sum(0).ToArray());
        Assert.Equal(new[] { 0, 5 }, e.MatMul(Tensor.Zeros(3, 5)).Shape.ToArray());
    }
}
