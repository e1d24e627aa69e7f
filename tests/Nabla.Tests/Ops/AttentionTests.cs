using Nabla.Autograd;
using Nabla.Kernels;
using Nabla.Kernels.Reference;

namespace Nabla.Tests.Ops;

[Collection(Nabla.Tests.Kernels.KernelSettingsCollection.Name)]
public class AttentionTests
{
    private static Tensor Rand(Generator g, params int[] shape) => Tensor.Randn(g, shape).RequiresGrad_();

    private static void AssertClose(Tensor expected, Tensor actual, double tol, string what)
    {
        var e = expected.ToArray();
        var a = actual.ToArray();
        Assert.Equal(e.Length, a.Length);
        for (int i = 0; i < e.Length; i++)
            Assert.True(Math.Abs(e[i] - a[i]) <= tol * (1 + Math.Abs(e[i])), $"{what}[{i}]: expected {e[i]}, got {a[i]}");
    }

    [Theory]
    [InlineData(2, 3, 5, 5, 8, true)]
    [InlineData(1, 2, 17, 17, 16, true)]
    [InlineData(2, 1, 1, 9, 7, true)]   // one decoding step against a cache of 9
    [InlineData(1, 2, 4, 6, 5, false)]
    [InlineData(1, 1, 3, 7, 64, true)]  // queries are the last 3 of 7 positions
    public void FastKernelMatchesReference(int b, int h, int tq, int tk, int d, bool causal)
    {
        var g = new Generator(1);
        var (q, k, v) = (Rand(g, b, h, tq, d), Rand(g, b, h, tk, d), Rand(g, b, h, tk, d));
        var upstream = Tensor.Randn(g, b, h, tq, d);

        (Tensor O, Tensor Dq, Tensor Dk, Tensor Dv) Run()
        {
            foreach (var t in new[] { q, k, v }) t.Grad = null;
            var o = F.ScaledDotProductAttention(q, k, v, causal);
            o.Backward(upstream);
            return (o.Detach(), q.Grad!, k.Grad!, v.Grad!);
        }
        var fast = Run();
        Tensor ro, rq, rk, rv;
        using (Backend.Use(ReferenceBackend.Instance)) (ro, rq, rk, rv) = Run();
        AssertClose(ro, fast.O, 1e-5, "out");
        AssertClose(rq, fast.Dq, 1e-4, "dq");
        AssertClose(rk, fast.Dk, 1e-4, "dk");
        AssertClose(rv, fast.Dv, 1e-4, "dv");
    }

    [Fact]
    public void AttentionMatchesSoftmaxOfScoresWithAMask()
    {
        var g = new Generator(2);
        var (q, k, v) = (Rand(g, 1, 2, 6, 4), Rand(g, 1, 2, 6, 4), Rand(g, 1, 2, 6, 4));
        var fused = F.ScaledDotProductAttention(q, k, v, causal: true);
        // The same computed from its definition with ordinary ops.
        var scores = q.MatMul(k.Transpose(-2, -1)).Mul(0.5f);
        var mask = Tensor.Zeros(6, 6);
        for (int i = 0; i < 6; i++) for (int j = i + 1; j < 6; j++) mask[i, j] = float.NegativeInfinity;
        var composed = scores.Add(mask).Softmax(-1).MatMul(v);
        AssertClose(composed, fused, 1e-5, "out");
    }

    [Fact]
    public void GradientsAgreeWithFiniteDifferences()
    {
        var g = new Generator(3);
        var inputs = new[] { Rand(g, 1, 2, 5, 3), Rand(g, 1, 2, 5, 3), Rand(g, 1, 2, 5, 3) };
        var result = GradCheck.Check(x => F.ScaledDotProductAttention(x[0], x[1], x[2], causal: true), inputs, eps: 1e-2f);
        Assert.True(result.Passed, result.ToString());
    }

    [Fact]
    public void PackedCausalSelfAttentionEqualsSplitHeads()
    {
        var g = new Generator(4);
        int B = 2, T = 7, C = 12, H = 3, D = C / H;
        var qkv = Rand(g, B, T, 3 * C);
        var packed = F.CausalSelfAttention(qkv, H);
        var upstream = Tensor.Randn(g, B, T, C);
        packed.Backward(upstream);
        var packedGrad = qkv.Grad!;

        var x = qkv.Detach().Clone().RequiresGrad_();
        Tensor Heads(int part) => x.Narrow(2, part * C, C).Reshape(B, T, H, D).Transpose(1, 2);
        var split = F.ScaledDotProductAttention(Heads(0), Heads(1), Heads(2), causal: true).Transpose(1, 2).Reshape(B, T, C);
        split.Backward(upstream);
        AssertClose(split, packed, 1e-5, "out");
        AssertClose(x.Grad!, packedGrad, 1e-5, "dqkv");
    }
}
