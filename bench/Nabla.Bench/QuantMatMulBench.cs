using System.Globalization;
using Nabla.Autograd;
using Nabla.Kernels.Cpu;
using Nabla.Quantization;

namespace Nabla.Bench;

/// <summary>
/// The prefill matmuls of GPT-2 124M (a 512-token prompt through c_attn 768→2304, attn.c_proj 768→768, c_fc
/// 768→3072, mlp.c_proj 3072→768) with quantised weights (<see cref="QuantizedKernels.MatMul"/>: the int8 GEMM for
/// q8_0/q4_0, dequantised panels + the fp32 GEMM for nf4) and with fp32 weights (the fp32 GEMM), on one thread,
/// timed by the thread's CPU time: the cost of the work itself, which a busy machine disturbs far less than wall
/// time. Rounds interleave the contenders; medians of the rounds; GMAC per CPU-second over the four shapes together.
/// Usage: <c>quant-matmul [--rounds 5] [--rows 512] [--formats fp32,q8_0,q4_0,nf4]</c> (NABLA_ISA=avx2 for the AVX2 path).
/// </summary>
public static unsafe class QuantMatMulBench
{
    private static readonly (int Out, int In)[] Shapes = [(2304, 768), (768, 768), (3072, 768), (768, 3072)];

    public static int Run(string[] args)
    {
        int rounds = BenchArgs.Int(args, "--rounds", 5), m = BenchArgs.Int(args, "--rows", 512);
        var labels = (BenchArgs.Value(args, "--formats") ?? "fp32,q8_0,q4_0,nf4").Split(',', StringSplitOptions.RemoveEmptyEntries);
        WorkerPool.Threads = 1;
        var g = new Generator(0);
        var weights = Shapes.Select(s => Tensor.Randn(g, s.Out, s.In) * 0.02f).ToArray();
        var biases = Shapes.Select(s => Tensor.Randn(g, s.Out)).ToArray();
        var inputs = Shapes.Select(s => Tensor.Randn(g, m, s.In)).ToArray();
        var contenders = new List<(string Label, Action<int> Run)>();
        foreach (var label in labels)
        {
            if (label == "fp32") { contenders.Add((label, i => { using (GradMode.NoGrad()) F.Linear(inputs[i], weights[i], biases[i]); })); continue; }
            if (!QuantizationFormats.TryParse(label, out var format)) { Console.Error.WriteLine($"--formats: unknown format '{label}' (fp32, q8_0, q4_0, nf4)"); return 2; }
            var quantized = weights.Select(w => QuantizedMatrix.Quantize(w, format)).ToArray();
            var outputs = Shapes.Select(s => new float[m * s.Out]).ToArray();
            var x = inputs.Select(t => t.ToArray()).ToArray();
            var b = biases.Select(t => t.ToArray()).ToArray();
            contenders.Add((label, i =>
            {
                fixed (float* px = x[i], py = outputs[i], pb = b[i]) QuantizedKernels.MatMul(quantized[i], px, m, py, pb);
            }));
        }
        var seconds = contenders.Select(_ => Shapes.Select(_ => new List<double>()).ToArray()).ToArray();
        for (int round = 0; round <= rounds; round++) // round 0 warms up (JIT tiers, buffers)
            for (int c = 0; c < contenders.Count; c++)
                for (int i = 0; i < Shapes.Length; i++)
                {
                    double s = CpuClock.ThreadSeconds(() => contenders[c].Run(i));
                    if (round > 0) seconds[c][i].Add(s);
                }
        Console.WriteLine($"GPT-2 124M prefill matmuls, {m} rows, 1 thread, {MachineInfo.Line}; GMAC per thread-CPU-second, medians of {rounds} rounds");
        Console.WriteLine("| weights | " + string.Join(" | ", Shapes.Select(s => $"{s.In}→{s.Out}")) + " | all four |");
        Console.WriteLine("|---|" + string.Concat(Enumerable.Repeat("---:|", Shapes.Length + 1)));
        for (int c = 0; c < contenders.Count; c++)
        {
            var medians = seconds[c].Select(Statistics.Median).ToArray();
            var macs = Shapes.Select(s => (double)m * s.Out * s.In).ToArray();
            Console.WriteLine($"| {contenders[c].Label} | " + string.Join(" | ", medians.Select((t, i) => (macs[i] / t / 1e9).ToString("F1", CultureInfo.InvariantCulture))) +
                              $" | {(macs.Sum() / medians.Sum() / 1e9).ToString("F1", CultureInfo.InvariantCulture)} |");
        }
        return 0;
    }
}
