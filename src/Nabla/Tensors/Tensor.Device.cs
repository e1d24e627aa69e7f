using Nabla.Kernels;

namespace Nabla;

/// <summary>Devices: moving a tensor between them, and the one check every op makes before it runs kernels.</summary>
public sealed unsafe partial class Tensor
{
    /// <summary>
    /// This tensor on <paramref name="device"/>: itself when it is already there, otherwise a contiguous copy (as in
    /// PyTorch, the copy records itself for autograd, so gradients flow back to the original device).
    /// </summary>
    public Tensor To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (ReferenceEquals(device, Device)) return this;
        var y = Empty(_shape.ToArray(), DType, device);
        CopyAcrossDevices(this, y);
        if (Autograd.GradMode.Needed(this))
        {
            var from = Device;
            Autograd.NodeExtensions.Record(y, "To", [this], g => [g.To(from)]);
        }
        return y;
    }

    /// <summary>
    /// Moves this tensor itself to <paramref name="device"/>, keeping its identity (what <c>module.To(device)</c> does
    /// to parameters and buffers, so that optimizers and other holders of the tensor see the move). Tensors that shared
    /// a storage go on sharing one: <paramref name="moved"/> maps each storage already moved to its copy. Outside
    /// autograd only: the storage changes under any graph recorded on the tensor.
    /// </summary>
    internal void MoveStorageTo(Device device, Dictionary<Storage, Storage> moved)
    {
        if (ReferenceEquals(Storage.Device, device)) return;
        if (!moved.TryGetValue(Storage, out var copy)) moved[Storage] = copy = Storage.CopyTo(device);
        Storage = copy;
    }

    /// <summary>Copies <paramref name="source"/>'s elements into the contiguous <paramref name="target"/> of the same
    /// shape on another device: host↔device directly, device↔device through host memory.</summary>
    private static void CopyAcrossDevices(Tensor source, Tensor target)
    {
        if (source.Count == 0) return;
        long bytes = (long)source.Count * source.DType.SizeInBytes();
        var s = source.Contiguous();
        if (target.Device.Runtime is not { } targetRuntime) s.CopyToHost(target.Data);
        else if (s.Device.Runtime is not { } sourceRuntime) targetRuntime.CopyFromHost(s.Data, (nint)target.Data, bytes);
        else
        {
            var staging = Empty(source._shape.ToArray(), source.DType, Device.Cpu);
            s.CopyToHost(staging.Data);
            targetRuntime.CopyFromHost(staging.Data, (nint)target.Data, bytes);
            GC.KeepAlive(staging);
        }
        GC.KeepAlive(s);
        GC.KeepAlive(target);
    }

    /// <summary>
    /// The kernels an op runs on its tensors: those of the tensors' device (for the CPU, <see cref="Backend.Current"/>).
    /// Every tensor passed must be on the same device, or the op fails naming itself and both devices; pass the op's
    /// inputs (and, in a backward, the incoming gradient). Allocation-free: it runs on every op.
    /// </summary>
    internal static IKernelBackend KernelsFor(string op, Tensor a, Tensor? b = null, Tensor? c = null, Tensor? d = null, Tensor? e = null, Tensor? f = null)
    {
        var device = a.Storage.Device;
        if ((b != null && !ReferenceEquals(b.Storage.Device, device)) || (c != null && !ReferenceEquals(c.Storage.Device, device)) ||
            (d != null && !ReferenceEquals(d.Storage.Device, device)) || (e != null && !ReferenceEquals(e.Storage.Device, device)) ||
            (f != null && !ReferenceEquals(f.Storage.Device, device)))
            throw MixedDevices(op, device, b, c, d, e, f);
        return device.Kernels;
    }

    private static InvalidOperationException MixedDevices(string op, Device first, params Tensor?[] others)
    {
        var other = others.First(t => t != null && !ReferenceEquals(t.Storage.Device, first))!.Device;
        return new InvalidOperationException($"{op}: expected all tensors to be on the same device, but found {first} and {other}; move them with .To(device) first.");
    }

    /// <summary>Throws, naming <paramref name="operation"/> and the device, unless this tensor's memory is host memory:
    /// the guard in front of every piece of host code that reads or writes elements itself.</summary>
    internal void RequireHost(string operation)
    {
        if (!Storage.Device.IsCpu)
            throw new InvalidOperationException($"{operation} reads tensor {Name ?? ShapeString} in host memory, but it is on device {Device}; copy it with .To(Device.Cpu) first (or use an op that runs on the device).");
    }
}
