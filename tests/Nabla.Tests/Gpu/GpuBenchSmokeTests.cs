using System.Globalization;
using System.Text.Json.Nodes;
using Nabla.GpuBench;

namespace Nabla.Tests.Gpu;

/// <summary>
/// nabla-gpubench's GPT-2 rows at smoke sizes on ILGPU's CPU accelerator (what bench/gpu/run.sh runs at full size on a
/// GPU), with the output of bench/gpu/torch_peer.py --smoke --only gpt2 beside them (the fixture, written by Debian's
/// PyTorch 1.13 on the CPU): both sides must run the same model and line up in the Markdown table. Times are not checked.
/// </summary>
[Collection(GpuCollection.Name)]
public sealed class GpuBenchSmokeTests
{
    [Fact]
    public void Gpt2RowsRunOnTheDeviceAndLineUpWithPyTorchs()
    {
        string directory = Directory.CreateTempSubdirectory("nabla-gpubench-").FullName;
        try
        {
            var options = BenchOptions.Parse(["--device", "ilgpu-cpu", "--smoke", "--only", "gpt2", "--out", directory,
                "--peer", TestData.Fixture("gpu_bench/torch_peer_smoke.json")])!;
            Assert.Equal(0, Benchmark.Run(options));
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, Report.JsonFile)))!;
            Assert.Null(json["nabla"]!["sgemm"]); // --only gpt2
            var (ours, theirs) = (json["nabla"]!["gpt2"]!, json["torch"]!["gpt2"]!);
            Assert.Equal(theirs["parameters"]!.GetValue<long>(), ours["parameters"]!.GetValue<long>()); // the same model
            var train = ours["training_step"]!;
            // Weights of std 0.02 predict nearly uniformly: the first loss is about ln(vocabulary), as PyTorch's is;
            // AdamW's steps on the device lower it.
            double firstLoss = train["loss_first"]!.GetValue<double>();
            Assert.InRange(firstLoss, Math.Log(32) - 0.15, Math.Log(32) + 0.15);
            Assert.True(train["loss_last"]!.GetValue<double>() < firstLoss, $"loss {firstLoss} → {train["loss_last"]}");
            foreach (var (entry, key) in new[] { (train, "ms"), (ours["generation"]!, "prefill_ms"), (ours["generation"]!, "decode_ms") })
                Assert.True(entry[key]!.GetValue<double>() > 0, key);

            var rows = File.ReadAllLines(Path.Combine(directory, Report.MarkdownFile))
                .Where(line => line.StartsWith("| training step") || line.StartsWith("| generation")).ToList();
            Assert.Equal(3, rows.Count);
            var torchMs = new[] { theirs["training_step"]!["ms"]!, theirs["generation"]!["prefill_ms"]!, theirs["generation"]!["decode_ms"]! };
            for (int i = 0; i < rows.Count; i++)
            {
                string[] cells = rows[i].Split('|', StringSplitOptions.TrimEntries)[1..^1]; // row, Nabla, PyTorch eager, ratio, compiled
                Assert.Matches(@"^\d+\.\d ms \(", cells[1]);
                Assert.StartsWith($"{torchMs[i].GetValue<double>().ToString("F1", CultureInfo.InvariantCulture)} ms (", cells[2]);
                Assert.Matches(@"^\d+\.\d\d×$", cells[3]);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("gemm,softmax")]
    [InlineData(",")]
    public void OnlyRefusesAnUnknownOrEmptyListOfParts(string only) => Assert.Null(BenchOptions.Parse(["--only", only]));

    [Fact]
    public void OnlyPicksParts() =>
        Assert.Equal(["attention", "gemm"], BenchOptions.Parse(["--smoke", "--only", "gemm, attention"])!.Parts.Order());
}
