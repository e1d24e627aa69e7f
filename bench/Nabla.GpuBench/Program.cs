using System.Text.Json.Nodes;
using Nabla;
using Nabla.Gpu;
using Nabla.GpuBench;

// nabla-gpubench: our GPU kernels' speed next to PyTorch (cuBLAS, SDPA) for GPT-2 shapes. bench/gpu/run.sh runs it;
// see docs/gpu-kernels.md. Writes gpu-bench.json and gpu-bench.md into --out.
var options = BenchOptions.Parse(args);
if (options is null) return 2;
NablaGpu.Register();
GpuRuntime runtime;
try { runtime = (GpuRuntime)Device.Get(options.Device).Runtime!; }
catch (Exception e) when (e is InvalidOperationException or ArgumentException)
{
    Console.Error.WriteLine($"nabla-gpubench: {e.Message}");
    return 1;
}
Console.WriteLine($"nabla-gpubench on {runtime.Name} ({runtime.Accelerator.Name}){(options.Smoke ? ", smoke sizes" : "")}");
var report = new Report(runtime, options);
GemmBench.Run(runtime, options, report);
AttentionBench.Run(runtime, options, report);
ModelBench.Run(runtime, options, report);
if (options.PeerJson is not null) report.AddPeer(options.PeerJson);
report.Write(options.OutDirectory);
return 0;
