using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nabla.Gpu;

namespace Nabla.GpuBench;

/// <summary>The results of one run, ours and (optionally) PyTorch's, written as gpu-bench.json and gpu-bench.md.</summary>
public sealed class Report(GpuRuntime runtime, BenchOptions options)
{
    public JsonObject Results { get; } = new();
    private JsonNode? _peer;
    private string _peerNote = "not run";

    public void AddPeer(string path)
    {
        try
        {
            var peer = JsonNode.Parse(File.ReadAllText(path));
            if (peer?["available"]?.GetValue<bool>() == true)
            {
                _peer = peer;
                _peerNote = $"{peer["torch"]} on {peer["device"]}";
            }
            else _peerNote = $"not measured ({peer?["reason"]})";
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"nabla-gpubench: ignoring the peer results {path}: {e.Message}");
        }
    }

    public void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        var json = new JsonObject
        {
            ["device"] = runtime.Name,
            ["accelerator"] = runtime.Accelerator.Name,
            ["smoke"] = options.Smoke,
            ["date_utc"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture),
            ["nabla"] = Results,
            ["torch"] = _peer?.DeepClone(),
        };
        string jsonPath = Path.Combine(directory, "gpu-bench.json"), mdPath = Path.Combine(directory, "gpu-bench.md");
        File.WriteAllText(jsonPath, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.WriteAllText(mdPath, Markdown(json));
        Console.WriteLine($"wrote {jsonPath} and {mdPath}");
    }

    private static string F(JsonNode? node, string format = "F1") =>
        node is null ? "–" : node.GetValue<double>().ToString(format, CultureInfo.InvariantCulture);

    private string Markdown(JsonObject json)
    {
        var md = new StringBuilder();
        var torch = _peer;
        md.AppendLine($"# GPU benchmark: {json["accelerator"]} ({json["device"]}){(options.Smoke ? " — SMOKE SIZES, not a measurement" : "")}");
        md.AppendLine();
        md.AppendLine($"{json["date_utc"]} UTC. PyTorch: {_peerNote}. " +
                      "Written by bench/gpu/run.sh (nabla-gpubench + torch_peer.py).");
        md.AppendLine();
        md.AppendLine("## SGEMM, GFLOP/s (fp32)");
        md.AppendLine();
        md.AppendLine("| m × n × k | layout | v1 naive | v2 shared tiles | v3 register blocking | v4 wide tiles | cuBLAS fp32 | best / cuBLAS | cuBLAS TF32 |");
        md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var row in Results["sgemm"]!.AsArray())
        {
            var peer = torch?["sgemm"]?.AsArray().FirstOrDefault(p =>
                p!["m"]!.GetValue<int>() == row!["m"]!.GetValue<int>() && p["n"]!.GetValue<int>() == row["n"]!.GetValue<int>() &&
                p["k"]!.GetValue<int>() == row["k"]!.GetValue<int>() && p["layout"]!.GetValue<string>() == row["layout"]!.GetValue<string>());
            var ours = Enum.GetValues<GemmVersion>().Select(v => row![v.ToString()]!["gflops"]!.GetValue<double>()).ToArray();
            double? cublas = peer?["gflops"]?.GetValue<double>();
            md.AppendLine($"| {row!["m"]} × {row["n"]} × {row["k"]} | {row["layout"]} | {string.Join(" | ", ours.Select(g => g.ToString("F1", CultureInfo.InvariantCulture)))} | " +
                          $"{F(peer?["gflops"])} | {(cublas is > 0 ? (ours.Max() / cublas.Value).ToString("P0", CultureInfo.InvariantCulture) : "–")} | {F(peer?["tf32_gflops"])} |");
        }
        md.AppendLine();
        var attention = Results["attention"]!;
        md.AppendLine($"## Causal attention, B = {attention["batch"]}, H = {attention["heads"]}, T = {attention["t"]}, d = {attention["head_dim"]} (fp32), ms");
        md.AppendLine();
        md.AppendLine("| kernel | forward | forward + backward |");
        md.AppendLine("|---|---:|---:|");
        foreach (var version in Enum.GetValues<AttentionVersion>())
            md.AppendLine($"| Nabla {version} | {F(attention[version.ToString()]!["forward_ms"], "F3")} | {F(attention[version.ToString()]!["forward_backward_ms"], "F3")} |");
        foreach (var (key, label) in new[] { ("sdpa_default", "PyTorch SDPA (default backend)"), ("sdpa_math", "PyTorch SDPA, math path") })
            md.AppendLine($"| {label}{(torch?["attention"]?[key]?["note"] is { } note ? $" ({note})" : "")} | {F(torch?["attention"]?[key]?["forward_ms"], "F3")} | " +
                          $"{F(torch?["attention"]?[key]?["forward_backward_ms"], "F3")} |");
        md.AppendLine();
        md.AppendLine("## GPT-2 124M (B = 8, T = 1024)");
        md.AppendLine();
        md.AppendLine("| | Nabla | PyTorch |");
        md.AppendLine("|---|---:|---:|");
        string reason = Results["gpt2"]!["reason"]?.GetValue<string>() ?? "";
        md.AppendLine($"| training step, ms | – ({reason}) | {F(torch?["gpt2"]?["training_step_ms"])} |");
        md.AppendLine($"| generation, tokens/s | – | {F(torch?["gpt2"]?["generation_tokens_per_s"])} |");
        md.AppendLine();
        md.AppendLine("Our outputs are checked against v1's on the device: max relative difference in gpu-bench.json (`max_rel_diff_vs_v1`).");
        return md.ToString();
    }
}
