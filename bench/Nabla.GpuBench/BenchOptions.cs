namespace Nabla.GpuBench;

/// <summary>Command line of nabla-gpubench.</summary>
public sealed record BenchOptions(string Device, bool Smoke, string OutDirectory, string? PeerJson, double SecondsPerCase, IReadOnlySet<string> Parts)
{
    /// <summary>The parts in the order they run (--only picks some); torch_peer.py's --only takes the same names.</summary>
    public static readonly string[] AllParts = ["gemm", "attention", "gpt2"];

    private const string Usage = """
        usage: nabla-gpubench [--device auto|cuda|ilgpu-cpu] [--smoke] [--only gemm,attention,gpt2] [--out DIR] [--peer torch.json] [--seconds S]
          --device   where the kernels run (auto: cuda when present, else ilgpu-cpu)
          --smoke    tiny sizes (seconds on ILGPU's CPU accelerator): exercises every part, measures nothing
          --only     the parts to run, comma-separated (default: all three)
          --out      folder for gpu-bench.json and gpu-bench.md (default: .)
          --peer     the JSON bench/gpu/torch_peer.py wrote, shown next to our numbers
          --seconds  time spent repeating each kernel case after its warm-up (default 0.3; the GPT-2 rows have their own)
        """;

    public static BenchOptions? Parse(string[] args)
    {
        string device = "auto", outDirectory = ".";
        string? peer = null;
        bool smoke = false;
        double seconds = 0.3;
        IReadOnlySet<string> parts = AllParts.ToHashSet();
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"option {args[i]} needs a value");
            try
            {
                switch (args[i])
                {
                    case "--device": device = Value(); break;
                    case "--smoke": smoke = true; break;
                    case "--only": parts = ParseParts(Value()); break;
                    case "--out": outDirectory = Value(); break;
                    case "--peer": peer = Value(); break;
                    case "--seconds": seconds = double.Parse(Value(), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "-h" or "--help": Console.WriteLine(Usage); return null;
                    default: throw new ArgumentException($"unknown option '{args[i]}'");
                }
            }
            catch (Exception e) when (e is ArgumentException or FormatException)
            {
                Console.Error.WriteLine($"nabla-gpubench: {e.Message}\n{Usage}");
                return null;
            }
        }
        if (device == "auto") device = smoke ? "ilgpu-cpu" : AutoDevice();
        return new BenchOptions(device, smoke, outDirectory, peer, seconds, parts);
    }

    private static HashSet<string> ParseParts(string list)
    {
        var parts = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
        string? unknown = parts.Count == 0 ? list : parts.FirstOrDefault(p => !AllParts.Contains(p));
        if (unknown is not null) throw new ArgumentException($"--only: '{unknown}' is not a part ({string.Join(", ", AllParts)})");
        return parts;
    }

    private static string AutoDevice()
    {
        Gpu.NablaGpu.Register();
        try { Nabla.Device.Get("cuda"); return "cuda"; }
        catch (InvalidOperationException) { return "ilgpu-cpu"; }
    }
}
