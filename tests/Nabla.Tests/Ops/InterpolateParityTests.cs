using Nabla.Autograd;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Ops;

/// <summary>
/// Bilinear resizing against PyTorch 1.13's <c>F.interpolate(mode="bilinear", align_corners=False)</c>
/// (tests/reference/make_vision_fixtures.py): up by a non-integer factor, down, one side each way, and to a single
/// pixel — output and input gradient for a random upstream gradient — plus finite differences.
/// </summary>
public class InterpolateParityTests
{
    private static ParityFixture Fixture => ParityFixture.Get("vision_layers.safetensors");

    [Theory]
    [InlineData("resize_up")]
    [InlineData("resize_down")]
    [InlineData("resize_mixed")]
    [InlineData("resize_to_one")]
    public void InterpolateMatchesPyTorch(string name)
    {
        var size = Fixture.Meta(name).GetProperty("size").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var x = Fixture.Fresh(name + "/x").RequiresGrad_();
        var y = F.Interpolate(x, size[0], size[1]);
        Close.Assert(Fixture[name + "/y"], y, 1e-5, name + " y");
        y.Backward(Fixture[name + "/dy"]);
        Close.Assert(Fixture[name + "/dx"], x.Grad!, 1e-5, name + " dx");
    }

    [Fact]
    public void InterpolateGradientMatchesFiniteDifferences()
    {
        var x = Tensor.Randn(1, 2, 3, 5).RequiresGrad_();
        var result = GradCheck.Check(input => F.Interpolate(input[0], 4, 2), [x], eps: 1e-2f);
        Assert.True(result.Passed, result.ToString());
    }

    [Fact]
    public void BadShapesAreOneClearError()
    {
        Assert.Contains("(batch, channels, height, width)", Assert.Throws<ArgumentException>(() => F.Interpolate(Tensor.Zeros(3, 4), 2, 2)).Message);
        Assert.Contains("must be positive", Assert.Throws<ArgumentException>(() => F.Interpolate(Tensor.Zeros(1, 1, 3, 4), 0, 2)).Message);
    }
}
