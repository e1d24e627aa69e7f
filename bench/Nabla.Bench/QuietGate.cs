using System.Diagnostics;

namespace Nabla.Bench;

/// <summary>
/// Waits for a quiet machine before a measurement, within one bounded budget for the whole command, and says
/// what it is doing. Quiet means other processes use at most <c>maxOthersPercent</c> of all cores and a short FMA
/// probe reaches 90% of the best rate seen (on a shared virtual machine the host can take a core away without the
/// guest seeing it). Once the budget is spent, measurements go ahead at once and the caller flags them as noisy: a
/// busy machine costs accuracy, never an unbounded wait.
/// </summary>
internal sealed class QuietGate(MachineLoad load, double maxOthersPercent, TimeSpan budget)
{
    public const double ProbeThreshold = 0.9;

    private TimeSpan _waited;
    private bool _announcedSpent;

    public double MaxOthersPercent => maxOthersPercent;
    public TimeSpan Waited => _waited;

    /// <summary>Returns true once the machine is quiet, false when the wait budget ran out first (measure anyway,
    /// flagged noisy). Progress goes to stderr, at most one line a second.</summary>
    public bool Wait(int threads, string what)
    {
        while (true)
        {
            load.Start();
            double probe = FmaPeak.Probe(threads) / FmaPeak.Peak(threads);
            Thread.Sleep(250);
            double others = load.OthersPercent();
            if (others <= maxOthersPercent && probe >= ProbeThreshold) return true;
            if (_waited >= budget)
            {
                if (!_announcedSpent)
                    Console.Error.WriteLine($"  quiet-wait budget ({budget.TotalSeconds:F0} s) spent: measuring the rest without waiting; rows on a busy machine are marked noisy");
                _announcedSpent = true;
                return false;
            }
            Console.Error.WriteLine($"  waiting for a quiet machine before {what}: other processes use {others:F0}% (limit {maxOthersPercent:F0}%), " +
                $"FMA probe at {100 * probe:F0}% of peak (needs {100 * ProbeThreshold:F0}%); {(budget - _waited).TotalSeconds:F0} s of the wait budget left");
            var pause = Stopwatch.StartNew();
            Thread.Sleep(1000);
            _waited += pause.Elapsed + TimeSpan.FromMilliseconds(250);
        }
    }
}
