using Nabla.GpuBench;

// nabla-gpubench: our GPU kernels and GPT-2 on the device next to PyTorch (cuBLAS, SDPA, eager GPT-2). bench/gpu/run.sh
// runs it; see docs/gpu-kernels.md. Writes gpu-bench.json and gpu-bench.md into --out.
var options = BenchOptions.Parse(args);
return options is null ? 2 : Benchmark.Run(options);
