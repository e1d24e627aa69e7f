using System.Text.Json.Nodes;
using Nabla.Kernels;
using Nabla.Kernels.Reference;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Ops;

/// <summary>
/// Attention beyond GPT-2's training case — non-causal, fewer (or more) queries than keys, and causal with the
/// queries at the end of the keys as in KV-cache decoding — against softmax(q kᵀ · scale + mask) v and its
/// gradients computed by PyTorch in float64 (tests/reference/make_attention_sampling_fixture.py), on the fast
/// kernels and on the reference backend.
/// </summary>
[Collection(Nabla.Tests.Kernels.KernelSettingsCollection.Name)]
public class AttentionFixtureTests
{
    private const string File = "attention_cases.safetensors";

    public static TheoryData<string, bool> Cases()
    {
        var data = new TheoryData<string, bool>();
        foreach (var name in ParityFixture.Get(File).Metadata.Keys.Where(k => k is not ("source" or "torch")).Order(StringComparer.Ordinal))
            foreach (bool reference in new[] { false, true })
                data.Add(name, reference);
        return data;
    }

    private static void AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        Assert.Equal(expected.Shape.ToArray(), actual.Shape.ToArray());
        var (e, a) = (expected.ToArray(), actual.ToArray());
        for (int i = 0; i < e.Length; i++)
            Assert.True(Math.Abs(e[i] - a[i]) <= tolerance * (1 + Math.Abs(e[i])), $"{what}[{i}]: PyTorch {e[i]}, Nabla {a[i]}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesPyTorchForwardAndGradients(string name, bool referenceBackend)
    {
        var fixture = ParityFixture.Get(File);
        var settings = JsonNode.Parse(fixture.Metadata[name])!;
        bool causal = settings["causal"]!.GetValue<bool>();
        float? scale = settings["scale"] is { } s ? s.GetValue<float>() : null;
        var (q, k, v) = (fixture[$"{name}/q"].Clone().RequiresGrad_(), fixture[$"{name}/k"].Clone().RequiresGrad_(), fixture[$"{name}/v"].Clone().RequiresGrad_());

        using var backend = referenceBackend ? Backend.Use(ReferenceBackend.Instance) : null;
        var output = F.ScaledDotProductAttention(q, k, v, causal, scale);
        output.Backward(fixture[$"{name}/grad_out"]);
        AssertClose(fixture[$"{name}/out"], output.Detach(), 1e-5, "out");
        AssertClose(fixture[$"{name}/dq"], q.Grad!, 1e-4, "dq");
        AssertClose(fixture[$"{name}/dk"], k.Grad!, 1e-4, "dk");
        AssertClose(fixture[$"{name}/dv"], v.Grad!, 1e-4, "dv");
    }
}
