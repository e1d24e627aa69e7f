using Nabla.Tests.Parity;

namespace Nabla.Tests.Ops;

// One theory per fixture file; each case of tests/reference/make_fixtures.py is one test, named after it.

public class ElementwiseParityTests
{
    public static TheoryData<string> Cases => ParityFixture.CaseNames("ops_elementwise.safetensors");
    [Theory, MemberData(nameof(Cases))]
    public void MatchesPyTorch(string name) => OpCase.Run("ops_elementwise.safetensors", name);
}

public class ReductionParityTests
{
    public static TheoryData<string> Cases => ParityFixture.CaseNames("ops_reductions.safetensors");
    [Theory, MemberData(nameof(Cases))]
    public void MatchesPyTorch(string name) => OpCase.Run("ops_reductions.safetensors", name);
}

public class MatMulParityTests
{
    public static TheoryData<string> Cases => ParityFixture.CaseNames("ops_matmul.safetensors");
    [Theory, MemberData(nameof(Cases))]
    public void MatchesPyTorch(string name) => OpCase.Run("ops_matmul.safetensors", name);
}

public class FunctionalParityTests
{
    public static TheoryData<string> Cases => ParityFixture.CaseNames("ops_nn.safetensors");
    [Theory, MemberData(nameof(Cases))]
    public void MatchesPyTorch(string name) => OpCase.Run("ops_nn.safetensors", name);
}

public class IndexingParityTests
{
    public static TheoryData<string> Cases => ParityFixture.CaseNames("ops_indexing.safetensors");
    [Theory, MemberData(nameof(Cases))]
    public void MatchesPyTorch(string name) => OpCase.Run("ops_indexing.safetensors", name);
}
