using Nabla.Gpu;

namespace Nabla.Tests.Gpu;

/// <summary>The device runtime: registration, host ↔ device copies, copies within the device at offsets inside
/// buffers, the size-class pool and its accounting, and clear errors for addresses that are not device memory.</summary>
public sealed unsafe class GpuRuntimeTests
{
    [Fact]
    public void RegistersBothKindsAndTheCpuAcceleratorIsAlwaysThere()
    {
        NablaGpu.Register();
        var device = Device.Get("ilgpu-cpu");
        Assert.Equal("ilgpu-cpu", device.Name);
        Assert.False(device.IsCpu);
        Assert.IsType<GpuBackend>(device.Kernels);
        Assert.Same(device, Device.Get("ILGPU-CPU")); // opened once, shared
        // "cuda" is known either way: on a machine without an NVIDIA GPU it says it is unavailable.
        try { Assert.StartsWith("cuda", Device.Get("cuda").Name); }
        catch (InvalidOperationException e) { Assert.Contains("'cuda' is not available", e.Message); }
    }

    [Fact]
    public void CopiesRoundTripAndCopyWithinWorksAtOffsetsInsideBuffers()
    {
        var runtime = GpuTestDevice.Runtime;
        var data = Enumerable.Range(0, 100).Select(i => (float)i).ToArray();
        nint a = runtime.Allocate(400, out long capA), b = runtime.Allocate(400, out long capB);
        try
        {
            fixed (float* p = data) runtime.CopyFromHost(p, a, 400);
            // 10 floats from element 20 of a to element 5 of b: both addresses are inside their buffers.
            runtime.CopyWithin(a + 20 * sizeof(float), b + 5 * sizeof(float), 10 * sizeof(float));
            var back = new float[10];
            fixed (float* p = back) runtime.CopyToHost(b + 5 * sizeof(float), p, 10 * sizeof(float));
            Assert.Equal(data.Skip(20).Take(10), back);
            runtime.Synchronize();
        }
        finally
        {
            runtime.Free(a, capA);
            runtime.Free(b, capB);
        }
    }

    [Fact]
    public void FreedBuffersArePooledBySizeClassAndAccounted()
    {
        // A runtime of its own, so other tests' allocations do not move the counters.
        using var runtime = GpuRuntime.CreateCpu();
        nint first = runtime.Allocate(1000, out long capacity);
        Assert.Equal(1024, capacity);
        Assert.Equal(1024, runtime.LiveBytes);
        runtime.Free(first, capacity);
        Assert.Equal(0, runtime.LiveBytes);
        Assert.Equal(1024, runtime.PooledBytes);
        // Any request in the same class gets the pooled buffer back.
        nint second = runtime.Allocate(900, out long again);
        Assert.Equal(first, second);
        Assert.Equal(1024, again);
        Assert.Equal(0, runtime.PooledBytes);
        runtime.Free(second, again);
        runtime.TrimPool();
        Assert.Equal(0, runtime.PooledBytes);
    }

    [Theory]
    [InlineData(0, 256)]
    [InlineData(256, 256)]
    [InlineData(257, 320)]
    [InlineData(1024, 1024)]
    [InlineData(1025, 1280)]
    [InlineData(1537, 1792)]
    [InlineData(1793, 2048)]
    public void SizeClassesWasteAtMostAQuarter(long bytes, long expected) => Assert.Equal(expected, GpuRuntime.SizeClass(bytes));

    [Fact]
    public void HostPointersAndForeignAddressesAreRejectedClearly()
    {
        var runtime = GpuTestDevice.Runtime;
        var host = new float[4];
        fixed (float* p = host)
        {
            nint hostAddress = (nint)p;
            var error = Assert.Throws<ArgumentException>(() => runtime.Kernels.Fill((float*)hostAddress, 1, 4));
            Assert.Contains("not inside any buffer of this device", error.Message);
        }
        nint a = runtime.Allocate(64, out long capacity);
        try
        {
            Assert.Throws<ArgumentException>(() => runtime.Free(a + 4, capacity));
            var overrun = Assert.Throws<ArgumentOutOfRangeException>(() => runtime.CopyWithin(a, a + 4, capacity));
            Assert.Contains("run past the end", overrun.Message);
        }
        finally { runtime.Free(a, capacity); }
    }
}
