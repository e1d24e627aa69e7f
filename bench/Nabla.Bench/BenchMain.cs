namespace Nabla.Bench;

/// <summary>The benchmark commands, for this program's Main and for `nabla bench`. Each compares Nabla with
/// PyTorch (a bench/*.py peer started as a child process) in the same run.</summary>
public static class BenchMain
{
    public const string Usage =
        "usage: bench gemm [--json] [--threads 1,2] [--shapes gpt2|squares|small|all] [--no-torch] [--rounds N] [--max-others PERCENT]\n" +
        "                  [--retries N] [--wait-budget SECONDS]   (total time spent waiting for a quiet machine; then rows are marked noisy)\n" +
        "                  [--previous]   (AVX2 path: also time the AVX2 kernel with its previous blocking, in the same rounds)\n" +
        "                  [--cpu-time]   (1 thread: time both sides by thread CPU time, the cost of the work on a busy machine)\n" +
        "       bench gemm-steps [--threads 1,2] [--wait-budget SECONDS]   (every step of docs/optimization-log.md; on the AVX2 path, step 9's tables)\n" +
        "       bench peak [--threads 1,2]            (the FMA peak with the widest vectors the kernels may use)\n" +
        "       bench gpt2 [--rounds N] [--threads N] [--no-torch] [--profile] [--cpu-time]   (--cpu-time with --threads 1: steps timed by thread CPU time, both sides)\n" +
        "       bench kernels                         (attention and convolution, forward + backward)\n" +
        "       bench rnn [--threads N] [--rounds N] [--no-torch] [--no-graph]   (LSTM/GRU training step and inference step)\n" +
        "       bench conv [--rounds N] [--threads N] [--only TEXT] [--no-torch] [--cpu-time] [--profile]   (the convolution layers of LeNet-5, ResNet-20, ResNet-18)\n" +
        "       bench vision [--rounds N] [--threads N] [--no-torch] [--cpu-time] [--profile]   (LeNet-5 and ResNet-20 training steps, images/s;\n" +
        "                  --cpu-time with --threads 1: both sides by thread CPU time; --profile: time per kernel, by CPU time with --threads 1)\n" +
        "       bench tokenizer [--data DIR] [--runs N] [--mb N]\n" +
        "       bench generate [--model PATH] [--threads 2] [--prompt-tokens 512] [--decode-tokens 64] [--rounds 3] [--layers N]\n" +
        "                      [--peers nabla,llama.cpp,onnx] [--llama-types f32,q8_0,q4_0] [--bandwidth-gbs 28] [--work DIR]\n" +
        "       bench quant-matmul [--rounds 5] [--rows 512] [--formats fp32,q8_0,q4_0,nf4]   (prefill matmuls, 1 thread, CPU time)\n" +
        "       bench decode [--rounds 5] [--tokens 16] [--cold-mb 640] [--layers 12] [--no-kernels] [--no-model] [--no-onnx] [--work DIR]\n" +
        "                  (fp32 decoding, 1 thread, CPU time: the matrix-vector products hot and cold, and decoded tokens against ONNX Runtime)";

    public static int Run(string[] args)
    {
        var command = args.Length > 0 ? args[0] : "help";
        var rest = args.Length > 0 ? args[1..] : [];
        switch (command)
        {
            case "gemm": GemmBenchmark.Run(BenchOptions.Parse(rest)); return 0;
            case "gemm-steps": GemmSteps.Run(BenchOptions.Parse(rest)); return 0;
            case "peak": FmaPeak.Report(BenchOptions.Parse(rest).Threads); return 0;
            case "gpt2": return Gpt2Bench.Run(rest);
            case "kernels": return KernelBench.Run(rest);
            case "rnn": return RnnBench.Run(rest);
            case "conv": return KernelBench.Run(rest, "conv");
            case "vision": return KernelBench.Run(rest, "vision");
            case "tokenizer": return TokenizerBench.Run(rest);
            case "generate": return GenerateBench.Run(rest);
            case "quant-matmul": return QuantMatMulBench.Run(rest);
            case "decode": return DecodeBench.Run(rest);
            default:
                (command is "help" or "--help" or "-h" ? Console.Out : Console.Error).WriteLine(Usage);
                return command is "help" or "--help" or "-h" ? 0 : 2;
        }
    }
}
