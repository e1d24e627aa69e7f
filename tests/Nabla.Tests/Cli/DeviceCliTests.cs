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

        var sgd = CliRunner.Run("train", "mlp", "--optimizer", "sgd", "--device", "ilgpu-cpu", "--out", Path.Combine(_dir, "sgd"));
        Assert.Equal(1, sgd.Exit);
        Assert.Equal("error: --device ilgpu-cpu: the sgd optimizer updates parameters on the CPU only; use --optimizer adamw (or adam), or --device cpu.", sgd.Err.Trim());
    }
}
