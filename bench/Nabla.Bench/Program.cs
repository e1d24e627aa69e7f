using Nabla.Bench;

// Nabla benchmarks, each side by side with PyTorch in the same run. Usage:
//   dotnet run -c Release --project bench/Nabla.Bench -- gemm [--json] [--threads 1,2] [--shapes gpt2|squares|small|all]
//       [--no-torch] [--rounds N] [--max-others PERCENT] [--retries N]
//   dotnet run -c Release --project bench/Nabla.Bench -- gemm-steps [--threads 1,2]
//   dotnet run -c Release --project bench/Nabla.Bench -- peak
//   dotnet run -c Release --project bench/Nabla.Bench -- gpt2 [--rounds N] [--threads N] [--no-torch]
//   dotnet run -c Release --project bench/Nabla.Bench -- tokenizer [--data DIR] [--runs N] [--mb N]
//   dotnet run -c Release --project bench/Nabla.Bench -- kernels   (attention and convolution, forward + backward)
var command = args.Length > 0 ? args[0] : "help";
switch (command)
{
    case "gemm": GemmBenchmark.Run(BenchOptions.Parse(args[1..])); break;
    case "gemm-steps": GemmSteps.Run(BenchOptions.Parse(args[1..])); break;
    case "peak": FmaPeak.Report(BenchOptions.Parse(args[1..]).Threads); break;
    case "gpt2": Environment.ExitCode = Gpt2Bench.Run(args[1..]); break;
    case "tokenizer": Environment.ExitCode = TokenizerBench.Run(args[1..]); break;
    case "kernels": Environment.ExitCode = KernelBench.Run(args[1..]); break;
    default:
        Console.Error.WriteLine("usage: Nabla.Bench gemm [--json] [--threads 1,2] [--shapes gpt2|squares|small|all] [--no-torch] [--rounds N] " +
            "[--max-others PERCENT] [--retries N] | gemm-steps | peak | gpt2 [--rounds N] [--threads N] [--no-torch] | tokenizer [--data DIR] [--runs N] [--mb N] | kernels");
        Environment.ExitCode = command == "help" ? 0 : 2;
        break;
}
