using Nabla.Kernels;

namespace Nabla.Bench;

/// <summary>What a result table ran on, printed above every table: the CPU and the kernel path Nabla took.</summary>
internal static class MachineInfo
{
    /// <summary>e.g. "AMD EPYC (family 26 model 2, Zen 5), 2 cores".</summary>
    public static string Cpu { get; } = DescribeCpu();

    /// <summary>e.g. "AVX2 path (NABLA_ISA=avx2; the CPU has AVX-512)".</summary>
    public static string Path
    {
        get
        {
            string path = $"{Name(CpuFeatures.Usable)} path";
            if (CpuFeatures.Usable == CpuFeatures.Detected) return path;
            return $"{path} (NABLA_ISA={CpuFeatures.EnvironmentCap.ToString().ToLowerInvariant()}; the CPU has {Name(CpuFeatures.Detected)})";
        }
    }

    /// <summary>One line naming the CPU, Nabla's path and the .NET version, for the top of every table.</summary>
    public static string Line => $"{Cpu}; Nabla {Path}; .NET {Environment.Version}";

    public static string Name(Isa isa) => isa switch { Isa.Avx512 => "AVX-512", Isa.Avx2 => "AVX2", _ => "scalar" };

    private static string DescribeCpu()
    {
        var fields = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").TakeWhile(l => l.Length > 0).Select(l => l.Split(':', 2))
                .Where(kv => kv.Length == 2).GroupBy(kv => kv[0].Trim()).ToDictionary(g => g.Key, g => g.First()[1].Trim())
            : [];
        string model = fields.GetValueOrDefault("model name", "unknown CPU");
        if (int.TryParse(fields.GetValueOrDefault("cpu family"), out int family) && int.TryParse(fields.GetValueOrDefault("model"), out int number))
        {
            string generation = fields.GetValueOrDefault("vendor_id") == "AuthenticAMD" ? AmdGeneration(family, number) : "";
            model += $" (family {family} model {number}{(generation.Length > 0 ? ", " + generation : "")})";
        }
        return $"{model}, {Environment.ProcessorCount} cores";
    }

    /// <summary>AMD's core generation from the CPUID family and model (a virtual machine often hides the marketing name).</summary>
    private static string AmdGeneration(int family, int model) => family switch
    {
        23 => model < 0x30 ? "Zen/Zen+" : "Zen 2",
        25 => model is (>= 0x10 and < 0x20) or (>= 0x60 and < 0x80) or (>= 0xA0 and < 0xB0) ? "Zen 4" : "Zen 3",
        26 => "Zen 5",
        _ => "",
    };
}
