using System.Text.Json.Nodes;
using Nabla.Gpu;

namespace Nabla.GpuBench;

/// <summary>
/// ======== PLACE FOR THE MODEL-LEVEL ROWS ========
/// The GPT-2 124M training step (B = 8, T = 1024: forward, backward, AdamW; ms and tokens/s) and generation
/// (tokens/s) on the device belong here. They need tensors and modules that live on the device
/// (tensor.To(device), module.To(device)), which the gpu-core branch adds; until it is merged this writes a
/// "not measured" entry, and the Markdown table shows the row empty with that reason. torch_peer.py has the
/// matching place for PyTorch's numbers.
/// </summary>
public static class ModelBench
{
    public static void Run(GpuRuntime runtime, BenchOptions options, Report report)
    {
        report.Results["gpt2"] = new JsonObject
        {
            ["measured"] = false,
            ["reason"] = "model-level device support (module.To(device)) is not merged yet",
            ["training_step"] = new JsonObject { ["batch"] = 8, ["t"] = 1024 },
            ["generation"] = new JsonObject(),
        };
    }
}
