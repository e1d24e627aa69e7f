using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Nabla.Bench;

/// <summary>
/// A bench/*_peer.py script run by Debian's /usr/bin/python3 as a child process (the bench project copies the scripts
/// next to its binary), driven one request line and one answer line at a time so the harness can interleave it with
/// its own runs. Every peer answers "threads N" with "ok TORCH_THREADS ..." and stops at "quit".
/// </summary>
internal sealed partial class PythonPeer : IDisposable
{
    private const string Python = "/usr/bin/python3";
    private readonly Process _process;
    private readonly string _name;

    private PythonPeer(Process process, string name) => (_process, _name) = (process, name);

    /// <summary>The words of the peer's answer to "threads N" after "ok" (thread counts, versions, libraries).</summary>
    public string[] Started { get; private set; } = [];

    public TimeSpan ProcessorTime => _process.HasExited ? TimeSpan.Zero : _process.TotalProcessorTime;

    /// <summary>Starts <paramref name="script"/> (a path, or the name of a script beside the binary) and sets its thread
    /// count, or returns null with the reason on stderr, so that a benchmark runs on without its peer.</summary>
    public static PythonPeer? TryStart(string script, int threads)
    {
        var path = Path.IsPathRooted(script) || File.Exists(script) ? script : Path.Combine(AppContext.BaseDirectory, script);
        var name = Path.GetFileName(path);
        if (!File.Exists(Python) || !File.Exists(path))
        {
            Console.Error.WriteLine($"PyTorch peer unavailable: needs {Python} and {path}; running without it.");
            return null;
        }
        var peer = new PythonPeer(Process.Start(new ProcessStartInfo(Python, [path])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false,
        })!, name);
        try
        {
            peer.SetThreads(threads);
            return peer;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            Console.Error.WriteLine($"PyTorch peer unavailable: {e.Message}; running without it.");
            peer.Dispose();
            return null;
        }
    }

    /// <summary>Sets torch's and OpenBLAS's thread counts (<see cref="Started"/> holds the answer).</summary>
    public void SetThreads(int threads)
    {
        var answer = Ask($"threads {threads}").Split(' ');
        if (answer[0] != "ok") throw new InvalidOperationException($"{_name}: {string.Join(' ', answer)}");
        Started = answer[1..];
    }

    /// <summary>The answer line to <paramref name="request"/>; an answer starting with "error" is thrown.</summary>
    public string Ask(string request)
    {
        _process.StandardInput.WriteLine(request);
        _process.StandardInput.Flush();
        var line = _process.StandardOutput.ReadLine() ?? throw new IOException($"{_name} exited (request '{request}').");
        return line.StartsWith("error", StringComparison.Ordinal) ? throw new InvalidOperationException($"{_name}: {line}") : line;
    }

    /// <summary>The numbers (times in milliseconds, rates) the peer answers to <paramref name="request"/>.</summary>
    public double[] AskNumbers(string request) =>
        Ask(request).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w => double.Parse(w, CultureInfo.InvariantCulture)).ToArray();

    /// <summary>
    /// Stops the peer process (SIGSTOP) until <see cref="Resume"/>. Between its requests PyTorch's idle OpenMP
    /// threads keep spinning for a while (OMP_WAIT_POLICY's default), and on two cores they halve the speed of
    /// whatever runs next, long after a pause; a stopped process takes no CPU at all. Telling them to sleep instead
    /// (OMP_WAIT_POLICY=PASSIVE) would slow PyTorch itself 1.4–1.7×, so the harness stops the process instead.
    /// </summary>
    public void Pause() => Signal(SigStop);

    /// <summary>Lets a <see cref="Pause"/>d peer run again (SIGCONT); harmless on a running one.</summary>
    public void Resume() => Signal(SigCont);

    private const int SigCont = 18, SigStop = 19;

    private void Signal(int signal)
    {
        if (!_process.HasExited && kill(_process.Id, signal) != 0)
            throw new IOException($"{_name}: kill({_process.Id}, {signal}) failed (errno {Marshal.GetLastPInvokeError()}).");
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                Resume();
                _process.StandardInput.WriteLine("quit");
                if (!_process.WaitForExit(5000)) _process.Kill();
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException) { }
        _process.Dispose();
    }
}
