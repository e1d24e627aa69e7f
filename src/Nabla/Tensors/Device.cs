using Nabla.Kernels;

namespace Nabla;

/// <summary>
/// Where a tensor's memory lives and which kernels run on it. <see cref="Cpu"/> is host memory and the CPU (or
/// reference) kernels; any other device is an <see cref="IDeviceRuntime"/> registered by a backend assembly
/// (Nabla.Gpu registers "cuda" and "ilgpu-cpu", ILGPU's CPU accelerator that runs the GPU kernels in CI).
/// </summary>
public sealed class Device : IEquatable<Device>
{
    private static readonly object Gate = new();
    private static readonly Dictionary<string, Func<IDeviceRuntime?>> Providers = new(StringComparer.OrdinalIgnoreCase);
    private static readonly Dictionary<string, Device> Opened = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Host memory; kernels from <see cref="Backend.Current"/>.</summary>
    public static Device Cpu { get; } = new("cpu", null);

    /// <summary>"cpu", or the runtime's name ("cuda:0", "ilgpu-cpu").</summary>
    public string Name { get; }

    /// <summary>The device's memory and kernels; null for <see cref="Cpu"/>.</summary>
    public IDeviceRuntime? Runtime { get; }

    public bool IsCpu => Runtime is null;

    /// <summary>The kernels that run on this device's memory.</summary>
    public IKernelBackend Kernels => Runtime?.Kernels ?? Backend.Current;

    private Device(string name, IDeviceRuntime? runtime)
    {
        Name = name;
        Runtime = runtime;
    }

    /// <summary>Makes a device kind available to <see cref="Get"/>. The factory returns null when the hardware or
    /// driver is absent (then <see cref="Get"/> says so, naming the kind).</summary>
    public static void Register(string kind, Func<IDeviceRuntime?> factory)
    {
        lock (Gate) Providers[kind] = factory;
    }

    /// <summary>The device of a kind ("cpu", or a registered kind such as "cuda"), opened once and shared.</summary>
    public static Device Get(string kind)
    {
        if (string.Equals(kind, "cpu", StringComparison.OrdinalIgnoreCase)) return Cpu;
        lock (Gate)
        {
            if (Opened.TryGetValue(kind, out var open)) return open;
            if (!Providers.TryGetValue(kind, out var factory))
                throw new ArgumentException($"Unknown device '{kind}'. Known: cpu{string.Concat(Providers.Keys.Select(k => ", " + k))}.");
            var runtime = factory() ?? throw new InvalidOperationException($"Device '{kind}' is not available on this machine.");
            var device = new Device(runtime.Name, runtime);
            Opened[kind] = device;
            return device;
        }
    }

    /// <summary>Waits until every kernel and copy issued to this device so far has finished, after freeing the device
    /// memory of storages the garbage collector finalized (which the finalizer thread only queues).</summary>
    public void Synchronize()
    {
        Storage.FreeDeferred();
        Runtime?.Synchronize();
    }

    public bool Equals(Device? other) => ReferenceEquals(this, other);
    public override bool Equals(object? obj) => ReferenceEquals(this, obj);
    public override int GetHashCode() => Name.GetHashCode(StringComparison.Ordinal);
    public override string ToString() => Name;
}

/// <summary>
/// What a non-CPU device provides: memory addressed by opaque device addresses (never dereferenced by host code),
/// copies between host and device, and an <see cref="IKernelBackend"/> whose pointer arguments are such device
/// addresses (the backend maps an address back to its buffer). Allocation may pool; <see cref="Free"/> gets the
/// capacity <see cref="Allocate"/> reported.
/// </summary>
public unsafe interface IDeviceRuntime
{
    string Name { get; }
    IKernelBackend Kernels { get; }
    nint Allocate(long bytes, out long capacity);
    void Free(nint address, long capacity);
    void CopyFromHost(void* source, nint destination, long bytes);
    void CopyToHost(nint source, void* destination, long bytes);
    void CopyWithin(nint source, nint destination, long bytes);
    /// <summary>Waits until every kernel and copy issued so far has finished.</summary>
    void Synchronize();
    /// <summary>Bytes currently allocated to live storages (for tests and memory reports).</summary>
    long LiveBytes { get; }
}
