namespace Nabla.Data;

/// <summary>The batches of another source, moved to a device: what a model living there trains and evaluates on.</summary>
public sealed class DeviceBatchSource : IBatchSource
{
    private readonly IBatchSource _source;
    private readonly Device _device;

    private DeviceBatchSource(IBatchSource source, Device device) => (_source, _device) = (source, device);

    /// <summary><paramref name="source"/> itself for the CPU, otherwise a source whose batches are copied to <paramref name="device"/>.</summary>
    public static IBatchSource On(IBatchSource source, Device device) => device.IsCpu ? source : new DeviceBatchSource(source, device);

    public (Tensor Inputs, Tensor Targets) Batch(long index)
    {
        var (inputs, targets) = _source.Batch(index);
        return (inputs.To(_device), targets.To(_device));
    }
}
