using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Nabla.Bench;

/// <summary>
/// The machine's measured single-precision FMA peak: each thread runs 12 independent chains of Vector512 FMAs
/// (enough to cover FMA latency × throughput on any current x86 core) over register-resident data, so nothing but
/// the FMA units limits it. Threads run on dedicated OS threads, started together.
/// A short run is also a probe of how much of the machine is available right now: on this virtual machine the second
/// core sometimes delivers far less than the first while nothing shows in the guest's CPU accounting (another
/// tenant on the host), so the benchmark probes before and after every measurement.
/// </summary>
internal static class FmaPeak
{
    private const int Chains = 12;
    private const long FlopsPerIteration = Chains * 16 * 2;

    /// <summary>GFLOP/s of <paramref name="threads"/> threads together: the best of <paramref name="runs"/> runs of
    /// <paramref name="iterations"/> iterations (20M take ~70 ms).</summary>
    public static double Measure(int threads, long iterations = 20_000_000, int runs = 5)
    {
        double best = 0;
        for (int run = 0; run < runs; run++)
        {
            // Each thread stamps its own start and end: the main thread may not even be scheduled while they run.
            var starts = new long[threads];
            var ends = new long[threads];
            using var start = new Barrier(threads);
            var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
            {
                start.SignalAndWait();
                starts[t] = Stopwatch.GetTimestamp();
                Chain(iterations);
                ends[t] = Stopwatch.GetTimestamp();
            })).ToArray();
            foreach (var w in workers) w.Start();
            foreach (var w in workers) w.Join();
            double seconds = (ends.Max() - starts.Min()) / (double)Stopwatch.Frequency;
            best = Math.Max(best, threads * iterations * FlopsPerIteration / seconds / 1e9);
        }
        return best;
    }

    private static readonly Dictionary<int, double> BestSeen = [];

    /// <summary>
    /// Waits (up to <paramref name="timeout"/>) until a short probe of <paramref name="threads"/> threads reaches 90% of
    /// the best rate seen so far, so a measurement does not start while the host has taken a core away. Returns the
    /// best rate seen, the peak that results are compared with.
    /// </summary>
    public static double WaitForCapacity(int threads, TimeSpan timeout)
    {
        if (!BestSeen.ContainsKey(threads)) BestSeen[threads] = Measure(threads);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            double probe = Measure(threads, 2_000_000, 3);
            BestSeen[threads] = Math.Max(BestSeen[threads], probe);
            if (probe >= 0.9 * BestSeen[threads] || clock.Elapsed > timeout) return BestSeen[threads];
            Thread.Sleep(2000);
        }
    }

    public static void Report(int[] threadCounts)
    {
        Console.WriteLine("| threads | FMA peak GFLOP/s |");
        Console.WriteLine("|---:|---:|");
        foreach (int t in threadCounts) Console.WriteLine($"| {t} | {Measure(t):F1} |");
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chain(long iterations)
    {
        var x = Vector512.Create(0.999999f);
        var y = Vector512.Create(1e-7f);
        Vector512<float> c0 = Vector512.Create(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0,
            c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, x, y); c1 = Vector512.FusedMultiplyAdd(c1, x, y);
            c2 = Vector512.FusedMultiplyAdd(c2, x, y); c3 = Vector512.FusedMultiplyAdd(c3, x, y);
            c4 = Vector512.FusedMultiplyAdd(c4, x, y); c5 = Vector512.FusedMultiplyAdd(c5, x, y);
            c6 = Vector512.FusedMultiplyAdd(c6, x, y); c7 = Vector512.FusedMultiplyAdd(c7, x, y);
            c8 = Vector512.FusedMultiplyAdd(c8, x, y); c9 = Vector512.FusedMultiplyAdd(c9, x, y);
            c10 = Vector512.FusedMultiplyAdd(c10, x, y); c11 = Vector512.FusedMultiplyAdd(c11, x, y);
        }
        return Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }
}
