using Nabla.Gpu;

namespace Nabla.Tests.Gpu;

/// <summary>The GPU tests share one ILGPU CPU accelerator (opened through <see cref="Device.Get"/>, as users do), so
/// each kernel is compiled once per test run. No GPU is needed.</summary>
public static class GpuTestDevice
{
    public static GpuRuntime Runtime
    {
        get
        {
            NablaGpu.Register();
            return (GpuRuntime)Device.Get("ilgpu-cpu").Runtime!;
        }
    }

    public static GpuBackend Kernels => Runtime.Kernels;
}

/// <summary>Device buffers for one test: uploads host arrays, reads results back, frees everything on dispose.</summary>
public sealed unsafe class DeviceArrays(GpuRuntime runtime) : IDisposable
{
    private readonly List<(nint Address, long Capacity)> _allocations = [];

    public DeviceArrays() : this(GpuTestDevice.Runtime) { }

    private nint Allocate(long bytes)
    {
        nint address = runtime.Allocate(bytes, out long capacity);
        _allocations.Add((address, capacity));
        return address;
    }

    public float* Upload(float[] data)
    {
        nint address = Allocate((long)data.Length * sizeof(float));
        fixed (float* p = data) runtime.CopyFromHost(p, address, (long)data.Length * sizeof(float));
        return (float*)address;
    }

    public int* Upload(int[] data)
    {
        nint address = Allocate((long)data.Length * sizeof(int));
        fixed (int* p = data) runtime.CopyFromHost(p, address, (long)data.Length * sizeof(int));
        return (int*)address;
    }

    /// <summary>A buffer of n floats, each <paramref name="value"/> (NaN by default, so an element a kernel forgets to
    /// write shows).</summary>
    public float* Filled(long n, float value = float.NaN)
    {
        var host = new float[n];
        Array.Fill(host, value);
        return Upload(host);
    }

    public float[] Read(float* address, long n)
    {
        var host = new float[n];
        fixed (float* p = host) runtime.CopyToHost((nint)address, p, n * sizeof(float));
        return host;
    }

    public int[] Read(int* address, long n)
    {
        var host = new int[n];
        fixed (int* p = host) runtime.CopyToHost((nint)address, p, n * sizeof(int));
        return host;
    }

    public void Dispose()
    {
        foreach (var (address, capacity) in _allocations) runtime.Free(address, capacity);
        _allocations.Clear();
    }
}

/// <summary>Random data and comparisons for the GPU kernel tests.</summary>
public static class GpuCheck
{
    public static float[] Normal(Generator g, long n, float scale = 1f)
    {
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)g.NextNormal() * scale;
        return a;
    }

    public static float[] SmallInts(Generator g, long n, int k = 8)
    {
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = g.NextInt(2 * k + 1) - k;
        return a;
    }

    /// <summary>|actual - expected| ≤ atol + rtol·|expected| everywhere (NaN matches NaN, ±∞ must match exactly);
    /// the message names the first element that differs.</summary>
    public static void Near(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what, double rtol = 1e-5, double atol = 1e-6)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} elements, expected {expected.Length}");
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (float.IsNaN(e) && float.IsNaN(a)) continue;
            if (float.IsInfinity(e) || float.IsInfinity(a))
            {
                Assert.True(e == a, $"{what}: element {i} is {a}, expected {e}");
                continue;
            }
            Assert.True(Math.Abs(a - e) <= atol + rtol * Math.Abs(e), $"{what}: element {i} is {a}, expected {e} (diff {Math.Abs(a - e):g3})");
        }
    }
}
