using Nabla.Tests.Parity;

namespace Nabla.Tests.Tensors;

/// <summary>
/// ToString against PyTorch's own repr of the same values (tests/reference/make_fixtures.py, format.safetensors).
/// The only differences allowed are the naming ones documented in src/Nabla/Tensors/Tensor.Format.cs: Nabla's dtype
/// names, its shape notation for an empty tensor's size, and grad_fn names without a version suffix.
/// </summary>
public class FormatParityTests
{
    private const string File = "format.safetensors";
    public static TheoryData<string> Cases => ParityFixture.CaseNames(File, "fmt/");

    [Theory, MemberData(nameof(Cases))]
    public void PrintsLikePyTorch(string name)
    {
        var fx = ParityFixture.Get(File);
        var meta = fx.Meta(name);
        var t = fx.Fresh(name);
        if (meta.GetProperty("requires_grad").GetBoolean()) t.RequiresGrad = true;
        var expected = Documented(meta.GetProperty("repr").GetString()!);
        Assert.Equal(expected, t.ToString());
    }

    /// <summary>PyTorch's text with the documented naming differences applied.</summary>
    internal static string Documented(string torchRepr)
    {
        var s = torchRepr.Replace("dtype=torch.int32", "dtype=Int32");
        s = System.Text.RegularExpressions.Regex.Replace(s, @"size=\(([0-9, ]*)\)", m => "size=[" + m.Groups[1].Value.TrimEnd(',') + "]");
        return System.Text.RegularExpressions.Regex.Replace(s, @"grad_fn=<(\w+?)Backward\d+>", "grad_fn=<$1Backward>");
    }

    [Fact]
    public void GradFnNameAndTensorsBuiltByOps()
    {
        var x = Tensor.FromArray(new float[] { 1, 2 }).RequiresGrad_();
        Assert.Equal("tensor([2., 4.], grad_fn=<MulBackward>)", x.Mul(Tensor.FromArray(new float[] { 2, 2 })).ToString());
        Assert.Equal(Documented("tensor([2., 4.], grad_fn=<MulBackward0>)"), x.Mul(Tensor.FromArray(new float[] { 2, 2 })).ToString());
    }

    [Fact]
    public void NonContiguousViewsPrintTheirOwnElements()
    {
        var t = Tensor.Arange(6).Reshape(2, 3).T;
        Assert.Equal("tensor([[0., 3.],\n        [1., 4.],\n        [2., 5.]])", t.ToString());
        Assert.Equal("tensor([], size=[2, 0])", Tensor.Zeros(2, 0).ToString());
        Assert.Equal("tensor([])", Tensor.Zeros(0).ToString());
        Assert.Equal("tensor(7, dtype=Int32)", Tensor.FromArray(new[] { 7 }).Reshape().ToString());
    }
}
