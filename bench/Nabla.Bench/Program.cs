using Nabla.Bench;

// Nabla benchmarks. Usage:
//   dotnet run -c Release --project bench/Nabla.Bench -- gemm [--json] [--threads 1,2] [--shapes gpt2|squares|small|all]
//       [--no-torch] [--rounds N] [--max-others PERCENT] [--retries N]
//   dotnet run -c Release --project bench/Nabla.Bench -- gemm-steps [--threads 1,2]
//   dotnet run -c Release --project bench/Nabla.Bench -- peak
var command = args.Length > 0 ? args[0] : "help";
var options = BenchOptions.Parse(args.Skip(1).ToArray());
switch (command)
{
    case "gemm": GemmBenchmark.Run(options); break;
    case "gemm-steps": GemmSteps.Run(options); break;
    case "peak": FmaPeak.Report(options.Threads); break;
    default:
        Console.Error.WriteLine("usage: Nabla.Bench gemm [--json] [--threads 1,2] [--shapes gpt2|squares|small|all] [--no-torch] [--rounds N] " +
            "[--max-others PERCENT] [--retries N] | gemm-steps | peak");
        Environment.ExitCode = command == "help" ? 0 : 2;
        break;
}
