using System.Text.RegularExpressions;

namespace Nabla.Tests.Cli;

/// <summary>--device on the commands that take it: a run on the GPU kernels (ILGPU's CPU accelerator) ends where the CPU
/// run does, and bad choices are one line naming the option.</summary>
[Collection("Console")]
public class DeviceCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nabla-device-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static string Validation(string output) => Regex.Match(output, @"validation accuracy: .*loss (\d+\.\d+)").Groups[0].Value;

    [Fact]
    public void MlpTrainedOnTheGpuKernelsMatchesTheCpuRunAndEvaluatesThere()
    {
        string Train(string device)
        {
            var (exit, output, error) = CliRunner.Run("train", "mlp", "--quiet", "--epochs", "2", "--device", device, "--out", Path.Combine(_dir, device));
            Assert.True(exit == 0, error);
            return Validation(output);
        }
        var cpu = Train("cpu");
        Assert.NotEmpty(cpu);
        Assert.Equal(cpu, Train("ilgpu-cpu")); // accuracy and the loss to 4 decimals

        var (evalExit, evalOut, evalErr) = CliRunner.Run("eval", "--run", Path.Combine(_dir, "ilgpu-cpu"), "--device", "ilgpu-cpu");
        Assert.True(evalExit == 0, evalErr);
        Assert.Contains("accuracy", evalOut);
    }

    [Fact]
    public void BadDeviceChoicesAreOneLine()
    {
        var unknown = CliRunner.Run("train", "mlp", "--device", "tpu");
        Assert.NotEqual(0, unknown.Exit);
        Assert.Contains("--device must be one of cpu, cuda, ilgpu-cpu, auto, got 'tpu'.", unknown.Err);
    }

    /// <summary>Every training, evaluation and inference command takes --device; without a GPU, cuda is one line naming
    /// the option, before any data is read.</summary>
    [NoCudaFact]
    public void EveryCommandTakesDeviceAndCudaWithoutAGpuIsOneLine()
    {
        var run = Path.Combine(_dir, "run");
        string[][] commands =
        [
            ["train", "lenet", "--out", run], ["train", "vgg", "--out", run], ["train", "resnet", "--out", run], ["train", "vit", "--out", run],
            ["train", "mlp", "--out", run], ["train", "gpt", "--out", run], ["train", "text-classifier", "--out", run], ["train", "char-lstm", "--out", run],
            ["finetune", "gpt", "--out", run], ["finetune", "resnet", "--out", run], ["eval", "--run", _dir], ["generate", "--model", _dir],
            ["eval", "perplexity", "--model", _dir, "--text", _dir], ["classify", "--model", "resnet18", "image.png"],
            ["sweep", "--knob", "lr", "--values", "1", "--out", run, "--", "train", "lenet"],
        ];
        foreach (var command in commands)
        {
            int end = Array.IndexOf(command, "--") is var dashes and >= 0 ? dashes : command.Length; // --device goes before a sweep's training command
            var (exit, _, error) = CliRunner.Run([.. command[..end], "--device", "cuda", .. command[end..]]);
            Assert.True(exit == 1, $"{string.Join(' ', command)}: exit {exit}\n{error}");
            Assert.Equal("error: --device cuda: Device 'cuda' is not available on this machine.", error.Trim());
        }
    }

    private static string OrderCsv(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "order.csv");
        File.WriteAllLines(path, ["text,label", .. Models.OrderTask.Generate(20, seed: 9).Select(t => $"{string.Join(' ', t.Words)},{Models.OrderTask.Labels[t.Label]}")]);
        return path;
    }

    private static string[] TextClassifier(string csv, string device, string run) =>
        ["train", "text-classifier", "--csv", csv, "--epochs", "1", "--batch-size", "8", "--max-length", "5", "--embedding-dim", "8", "--hidden", "6",
            "--dropout", "0.2", "--device", device, "--out", run];

    private static string ValidationLine(string output) => Regex.Match(output, @"validation accuracy: .*macro F1 \d\.\d+").Value;

    /// <summary>auto is the CPU when no GPU is present: the run says nothing about a device.</summary>
    [NoCudaFact]
    public void AutoWithoutAGpuTrainsOnTheCpu()
    {
        var csv = OrderCsv(_dir);
        var (exit, output, error) = CliRunner.Run(TextClassifier(csv, "auto", Path.Combine(_dir, "auto")));
        Assert.True(exit == 0, error);
        Assert.DoesNotContain("; on ", output);
        Assert.Equal(ValidationLine(output), ValidationLine(CliRunner.Run(TextClassifier(csv, "cpu", Path.Combine(_dir, "cpu"))).Out));
    }
}

/// <summary>A test of what a machine without an NVIDIA GPU does; skipped where one is present.</summary>
public sealed class NoCudaFactAttribute : FactAttribute
{
    public NoCudaFactAttribute()
    {
        Nabla.Gpu.NablaGpu.Register();
        try
        {
            Device.Get("cuda");
            Skip = "An NVIDIA GPU is present: this test checks what happens without one.";
        }
        catch (InvalidOperationException) { }
    }
}
