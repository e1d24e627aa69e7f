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

    public const string JsonFile = "gpu-bench.json", MarkdownFile = "gpu-bench.md";

    public void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        var json = new JsonObject
        {
            ["device"] = runtime.Name,
            ["accelerator"] = runtime.Accelerator.Name,
            ["smoke"] = options.Smoke,
            ["date_utc"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture),
            ["nabla"] = Results.DeepClone(),
            ["torch"] = _peer?.DeepClone(),
        };
        File.WriteAllText(Path.Combine(directory, JsonFile), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.WriteAllText(Path.Combine(directory, MarkdownFile), Markdown(json));
    }

    private static string F(JsonNode? node, string format = "F1") =>
        node is null ? "–" : node.GetValue<double>().ToString(format, CultureInfo.InvariantCulture);

    private string Markdown(JsonObject json)
    {
        var md = new StringBuilder();
        md.AppendLine($"# GPU benchmark: {json["accelerator"]} ({json["device"]}){(options.Smoke ? " — SMOKE SIZES, not a measurement" : "")}");
        md.AppendLine();
        md.AppendLine($"{json["date_utc"]} UTC. PyTorch: {_peerNote}. " +
                      "Written by bench/gpu/run.sh (nabla-gpubench + torch_peer.py).");
        if (Results["sgemm"] is JsonArray sgemm) AppendSgemm(md, sgemm);
        if (Results["attention"] is { } attention) AppendAttention(md, attention);
        if (Results["gpt2"] is { } gpt2) AppendGpt2(md, gpt2);
        md.AppendLine();
        md.AppendLine("Our kernels' outputs are checked against v1's on the device: max relative difference in gpu-bench.json (`max_rel_diff_vs_v1`).");
        return md.ToString();
    }

    private void AppendSgemm(StringBuilder md, JsonArray sgemm)
    {
        md.AppendLine();
        md.AppendLine("## SGEMM, GFLOP/s (fp32)");
        md.AppendLine();
        md.AppendLine("| m × n × k | layout | v1 naive | v2 shared tiles | v3 register blocking | v4 wide tiles | cuBLAS fp32 | best / cuBLAS | cuBLAS TF32 |");
        md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var row in sgemm)
        {
            var peer = _peer?["sgemm"]?.AsArray().FirstOrDefault(p =>
                p!["m"]!.GetValue<int>() == row!["m"]!.GetValue<int>() && p["n"]!.GetValue<int>() == row["n"]!.GetValue<int>() &&
                p["k"]!.GetValue<int>() == row["k"]!.GetValue<int>() && p["layout"]!.GetValue<string>() == row["layout"]!.GetValue<string>());
            var ours = Enum.GetValues<GemmVersion>().Select(v => row![v.ToString()]!["gflops"]!.GetValue<double>()).ToArray();
            double? cublas = peer?["gflops"]?.GetValue<double>();
            md.AppendLine($"| {row!["m"]} × {row["n"]} × {row["k"]} | {row["layout"]} | {string.Join(" | ", ours.Select(g => g.ToString("F1", CultureInfo.InvariantCulture)))} | " +
                          $"{F(peer?["gflops"])} | {(cublas is > 0 ? (ours.Max() / cublas.Value).ToString("P0", CultureInfo.InvariantCulture) : "–")} | {F(peer?["tf32_gflops"])} |");
        }
    }

    private void AppendAttention(StringBuilder md, JsonNode attention)
    {
        var torch = _peer?["attention"];
        md.AppendLine();
        md.AppendLine($"## Causal attention, B = {attention["batch"]}, H = {attention["heads"]}, T = {attention["t"]}, d = {attention["head_dim"]} (fp32), ms");
        md.AppendLine();
        md.AppendLine("| kernel | forward | forward + backward |");
        md.AppendLine("|---|---:|---:|");
        foreach (var version in Enum.GetValues<AttentionVersion>())
            md.AppendLine($"| Nabla {version} | {F(attention[version.ToString()]!["forward_ms"], "F3")} | {F(attention[version.ToString()]!["forward_backward_ms"], "F3")} |");
        foreach (var (key, label) in new[] { ("sdpa_default", "PyTorch SDPA (default backend)"), ("sdpa_math", "PyTorch SDPA, math path") })
            md.AppendLine($"| {label}{(torch?[key]?["note"] is { } note ? $" ({note})" : "")} | {F(torch?[key]?["forward_ms"], "F3")} | " +
                          $"{F(torch?[key]?["forward_backward_ms"], "F3")} |");
    }

    /// <summary>The GPT-2 rows: ours, PyTorch eager's (when it ran the same sizes), our time over PyTorch's, and
    /// torch.compile's training step where the peer measured one.</summary>
    private void AppendGpt2(StringBuilder md, JsonNode ours)
    {
        var torch = _peer?["gpt2"];
        string? mismatch = torch?["error"] is { } error ? $"failed: {error}"
            : torch is null || SameSizes(ours, torch) ? null : "ran other sizes";
        if (mismatch is not null) torch = null;
        var c = ours["config"]!;
        var (train, generation) = (ours["training_step"]!, ours["generation"]!);
        md.AppendLine();
        md.AppendLine($"## GPT-2 ({c["layers"]} layers, {c["channels"]} channels, {c["heads"]} heads, vocabulary {c["vocab"]}; " +
                      $"{ours["parameters"]!.GetValue<long>():N0} parameters, random weights), fp32 on the device");
        md.AppendLine();
        md.AppendLine("| | Nabla | PyTorch eager | Nabla time ÷ PyTorch eager time | PyTorch torch.compile |");
        md.AppendLine("|---|---:|---:|---:|---:|");
        var compiled = torch?["training_step_compiled"];
        string compiledCell = compiled?["ms"] is not null ? Cell(compiled, "ms", "tokens_per_s") : compiled?["note"]?.GetValue<string>() ?? "–";
        // Our time over PyTorch eager's for one entry's milliseconds; the training step's against the issue's target.
        string Ratio(string entry, string ms, bool target = false)
        {
            double? theirs = torch?[entry]?[ms]?.GetValue<double>(), mine = ours[entry]?[ms]?.GetValue<double>();
            if (theirs is not > 0 || mine is null) return mismatch is null ? "–" : $"– (PyTorch {mismatch})";
            double ratio = mine.Value / theirs.Value;
            string verdict = target && !options.Smoke ? $" (target ≤ 2×: {(ratio <= 2 ? "met" : "not met")})" : "";
            return $"{ratio.ToString("F2", CultureInfo.InvariantCulture)}×{verdict}";
        }
        md.AppendLine($"| training step, B = {train["batch"]}, T = {train["t"]} (forward, backward, AdamW) | {Cell(train, "ms", "tokens_per_s")} | " +
                      $"{Cell(torch?["training_step"], "ms", "tokens_per_s")} | {Ratio("training_step", "ms", target: true)} | {compiledCell} |");
        md.AppendLine($"| generation prefill, {generation["prompt_tokens"]}-token prompt, B = 1 | {Cell(generation, "prefill_ms", "prefill_tokens_per_s")} | " +
                      $"{Cell(torch?["generation"], "prefill_ms", "prefill_tokens_per_s")} | {Ratio("generation", "prefill_ms")} | – |");
        md.AppendLine($"| generation decode, {generation["new_tokens"]} new tokens, greedy, KV cache | {Cell(generation, "decode_ms", "decode_tokens_per_s")} | " +
                      $"{Cell(torch?["generation"], "decode_ms", "decode_tokens_per_s")} | {Ratio("generation", "decode_ms")} | – |");
        md.AppendLine();
        md.AppendLine($"Training: median of the timed steps (Nabla: {train["timed_steps"]} after {train["warm_up_steps"]} warm-up; loss " +
                      $"{F(train["loss_first"], "F3")} → {F(train["loss_last"], "F3")}); generation: median of the timed rounds " +
                      $"(Nabla: {generation["rounds"]?.ToString() ?? "not finished"} after {generation["warm_up_rounds"]} warm-up). The device is synchronised before each clock read.");
    }

    /// <summary>"12.3 ms (4,567 tokens/s)" from an entry's milliseconds and rate.</summary>
    private static string Cell(JsonNode? entry, string ms, string rate) =>
        entry?[ms] is null ? "–" : $"{F(entry[ms])} ms ({entry[rate]!.GetValue<double>().ToString("N0", CultureInfo.InvariantCulture)} tokens/s)";

    /// <summary>Whether the peer ran the model and the work we ran (a smoke peer beside a full run, say, did not).</summary>
    private static bool SameSizes(JsonNode ours, JsonNode theirs) =>
        JsonNode.DeepEquals(ours["config"], theirs["config"])
        && new[] { ("training_step", "batch"), ("training_step", "t"), ("generation", "prompt_tokens"), ("generation", "new_tokens") }
            .All(k => JsonNode.DeepEquals(ours[k.Item1]?[k.Item2], theirs[k.Item1]?[k.Item2]));
}
