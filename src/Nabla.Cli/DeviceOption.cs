using System.CommandLine;
using Nabla.Gpu;

namespace Nabla.Cli;

/// <summary>--device: where a command's model lives and its batches go.</summary>
internal static class DeviceOption
{
    private static readonly string[] Names = ["cpu", "cuda", "ilgpu-cpu", "auto"];

    public static Option<string> Create() =>
        new Option<string>("--device")
        {
            Description = "cpu, cuda (the first NVIDIA GPU), ilgpu-cpu (the GPU kernels on ILGPU's CPU accelerator: slow, for checking) or auto (cuda when present, else cpu).",
            DefaultValueFactory = _ => "cpu",
        }.Require(name => Names.Contains(name), name => $"--device must be one of {string.Join(", ", Names)}, got '{name}'.");

    /// <summary>The device <paramref name="name"/> stands for; a GPU that is absent is an error naming the option.</summary>
    public static Device Resolve(string name)
    {
        NablaGpu.Register();
        try
        {
            return Device.Get(name == "auto" ? "cuda" : name);
        }
        catch (InvalidOperationException) when (name == "auto")
        {
            return Device.Cpu;
        }
        catch (InvalidOperationException e)
        {
            throw new CliException($"--device {name}: {e.Message}");
        }
    }
}
