using Nabla.Kernels;
using Nabla.Kernels.Reference;
using Nabla.Tests.Kernels;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Ops;

/// <summary>
/// The op fixtures again, with the naive <see cref="ReferenceBackend"/> (the spec must itself agree with PyTorch)
/// and with the CPU kernels capped at AVX2 and at scalar code. Runs alone: the backend and the ISA cap are
/// process-wide settings.
/// </summary>
[Collection(KernelSettingsCollection.Name)]
public class BackendParityTests
{
    public static TheoryData<string, string> Runs()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in new[] { "ops_elementwise", "ops_reductions", "ops_matmul", "ops_nn", "ops_indexing", "ops_views" })
            foreach (var setting in new[] { "reference", "avx2", "scalar" })
                data.Add(file + ".safetensors", setting);
        return data;
    }

    [Theory, MemberData(nameof(Runs))]
    public void EveryCaseMatchesPyTorch(string file, string setting)
    {
        using var backend = setting == "reference" ? Backend.Use(ReferenceBackend.Instance) : null;
        using var isa = setting switch { "avx2" => CpuFeatures.Limit(Isa.Avx2), "scalar" => CpuFeatures.Limit(Isa.Scalar), _ => null };
        var failures = new List<string>();
        foreach (var name in ParityFixture.Get(file).Metadata.Keys.Order(StringComparer.Ordinal))
        {
            try { OpCase.Run(file, name); }
            catch (Exception e) { failures.Add(e.Message); }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} cases fail with {setting}:\n" + string.Join("\n", failures));
    }
}
