namespace Nabla.Gpu;

/// <summary>Makes the GPU devices known to <see cref="Device.Get"/>.</summary>
public static class NablaGpu
{
    /// <summary>Registers "cuda" (the first NVIDIA GPU; <see cref="Device.Get"/> says it is unavailable when there is
    /// none) and "ilgpu-cpu" (ILGPU's CPU accelerator running the same kernels, always available). Idempotent.</summary>
    public static void Register()
    {
        Device.Register("cuda", GpuRuntime.CreateCuda);
        Device.Register("ilgpu-cpu", GpuRuntime.CreateCpu);
    }
}
