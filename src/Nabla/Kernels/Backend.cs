using Nabla.Kernels.Cpu;
using Nabla.Kernels.Reference;

namespace Nabla.Kernels;

/// <summary>Selects the kernel backend every op calls. Default: the optimised CPU kernels (NABLA_BACKEND=reference
/// picks the naive ones). Tests switch with <c>using (Backend.Use(ReferenceBackend.Instance)) { ... }</c>.</summary>
public static class Backend
{
    private static IKernelBackend _current =
        Environment.GetEnvironmentVariable("NABLA_BACKEND")?.ToLowerInvariant() == "reference" ? ReferenceBackend.Instance : CpuBackend.Instance;

    public static IKernelBackend Current
    {
        get => _current;
        set => _current = value ?? throw new ArgumentNullException(nameof(value));
    }

    public static IDisposable Use(IKernelBackend backend)
    {
        var previous = _current;
        _current = backend;
        return new Scope(() => _current = previous);
    }

    private sealed class Scope(Action undo) : IDisposable
    {
        private Action? _undo = undo;
        public void Dispose() { _undo?.Invoke(); _undo = null; }
    }
}
