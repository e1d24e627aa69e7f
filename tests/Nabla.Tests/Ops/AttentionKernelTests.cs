using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Reference;

namespace Nabla.Tests.Ops;

/// <summary>
/// The tiled (flash-style) CPU attention kernel against the reference on the sizes where blocking goes wrong: one
/// query, one short of, exactly, and one past a 64-row block, long sequences, odd head dimensions, fewer queries
/// than keys (and the row-at-a-time path for decoding), and interleaved (B, T, H, D) layouts, under each
/// instruction set.
/// </summary>
[Collection(Nabla.Tests.Kernels.KernelSettingsCollection.Name)]
public unsafe class AttentionKernelTests
{
    private static IReadOnlyList<Isa> AllIsas => Nabla.Tests.Kernels.TestIsas.Available;

    /// <summary>Buffers for one attention problem, laid out (B, T, H, D) when <paramref name="interleaved"/>, else (B, H, T, D).</summary>
    private sealed class Problem
    {
        public readonly AttentionLayout Layout;
        public readonly Tensor Q, K, V, DOut;

        public Problem(int batch, int heads, int tq, int tk, int d, bool causal, bool interleaved, ulong seed)
        {
            var g = new Generator(seed);
            Q = Tensor.Randn(g, batch, heads, tq, d);
            K = Tensor.Randn(g, batch, heads, tk, d);
            V = Tensor.Randn(g, batch, heads, tk, d);
            DOut = Tensor.Randn(g, batch, heads, tq, d);
            RowStrides Rows(int t) => interleaved ? new((long)t * heads * d, d, (long)heads * d) : new((long)heads * t * d, (long)t * d, d);
            Layout = new AttentionLayout(batch, heads, tq, tk, d, 1f / MathF.Sqrt(d), causal, Rows(tq), Rows(tk), Rows(tk), Rows(tq));
        }

        public (Tensor O, Tensor Lse, Tensor Dq, Tensor Dk, Tensor Dv) Run(IKernelBackend backend)
        {
            var l = Layout;
            var o = Tensor.Empty(Q.Shape.ToArray());
            var lse = Tensor.Empty([l.Batch, l.Heads, l.Tq]);
            var (dq, dk, dv) = (Tensor.Empty(Q.Shape.ToArray()), Tensor.Empty(K.Shape.ToArray()), Tensor.Empty(V.Shape.ToArray()));
            backend.Attention(l, Q.Data, K.Data, V.Data, o.Data, lse.Data);
            backend.AttentionBackward(l, Q.Data, K.Data, V.Data, o.Data, lse.Data, DOut.Data, dq.Data, dk.Data, dv.Data);
            return (o, lse, dq, dk, dv);
        }
    }

    [Theory]
    [InlineData(2, 3, 1, 1, 64, true)]       // a single position
    [InlineData(1, 2, 63, 63, 64, true)]     // one row short of a block
    [InlineData(1, 2, 64, 64, 64, true)]     // exactly one block
    [InlineData(1, 2, 65, 65, 64, true)]     // one row into a second block
    [InlineData(1, 1, 127, 127, 64, true)]
    [InlineData(1, 1, 127, 127, 64, false)]
    [InlineData(1, 1, 1024, 1024, 64, true)] // long sequence, many blocks on both sides
    [InlineData(1, 2, 65, 65, 7, false)]     // odd head dimensions: padded columns
    [InlineData(1, 2, 33, 33, 65, true)]
    [InlineData(1, 1, 70, 70, 80, true)]     // head dimension with an odd count of vectors
    [InlineData(1, 2, 1, 200, 64, true)]     // decoding one token against a cache
    [InlineData(1, 2, 5, 130, 64, true)]     // queries are the last 5 of 130 positions
    [InlineData(1, 1, 67, 130, 32, true)]    // query blocks that start mid key block
    [InlineData(2, 1, 3, 100, 33, false)]
    [InlineData(1, 2, 7, 7, 16, true)]       // the most queries the row-at-a-time (decoding) path takes
    [InlineData(1, 1, 5, 3, 8, true)]        // more queries than keys: the first two see nothing
    public void TiledKernelMatchesReference(int batch, int heads, int tq, int tk, int d, bool causal)
    {
        foreach (bool interleaved in new[] { false, true })
        {
            var problem = new Problem(batch, heads, tq, tk, d, causal, interleaved, seed: (ulong)(tq * 1000 + tk + d));
            var expected = problem.Run(ReferenceBackend.Instance);
            foreach (var isa in AllIsas)
            {
                using var _ = CpuFeatures.Limit(isa);
                var actual = problem.Run(CpuBackend.Instance);
                string what = $"{isa} B={batch} H={heads} Tq={tq} Tk={tk} D={d} causal={causal} interleaved={interleaved}";
                Close.Assert(expected.O, actual.O, 1e-5, what + " o");
                Close.Assert(expected.Lse, actual.Lse, 1e-6, what + " lse");
                // Gradients sum over up to Tk (or Tq) products per element: float accumulation in a different order.
                // With one key, dq and dk are zero in exact arithmetic (p = 1): allow rounding noise around zero.
                Close.Assert(expected.Dq, actual.Dq, 1e-4, what + " dq", atol: 1e-6);
                Close.Assert(expected.Dk, actual.Dk, 1e-4, what + " dk", atol: 1e-6);
                Close.Assert(expected.Dv, actual.Dv, 1e-4, what + " dv");
            }
        }
    }

    /// <summary>With more queries than keys a causal mask leaves the first queries nothing to attend to: their
    /// output is zero, their log-sum-exp -∞, and they pass no gradient.</summary>
    [Fact]
    public void QueriesThatSeeNoKeyGiveZeroAndMinusInfinity()
    {
        var problem = new Problem(1, 1, 9, 4, 8, causal: true, interleaved: false, seed: 5);
        var expected = problem.Run(ReferenceBackend.Instance);
        var actual = problem.Run(CpuBackend.Instance);
        Close.Assert(expected.O, actual.O, 1e-5, "o");
        Close.Assert(expected.Lse, actual.Lse, 1e-6, "lse");
        Close.Assert(expected.Dq, actual.Dq, 1e-4, "dq");
        Close.Assert(expected.Dk, actual.Dk, 1e-4, "dk");
        Assert.Equal(float.NegativeInfinity, actual.Lse[0, 0, 0]);
        Assert.Equal(0f, actual.O[0, 0, 0, 3]);
    }

    /// <summary>The softmax's exponential: within 2 ulp of eˣ over the normal range, for both vector widths.</summary>
    [Fact]
    public void AttentionFastExpIsWithinTwoUlps()
    {
        var random = new Random(9);
        double worst = 0;
        for (int trial = 0; trial < 20000; trial++)
        {
            var lanes = new float[16];
            for (int i = 0; i < 16; i++) lanes[i] = trial < 10 ? -87f + i * 0.001f * trial : (float)(random.NextDouble() * 175 - 87);
            var wide = FastExp.Exp(System.Runtime.Intrinsics.Vector512.Create(lanes));
            var half = FastExp.Exp(System.Runtime.Intrinsics.Vector256.Create(lanes.AsSpan(0, 8)));
            for (int i = 0; i < 16; i++)
            {
                double exact = Math.Exp(lanes[i]);
                worst = Math.Max(worst, Math.Abs(wide[i] - exact) / exact);
                if (i < 8) worst = Math.Max(worst, Math.Abs(half[i] - exact) / exact);
            }
        }
        Assert.True(worst < 2 * 1.2e-7, $"largest relative error {worst:G3}");
    }
}
