using System.Text.Json.Nodes;
using Nabla.Gpu;
using Nabla.Kernels;

namespace Nabla.GpuBench;

/// <summary>Causal attention at GPT-2 124M training size (B = 8, H = 12, T = 1024, d = 64, layout (B, H, T, d)):
/// forward, and forward + backward, of each version (v2's outputs compared with v1's).</summary>
public static unsafe class AttentionBench
{
    public static void Run(GpuRuntime runtime, BenchOptions options, Report report)
    {
        (int B, int H, int T, int D) = options.Smoke ? (1, 2, 40, 16) : (8, 12, 1024, 64);
        var rows = new RowStrides((long)H * T * D, (long)T * D, D);
        var layout = new AttentionLayout(B, H, T, T, D, 1f / MathF.Sqrt(D), true, rows, rows, rows, rows);
        long n = (long)B * H * T * D;
        var random = new Generator(2);
        using var q = new DeviceBuffer(runtime, n, random);
        using var k = new DeviceBuffer(runtime, n, random);
        using var v = new DeviceBuffer(runtime, n, random);
        using var dout = new DeviceBuffer(runtime, n, random);
        using var o = new DeviceBuffer(runtime, n);
        using var lse = new DeviceBuffer(runtime, (long)B * H * T);
        using var dq = new DeviceBuffer(runtime, n);
        using var dk = new DeviceBuffer(runtime, n);
        using var dv = new DeviceBuffer(runtime, n);
        var gpu = runtime.Kernels;
        var result = new JsonObject { ["batch"] = B, ["heads"] = H, ["t"] = T, ["head_dim"] = D, ["causal"] = true };
        float[][]? first = null;
        foreach (var version in Enum.GetValues<AttentionVersion>())
        {
            void Forward() => gpu.Attention(version, layout, q.Pointer, k.Pointer, v.Pointer, o.Pointer, lse.Pointer);
            void Backward() => gpu.AttentionBackward(version, layout, q.Pointer, k.Pointer, v.Pointer, o.Pointer, lse.Pointer, dout.Pointer,
                dq.Pointer, dk.Pointer, dv.Pointer);
            int runs = options.Smoke ? 1 : 3;
            double forwardMs = Timing.MedianMs(runtime, Forward, options.Smoke ? 0 : options.SecondsPerCase, runs, warmUp: !options.Smoke);
            double bothMs = Timing.MedianMs(runtime, () => { Forward(); Backward(); }, options.Smoke ? 0 : options.SecondsPerCase, runs, warmUp: !options.Smoke);
            float[][] outputs = [o.Read(), dq.Read(), dk.Read(), dv.Read()];
            first ??= outputs;
            result[version.ToString()] = new JsonObject
            {
                ["forward_ms"] = Math.Round(forwardMs, 4),
                ["forward_backward_ms"] = Math.Round(bothMs, 4),
                ["max_rel_diff_vs_v1"] = outputs.Zip(first, Timing.RelativeDifference).Max(),
            };
            Console.WriteLine($"  attention {version,-16} forward {forwardMs,9:F3} ms, forward+backward {bothMs,9:F3} ms");
        }
        report.Results["attention"] = result;
    }
}
