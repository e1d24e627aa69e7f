using System.Runtime.InteropServices;

namespace Nabla.Bench;

/// <summary>The calling thread's CPU time (Linux CLOCK_THREAD_CPUTIME_ID, as Python's time.thread_time): on one thread
/// the cost of the work itself, whatever share of a core a busy machine leaves it. (Also the tests' measure of "at
/// once": a wall-clock bound fails when other processes load the machine.)</summary>
internal static partial class CpuClock
{
    /// <summary>Seconds of CPU time the calling thread spent in <paramref name="action"/>.</summary>
    public static double ThreadSeconds(Action action)
    {
        double start = Now();
        action();
        return Now() - start;
    }

    /// <summary>The calling thread's CPU time in <see cref="System.Diagnostics.Stopwatch.Frequency"/> ticks per second.</summary>
    public static long ThreadTicks() => (long)(Now() * System.Diagnostics.Stopwatch.Frequency);

    private static double Now()
    {
        const int ClockThreadCpuTimeId = 3;
        return clock_gettime(ClockThreadCpuTimeId, out var t) == 0 ? t.Seconds + t.Nanoseconds * 1e-9
            : throw new IOException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed; CPU-time measurements need Linux.");
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds, Nanoseconds;
    }

    [LibraryImport("libc")]
    private static partial int clock_gettime(int clock, out TimeSpec time);
}
