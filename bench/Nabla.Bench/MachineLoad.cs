using System.Diagnostics;

namespace Nabla.Bench;

/// <summary>
/// How much of the machine other processes used while a measurement ran: all CPU time the kernel reports busy
/// (/proc/stat) minus this process's and the PyTorch peer's own, as a share of all cores. The machine is shared, so
/// every result is printed with it.
/// </summary>
internal sealed class MachineLoad
{
    private readonly Func<TimeSpan> _peerTime;
    private long _busy, _total;
    private TimeSpan _ours, _peer;

    public MachineLoad(Func<TimeSpan> peerTime) => _peerTime = peerTime;

    public static string LoadAverage => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    public void Start()
    {
        (_busy, _total) = ReadJiffies();
        _ours = Process.GetCurrentProcess().TotalProcessorTime;
        _peer = _peerTime();
    }

    /// <summary>Percent of all cores used by other processes since <see cref="Start"/>.</summary>
    public double OthersPercent()
    {
        var (busy, total) = ReadJiffies();
        if (total <= _total) return 0;
        double seconds = (total - _total) / (double)Environment.ProcessorCount / JiffiesPerSecond;
        double busyShare = (busy - _busy) / (double)(total - _total);
        double ownShare = ((Process.GetCurrentProcess().TotalProcessorTime - _ours) + (_peerTime() - _peer)).TotalSeconds
            / (seconds * Environment.ProcessorCount);
        return Math.Max(0, (busyShare - ownShare) * 100);
    }

    private const double JiffiesPerSecond = 100;  // USER_HZ on Linux

    private static (long Busy, long Total) ReadJiffies()
    {
        if (!File.Exists("/proc/stat")) return (0, 0);
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(long.Parse).ToArray();
        long idle = fields[3] + fields[4];  // idle + iowait
        long total = fields.Take(8).Sum();  // user nice system idle iowait irq softirq steal
        return (total - idle, total);
    }
}
