using Nabla.Bench;

// Nabla benchmarks (see each class for its options):
//   dotnet run -c Release --project bench/Nabla.Bench -- gpt2 | tokenizer
return args.FirstOrDefault() switch
{
    "gpt2" => Gpt2Bench.Run(args[1..]),
    "tokenizer" => TokenizerBench.Run(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Nabla.Bench gpt2 [--rounds N] [--threads N] [--no-torch] | tokenizer [--data DIR] [--runs N] [--mb N]");
    return 2;
}
