using System.Text.Json.Nodes;
using Nabla.Gpu;

namespace Nabla.GpuBench;

/// <summary>
/// SGEMM GFLOP/s of every kernel version on the GPT-2 124M matrix shapes: M = B·T = 8192 rows (B = 8, T = 1024)
/// times the weights K × N of the attention projection (768 × 2304), the attention output (768 × 768), the MLP
/// (768 × 3072, 3072 × 768) and the tied LM head (768 × 50304). NN: C = A·B; NT: C = A·Bᵀ (B stored N × K, as
/// nn.Linear does in the forward); TN: C = Aᵀ·B (A stored K × M). Each version's result is compared with v1's.
/// </summary>
public static unsafe class GemmBench
{
    public static readonly (int K, int N)[] Gpt2Weights = [(768, 2304), (768, 768), (768, 3072), (3072, 768), (768, 50304)];
    public static readonly string[] Layouts = ["NN", "NT", "TN"];

    public static void Run(GpuRuntime runtime, BenchOptions options, Report report)
    {
        // Smoke sizes stay tiny: on the CPU accelerator every group barrier synchronises 256 OS threads.
        int m = options.Smoke ? 16 : 8192;
        var weights = options.Smoke ? Gpt2Weights.Select(w => (w.K / 64, Math.Min(w.N / 64, 100))).ToArray() : Gpt2Weights;
        var gpu = runtime.Kernels;
        var rows = new JsonArray();
        var random = new Generator(1);
        foreach (var (k, n) in weights)
        {
            using var a = new DeviceBuffer(runtime, (long)m * k, random);
            using var b = new DeviceBuffer(runtime, (long)k * n, random);
            using var c = new DeviceBuffer(runtime, (long)m * n);
            foreach (var layout in Layouts)
            {
                bool transA = layout[0] == 'T', transB = layout[1] == 'T';
                int lda = transA ? m : k, ldb = transB ? k : n;
                double flops = 2.0 * m * n * k;
                var row = new JsonObject { ["m"] = m, ["n"] = n, ["k"] = k, ["layout"] = layout };
                float[]? naive = null;
                foreach (var version in Enum.GetValues<GemmVersion>())
                {
                    void Multiply() => gpu.Gemm(version, transA, transB, m, n, k, a.Pointer, lda, 0, b.Pointer, ldb, 0, c.Pointer, n, 0, 1, false, null);
                    // v1 is slow on the LM head: once to compile and check, once timed.
                    double ms = version == GemmVersion.V1Naive || options.Smoke
                        ? Timing.MedianMs(runtime, Multiply, 0, minRuns: 1, warmUp: !options.Smoke)
                        : Timing.MedianMs(runtime, Multiply, options.SecondsPerCase);
                    var result = c.Read();
                    naive ??= result;
                    row[version.ToString()] = new JsonObject
                    {
                        ["ms"] = Math.Round(ms, 4),
                        ["gflops"] = Math.Round(flops / ms / 1e6, 1),
                        ["max_rel_diff_vs_v1"] = Timing.RelativeDifference(result, naive),
                    };
                    Console.WriteLine($"  sgemm {layout} m={m} n={n} k={k} {version,-20} {ms,9:F3} ms {flops / ms / 1e6,9:F1} GFLOP/s");
                }
                rows.Add(row);
            }
        }
        report.Results["sgemm"] = rows;
    }
}
