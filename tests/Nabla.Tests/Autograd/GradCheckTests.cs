using Nabla.Autograd;

namespace Nabla.Tests.Autograd;

/// <summary>Finite-difference checks of whole compositions: every op's backward inside a real use, with the
/// gradients of all inputs checked at once (float32 central differences, ε = 1e-3, tolerances of GradCheck).</summary>
public class GradCheckTests
{
    private static Tensor Leaf(Generator g, float scale, params int[] shape) => Tensor.Randn(g, shape).Mul(scale).Contiguous().Detach().RequiresGrad_();

    private static void Check(string what, Func<Tensor[], Tensor> f, params Tensor[] inputs)
    {
        var result = GradCheck.Check(f, inputs, eps: 1e-3f, atol: 2e-3, rtol: 2e-2);
        Assert.True(result.Passed, $"{what}: {result}");
    }

    [Fact]
    public void MlpWithCrossEntropy()
    {
        var g = new Generator(1);
        var targets = Tensor.FromArray(new[] { 0, 2, 1, 2, 0 });
        Check("Linear-ReLU-Linear-CrossEntropy",
            p => F.CrossEntropy(F.Linear(F.Linear(p[0], p[1], p[2]).Relu(), p[3], p[4]), targets),
            Leaf(g, 1, 5, 4), Leaf(g, 0.5f, 6, 4), Leaf(g, 0.5f, 6), Leaf(g, 0.5f, 3, 6), Leaf(g, 0.5f, 3));
    }

    [Fact]
    public void MlpModuleParameters()
    {
        // The same check through nn modules: gradients of every registered parameter.
        var g = new Generator(11);
        var model = new Nabla.NN.Sequential(new Nabla.NN.Linear(4, 6, generator: g), new Nabla.NN.ReLU(), new Nabla.NN.Linear(6, 3, generator: g),
            new Nabla.NN.LayerNorm(3));
        var x = Tensor.Randn(g, 5, 4);
        var targets = Tensor.FromArray(new[] { 0, 2, 1, 2, 0 });
        Check("Sequential(Linear, ReLU, Linear, LayerNorm) + CrossEntropy",
            _ => F.CrossEntropy(model.Forward(x), targets, labelSmoothing: 0.1f), model.Parameters().ToArray());
    }

    [Fact]
    public void LayerNormWithAffine()
    {
        var g = new Generator(2);
        Check("LayerNorm", p => F.LayerNorm(p[0], [7], p[1], p[2]), Leaf(g, 2, 3, 7), Leaf(g, 1, 7), Leaf(g, 1, 7));
        Check("LayerNorm over two dims", p => F.LayerNorm(p[0], [2, 3], p[1], null), Leaf(g, 2, 4, 2, 3), Leaf(g, 1, 2, 3));
    }

    [Fact]
    public void CrossEntropyWithLabelSmoothingAndIgnoredRows()
    {
        var g = new Generator(3);
        var t = Tensor.FromArray(new[] { 1, -100, 3, 0, 2 });
        Check("CrossEntropy smoothing 0.2 mean", p => F.CrossEntropy(p[0], t, labelSmoothing: 0.2f), Leaf(g, 2, 5, 4));
        Check("CrossEntropy smoothing 0.1 none", p => F.CrossEntropy(p[0], t, Reduction.None, labelSmoothing: 0.1f), Leaf(g, 2, 5, 4));
        var t3 = Tensor.FromArray(new[] { 1, 0, 2, 2, 1, 0 }, 2, 3);
        Check("CrossEntropy (N, C, d)", p => F.CrossEntropy(p[0], t3, Reduction.Sum, labelSmoothing: 0.1f), Leaf(g, 2, 2, 3, 3));
    }

    [Fact]
    public void SoftmaxAndLogSoftmaxOverEveryDim()
    {
        var g = new Generator(4);
        var x = Leaf(g, 2, 3, 4, 5);
        for (int d = 0; d < 3; d++)
        {
            int dim = d;
            Check($"Softmax dim {dim}", p => p[0].Softmax(dim), x);
            Check($"LogSoftmax dim {dim}", p => p[0].LogSoftmax(dim), x);
        }
    }

    [Fact]
    public void AttentionLikeMatMulChain()
    {
        var g = new Generator(5);
        // softmax(q kᵀ / √d) v, batched over two heads
        Check("attention", p => p[0].MatMul(p[1].Transpose(-2, -1)).Mul(0.5f).Softmax(-1).MatMul(p[2]),
            Leaf(g, 1, 2, 3, 4), Leaf(g, 1, 2, 3, 4), Leaf(g, 1, 2, 3, 4));
        Check("broadcast batch matmul", p => p[0].MatMul(p[1]), Leaf(g, 1, 2, 1, 3, 4), Leaf(g, 1, 3, 4, 2));
    }

    [Fact]
    public void Views()
    {
        var g = new Generator(6);
        Check("unfold with overlapping windows", p => p[0].Unfold(0, 3, 1).Mul(p[0].Unfold(0, 3, 1)), Leaf(g, 1, 8));
        Check("conv-style 2-D unfold", p => p[0].Unfold(1, 2, 1).Unfold(2, 2, 1).Sum([3, 4]), Leaf(g, 1, 2, 4, 5));
        Check("as_strided overlapping", p => p[0].AsStrided([3, 4], [2, 1], 1).Exp(), Leaf(g, 1, 10));
        Check("narrow and slice with step", p => p[0].Narrow(1, 1, 3).Slice(0, 0, 5, 2).Tanh(), Leaf(g, 1, 5, 6));
        Check("permute, expand, reshape", p => p[0].Permute(2, 0, 1).Unsqueeze(0).Expand(2, -1, -1, -1).Reshape(2, 4, 6).Sigmoid(), Leaf(g, 1, 2, 3, 4));
        Check("select and concat", p => Tensor.Concat([p[0].Select(0, 1).Unsqueeze(0), p[1]], 0).Square(), Leaf(g, 1, 3, 4), Leaf(g, 1, 2, 4));
    }

    [Fact]
    public void ElementwiseAndIndexingMix()
    {
        var g = new Generator(7);
        var idx = Tensor.FromArray(new[] { 2, 0, 0, 1 }, 2, 2);
        var cond = Tensor.FromArray(new float[] { 1, 0, 0, 1, 1, 0 }, 2, 3);
        Check("gelu, silu, div, pow", p => p[0].Gelu().Add(p[1].Silu()).Div(p[1].Abs().Add(1f)).Pow(2f), Leaf(g, 1, 2, 3), Leaf(g, 1, 2, 3));
        Check("gelu tanh and leaky relu", p => p[0].Gelu(GeluApproximation.Tanh).Mul(p[0].LeakyRelu(0.2f)), Leaf(g, 2, 9));
        Check("gather", p => p[0].Gather(1, idx).Exp(), Leaf(g, 1, 2, 3));
        Check("where with broadcasting", p => Tensor.Where(cond, p[0], p[1]), Leaf(g, 1, 2, 3), Leaf(g, 1, 3));
        Check("index_select", p => p[0].IndexSelect(1, Tensor.FromArray(new[] { 2, 2, 0 })), Leaf(g, 1, 2, 4));
        Check("var and mean", p => p[0].Var([1], keepDim: true).Add(p[0].Mean(0)), Leaf(g, 1, 3, 4));
        Check("mse and bce", p => F.MseLoss(p[0], p[1]).Add(F.BinaryCrossEntropyWithLogits(p[0], p[1].Sigmoid())), Leaf(g, 1, 6), Leaf(g, 1, 6));
        Check("embedding", p => F.Embedding(Tensor.FromArray(new[] { 1, 3, 1 }), p[0]).Tanh(), Leaf(g, 1, 4, 2));
    }
}
