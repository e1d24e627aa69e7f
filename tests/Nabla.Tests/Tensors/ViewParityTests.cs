using Nabla.Tests.Parity;

namespace Nabla.Tests.Tensors;

/// <summary>Views (reshape, permute, slice with step, expand, unfold, as_strided, ...) against PyTorch: the
/// values seen through the view, and the gradient routed back through it to the base tensor.</summary>
public class ViewParityTests
{
    public static TheoryData<string> Cases => ParityFixture.CaseNames("ops_views.safetensors");
    [Theory, MemberData(nameof(Cases))]
    public void MatchesPyTorch(string name) => OpCase.Run("ops_views.safetensors", name);
}
