namespace Nabla.Bench;

/// <summary>The PyTorch side of the GEMM comparison: bench/torch_peer.py (<see cref="PythonPeer"/>).</summary>
internal sealed class TorchPeer : IDisposable
{
    private readonly PythonPeer _peer;

    private TorchPeer(PythonPeer peer)
    {
        _peer = peer;
        Describe();
    }

    public string Description { get; private set; } = "";

    /// <summary>", OPENBLAS_CORETYPE=X" when that variable picks OpenBLAS's kernels (e.g. Haswell: its AVX2 ones on an
    /// AVX-512 machine, the honest peer for Nabla's AVX2 path), else empty.</summary>
    public static string CoreType =>
        Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE") is { Length: > 0 } core ? $" (OPENBLAS_CORETYPE={core})" : "";

    public TimeSpan ProcessorTime => _peer.ProcessorTime;

    /// <summary>Starts the peer on one thread, or returns null (with the reason on stderr) when Python or torch is missing.</summary>
    public static TorchPeer? TryStart() => PythonPeer.TryStart("torch_peer.py", 1) is { } peer ? new TorchPeer(peer) : null;

    /// <summary>Sets torch's and OpenBLAS's thread counts; the answer names the BLAS library in use.</summary>
    public void SetThreads(int threads)
    {
        _peer.SetThreads(threads);
        Describe();
    }

    private void Describe() => Description = _peer.Started is [var torchThreads, var blasThreads, var version, var blas, ..]
        ? $"torch {version}, {Path.GetFileName(blas)}{CoreType} ({torchThreads} torch / {blasThreads} BLAS threads)" : "torch";

    /// <summary>Wall times in milliseconds of <paramref name="reps"/> calls of torch.mm (torch.bmm for a batch), or the
    /// calling thread's CPU time with <paramref name="cpuTime"/>.</summary>
    public double[] Gemm(bool transA, bool transB, int m, int n, int k, int batch, int reps, bool cpuTime = false) =>
        _peer.AskNumbers($"{(cpuTime ? "gemmcpu" : "gemm")} {(transA ? 1 : 0)} {(transB ? 1 : 0)} {m} {n} {k} {reps} {batch}");

    public void Dispose() => _peer.Dispose();
}
