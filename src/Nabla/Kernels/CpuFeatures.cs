using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Nabla.Kernels;

/// <summary>Instruction-set levels the CPU kernels are written for.</summary>
public enum Isa
{
    Scalar = 0,
    Avx2 = 1,
    Avx512 = 2,
}

/// <summary>
/// Which SIMD path the optimised kernels take. Detected from the CPU, capped by the NABLA_ISA environment
/// variable (scalar|avx2|avx512) or by setting <see cref="MaxIsa"/>, which is how tests cover every path the CPU
/// has (an AVX-512 machine runs all three; an AVX2 machine, such as Zen 3, runs AVX2 and scalar).
/// </summary>
public static class CpuFeatures
{
    public static Isa Detected { get; } =
        Avx512F.IsSupported && Vector512.IsHardwareAccelerated ? Isa.Avx512 :
        Avx2.IsSupported && Fma.IsSupported ? Isa.Avx2 : Isa.Scalar;

    /// <summary>The cap NABLA_ISA set when the process started (<see cref="Isa.Avx512"/>, no cap, when unset).</summary>
    public static Isa EnvironmentCap { get; } =
        Enum.TryParse<Isa>(Environment.GetEnvironmentVariable("NABLA_ISA"), ignoreCase: true, out var isa) && Enum.IsDefined(isa)
            ? isa : Isa.Avx512;

    /// <summary>The widest path this process may take at all: what the CPU has, capped by NABLA_ISA. Tests and the
    /// benchmark's FMA peak use it; a temporary <see cref="Limit"/> does not change it.</summary>
    public static Isa Usable { get; } = (Isa)Math.Min((int)EnvironmentCap, (int)Detected);

    private static Isa _max = EnvironmentCap;

    /// <summary>Highest ISA the kernels may use; the effective level is min(MaxIsa, Detected).</summary>
    public static Isa MaxIsa
    {
        get => _max;
        set => _max = value;
    }

    public static Isa Effective => (Isa)Math.Min((int)_max, (int)Detected);
    public static bool UseAvx512 => Effective >= Isa.Avx512;
    public static bool UseAvx2 => Effective >= Isa.Avx2;

    /// <summary>Temporarily caps the ISA (tests): <c>using (CpuFeatures.Limit(Isa.Avx2)) { ... }</c>.</summary>
    public static IDisposable Limit(Isa isa)
    {
        var previous = _max;
        _max = isa;
        return new Restore(() => _max = previous);
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
