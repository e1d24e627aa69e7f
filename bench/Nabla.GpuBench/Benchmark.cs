using Nabla.Gpu;

namespace Nabla.GpuBench;

/// <summary>Runs the parts <see cref="BenchOptions.Parts"/> names on the device and writes the report.</summary>
public static class Benchmark
{
    public static int Run(BenchOptions options)
    {
        NablaGpu.Register();
        Device device;
        try { device = Device.Get(options.Device); }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            Console.Error.WriteLine($"nabla-gpubench: {e.Message}");
            return 1;
        }
        if (device.Runtime is not GpuRuntime runtime)
        {
            Console.Error.WriteLine($"nabla-gpubench: --device {options.Device} is not a GPU device (cuda or ilgpu-cpu).");
            return 1;
        }
        Console.WriteLine($"nabla-gpubench on {runtime.Name} ({runtime.Accelerator.Name}){(options.Smoke ? ", smoke sizes" : "")}");
        var report = new Report(runtime, options);
        if (options.PeerJson is not null) report.AddPeer(options.PeerJson);
        var parts = new Dictionary<string, Action>
        {
            ["gemm"] = () => GemmBench.Run(runtime, options, report),
            ["attention"] = () => AttentionBench.Run(runtime, options, report),
            ["gpt2"] = () => ModelBench.Run(device, options, report),
        };
        foreach (string part in BenchOptions.AllParts.Where(options.Parts.Contains))
        {
            parts[part]();
            report.Write(options.OutDirectory); // after each part: a run that bench/gpu/run.sh's time cap cuts short keeps what it finished
        }
        Console.WriteLine($"wrote {Path.Combine(options.OutDirectory, Report.JsonFile)} and {Path.Combine(options.OutDirectory, Report.MarkdownFile)}");
        return 0;
    }
}
