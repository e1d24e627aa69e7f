// Nabla benchmarks, each side by side with PyTorch in the same run (also reachable as `nabla bench ...`):
//   dotnet run -c Release --project bench/Nabla.Bench -- gemm | gemm-steps | peak | gpt2 | kernels | tokenizer
return Nabla.Bench.BenchMain.Run(args);
