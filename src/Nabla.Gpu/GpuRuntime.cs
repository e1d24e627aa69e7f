using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Nabla.Gpu;

/// <summary>
/// One ILGPU accelerator as a Nabla device: a CUDA GPU ("cuda") or ILGPU's CPU accelerator ("ilgpu-cpu"), which
/// runs the very same kernels on host threads so CI tests them without a GPU.
/// <para>Memory: every allocation is an ILGPU buffer whose <c>NativePtr</c> is the device address handed out (a device
/// pointer on CUDA, a host pointer on the CPU accelerator; either way host code never dereferences it). Freed
/// buffers go back to a pool keyed by size class, so a training step that allocates the same shapes every
/// iteration stops calling the driver after the first. A registry of every buffer (live or pooled), ordered by
/// address, maps any address inside a buffer back to (buffer, byte offset): that is how <see cref="GpuBackend"/>
/// turns the <c>float*</c> arguments of <see cref="Kernels.IKernelBackend"/> into ILGPU views.</para>
/// </summary>
public sealed unsafe class GpuRuntime : IDeviceRuntime, IDisposable
{
    /// <summary>Allocations are rounded up to 16 bytes at least, so a float view of any buffer is aligned for
    /// vector loads.</summary>
    private const long MinimumCapacity = 256;

    private readonly Context _context;
    private readonly object _gate = new();
    private readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> _pool = [];
    // Every buffer the runtime owns (live or pooled), by base address, for address → buffer lookups.
    private readonly SortedList<long, MemoryBuffer1D<byte, Stride1D.Dense>> _buffers = [];
    private long _liveBytes, _pooledBytes;
    private readonly GpuBackend _kernels;

    public Accelerator Accelerator { get; }
    public string Name { get; }
    public bool IsCuda => Accelerator.AcceleratorType == AcceleratorType.Cuda;
    public GpuBackend Kernels => _kernels;
    Nabla.Kernels.IKernelBackend IDeviceRuntime.Kernels => _kernels;
    public long LiveBytes { get { lock (_gate) return _liveBytes; } }
    /// <summary>Bytes held in the pool (freed by storages, kept for reuse); <see cref="TrimPool"/> returns them to the driver.</summary>
    public long PooledBytes { get { lock (_gate) return _pooledBytes; } }

    private GpuRuntime(Context context, Accelerator accelerator, string name)
    {
        _context = context;
        Accelerator = accelerator;
        Name = name;
        _kernels = new GpuBackend(this);
    }

    /// <summary>The first CUDA GPU, or null when there is none (no NVIDIA driver or no device).</summary>
    public static GpuRuntime? CreateCuda()
    {
        Context context;
        try { context = Context.Create(b => b.Cuda().EnableAlgorithms()); }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or CudaException or NotSupportedException)
        {
            return null;
        }
        var devices = context.GetCudaDevices();
        if (devices.Count == 0)
        {
            context.Dispose();
            return null;
        }
        return new GpuRuntime(context, devices[0].CreateAccelerator(context), "cuda:0");
    }

    /// <summary>ILGPU's CPU accelerator with warps of 32 and groups of up to 256 threads (the largest the kernels
    /// launch): each simulated thread is an OS thread that every group barrier synchronises, so no more of them
    /// than needed.</summary>
    public static GpuRuntime CreateCpu()
    {
        var context = Context.Create(b => b.CPU(new CPUDevice(numThreadsPerWarp: 32, numWarpsPerMultiprocessor: 8, numMultiprocessors: 1)).EnableAlgorithms());
        return new GpuRuntime(context, context.GetCPUDevice(0).CreateAccelerator(context), "ilgpu-cpu");
    }

    public nint Allocate(long bytes, out long capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        capacity = SizeClass(bytes);
        lock (_gate)
        {
            _liveBytes += capacity;
            if (_pool.TryGetValue(capacity, out var free) && free.Count > 0)
            {
                _pooledBytes -= capacity;
                return (nint)free.Pop().NativePtr;
            }
        }
        MemoryBuffer1D<byte, Stride1D.Dense> buffer;
        try { buffer = Accelerator.Allocate1D<byte>(capacity); }
        catch (Exception e) when (e is OutOfMemoryException or AcceleratorException)
        {
            // The pool may hold enough memory: give it back to the driver and try once more.
            TrimPool();
            try { buffer = Accelerator.Allocate1D<byte>(capacity); }
            catch (Exception again) when (again is OutOfMemoryException or AcceleratorException)
            {
                lock (_gate) _liveBytes -= capacity;
                throw new OutOfMemoryException($"Device {Name}: cannot allocate {capacity} bytes ({LiveBytes} bytes live).", again);
            }
        }
        lock (_gate) _buffers.Add(buffer.NativePtr.ToInt64(), buffer);
        return buffer.NativePtr;
    }

    public void Free(nint address, long capacity)
    {
        lock (_gate)
        {
            if (!_buffers.TryGetValue(address, out var buffer) || buffer.LengthInBytes != capacity)
                throw new ArgumentException($"Device {Name}: address 0x{address:x} with capacity {capacity} was not allocated here.");
            _liveBytes -= capacity;
            _pooledBytes += capacity;
            if (!_pool.TryGetValue(capacity, out var free)) _pool[capacity] = free = new();
            free.Push(buffer);
        }
    }

    /// <summary>Returns every pooled buffer to the driver.</summary>
    public void TrimPool()
    {
        lock (_gate)
        {
            foreach (var free in _pool.Values)
                while (free.TryPop(out var buffer))
                {
                    _buffers.Remove(buffer.NativePtr.ToInt64());
                    buffer.Dispose();
                }
            _pooledBytes = 0;
        }
    }

    // Copies use the default stream and wait for it: the host memory may be reused as soon as they return.
    public void CopyFromHost(void* source, nint destination, long bytes)
    {
        if (bytes == 0) return;
        Bytes(destination, bytes).CopyFromCPU(ref *(byte*)source, bytes);
        Accelerator.DefaultStream.Synchronize();
    }

    public void CopyToHost(nint source, void* destination, long bytes)
    {
        if (bytes == 0) return;
        Bytes(source, bytes).CopyToCPU(ref *(byte*)destination, bytes);
        Accelerator.DefaultStream.Synchronize();
    }

    public void CopyWithin(nint source, nint destination, long bytes)
    {
        if (bytes == 0) return;
        Bytes(source, bytes).CopyTo(Bytes(destination, bytes));
    }

    public void Synchronize() => Accelerator.Synchronize();

    /// <summary>The bytes [address, address + bytes) as a view of the buffer that holds them.</summary>
    internal ArrayView<byte> Bytes(nint address, long bytes)
    {
        var (buffer, offset) = Resolve(address);
        if (offset + bytes > buffer.LengthInBytes)
            throw new ArgumentOutOfRangeException(nameof(bytes),
                $"Device {Name}: {bytes} bytes at 0x{address:x} run past the end of its {buffer.LengthInBytes}-byte buffer.");
        return buffer.View.AsContiguous().SubView(offset, bytes);
    }

    /// <summary>The elements of type T from <paramref name="address"/> to the end of its buffer.</summary>
    internal ArrayView<T> View<T>(nint address) where T : unmanaged
    {
        var (buffer, offset) = Resolve(address);
        if (offset % sizeof(T) != 0)
            throw new ArgumentException($"Device {Name}: address 0x{address:x} is not aligned to {sizeof(T)} bytes.");
        var rest = buffer.LengthInBytes - offset;
        return buffer.View.AsContiguous().SubView(offset, rest - rest % sizeof(T)).Cast<T>();
    }

    private (MemoryBuffer1D<byte, Stride1D.Dense> Buffer, long Offset) Resolve(nint address)
    {
        long target = address;
        lock (_gate)
        {
            var keys = _buffers.Keys;
            int lo = 0, hi = keys.Count - 1, found = -1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                if (keys[mid] <= target) { found = mid; lo = mid + 1; }
                else hi = mid - 1;
            }
            if (found >= 0)
            {
                var buffer = _buffers.Values[found];
                long offset = target - keys[found];
                if (offset < buffer.LengthInBytes) return (buffer, offset);
            }
        }
        throw new ArgumentException($"Device {Name}: address 0x{address:x} is not inside any buffer of this device " +
            "(a host pointer passed to a device kernel, or a freed storage).");
    }

    /// <summary>Rounds a request up to one of four classes per power of two (2ᵏ, 1.25·2ᵏ, 1.5·2ᵏ, 1.75·2ᵏ): at most
    /// 25 % waste, and few enough classes that freed buffers are found again.</summary>
    internal static long SizeClass(long bytes)
    {
        if (bytes <= MinimumCapacity) return MinimumCapacity;
        long power = 1L << (int)(63 - long.LeadingZeroCount(bytes));
        if (power == bytes) return bytes;
        long quarter = power / 4;
        return power + (bytes - power + quarter - 1) / quarter * quarter;
    }

    public void Dispose()
    {
        Accelerator.Synchronize();
        _kernels.Dispose();
        lock (_gate)
        {
            foreach (var buffer in _buffers.Values) buffer.Dispose();
            _buffers.Clear();
            _pool.Clear();
            _liveBytes = _pooledBytes = 0;
        }
        Accelerator.Dispose();
        _context.Dispose();
    }
}
