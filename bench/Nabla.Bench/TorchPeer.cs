using System.Diagnostics;
using System.Globalization;

namespace Nabla.Bench;

/// <summary>
/// The PyTorch side of the comparison: bench/torch_peer.py run by Debian's /usr/bin/python3 as a child process,
/// driven one request per line so the harness can interleave it with its own runs.
/// </summary>
internal sealed class TorchPeer : IDisposable
{
    private readonly Process _process;

    public string Description { get; private set; } = "";

    private TorchPeer(Process process) => _process = process;

    /// <summary>", OPENBLAS_CORETYPE=X" when that variable picks OpenBLAS's kernels (e.g. Haswell: its AVX2 ones on an
    /// AVX-512 machine, the honest peer for Nabla's AVX2 path), else empty.</summary>
    public static string CoreType =>
        Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE") is { Length: > 0 } core ? $" (OPENBLAS_CORETYPE={core})" : "";

    public TimeSpan ProcessorTime => _process.HasExited ? TimeSpan.Zero : _process.TotalProcessorTime;

    /// <summary>Starts the peer, or returns null (with the reason on stderr) when Python or torch is missing.</summary>
    public static TorchPeer? TryStart()
    {
        var script = Path.Combine(AppContext.BaseDirectory, "torch_peer.py");
        const string python = "/usr/bin/python3";
        if (!File.Exists(python) || !File.Exists(script))
        {
            Console.Error.WriteLine($"PyTorch peer unavailable: needs {python} and {script}.");
            return null;
        }
        var info = new ProcessStartInfo(python, [script])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        var peer = new TorchPeer(Process.Start(info)!);
        try
        {
            peer.SetThreads(1);
            return peer;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            Console.Error.WriteLine($"PyTorch peer unavailable: {e.Message}");
            peer.Dispose();
            return null;
        }
    }

    /// <summary>Sets torch's and OpenBLAS's thread counts; the answer names the BLAS library in use.</summary>
    public void SetThreads(int threads)
    {
        var answer = Ask($"threads {threads}").Split(' ');
        if (answer[0] != "ok") throw new InvalidOperationException($"torch_peer.py: {string.Join(' ', answer)}");
        Description = $"torch {answer[3]}, {Path.GetFileName(answer[4])}{CoreType} ({answer[1]} torch / {answer[2]} BLAS threads)";
    }

    /// <summary>Wall times in milliseconds of <paramref name="reps"/> calls of torch.mm (torch.bmm for a batch), or the
    /// calling thread's CPU time with <paramref name="cpuTime"/>.</summary>
    public double[] Gemm(bool transA, bool transB, int m, int n, int k, int batch, int reps, bool cpuTime = false) =>
        Ask($"{(cpuTime ? "gemmcpu" : "gemm")} {(transA ? 1 : 0)} {(transB ? 1 : 0)} {m} {n} {k} {reps} {batch}")
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(t => double.Parse(t, CultureInfo.InvariantCulture)).ToArray();

    private string Ask(string request)
    {
        _process.StandardInput.WriteLine(request);
        _process.StandardInput.Flush();
        return _process.StandardOutput.ReadLine() ?? throw new IOException($"torch_peer.py exited (request '{request}').");
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.StandardInput.WriteLine("quit");
                if (!_process.WaitForExit(5000)) _process.Kill();
            }
        }
        catch (IOException) { }
        _process.Dispose();
    }
}
