using Nabla.Kernels;

namespace Nabla.Tests.Kernels;

/// <summary>
/// The instruction sets the kernel tests run under: every path this CPU has (capped by NABLA_ISA, so
/// <c>NABLA_ISA=avx2</c> on an AVX-512 machine runs the suite as an AVX2-only machine would), widest first. A test
/// never asks for a path the CPU lacks: capping to it would silently run a narrower one under its name.
/// <see cref="CpuVsReferenceTests.ReportsWhichIsasThisMachineExercises"/> names the paths left out.
/// </summary>
public static class TestIsas
{
    public static IReadOnlyList<Isa> Available { get; } =
        [.. Enum.GetValues<Isa>().Where(isa => isa <= CpuFeatures.Usable).OrderDescending()];

    /// <summary>The paths this run cannot exercise, each with the reason.</summary>
    public static IEnumerable<(Isa Isa, string Reason)> NotExercised =>
        Enum.GetValues<Isa>().Where(isa => isa > CpuFeatures.Usable).Select(isa =>
            (isa, isa > CpuFeatures.Detected ? "the CPU lacks it" : $"NABLA_ISA={CpuFeatures.EnvironmentCap.ToString().ToLowerInvariant()} caps it"));

    /// <summary><see cref="Available"/> as xunit theory data.</summary>
    public static TheoryData<Isa> Theory()
    {
        var data = new TheoryData<Isa>();
        foreach (var isa in Available) data.Add(isa);
        return data;
    }
}
