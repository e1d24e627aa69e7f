using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Nabla.Kernels;

namespace Nabla.Bench;

/// <summary>
/// The machine's measured single-precision FMA peak, with the widest vectors the kernels may really use
/// (<see cref="CpuFeatures.Usable"/>: Vector512 on AVX-512, Vector256 on AVX2, where Vector512 is emulated and runs
/// at a fraction of the rate, scalar otherwise). Each thread runs 12 independent FMA chains (enough to cover FMA
/// latency × throughput on any current x86 core) over register-resident data, so nothing but the FMA units limits
/// it. Threads run on dedicated OS threads, started together.
/// A short run is also a probe of how much of the machine is available right now: on a virtual machine the second
/// core sometimes delivers far less than the first while nothing shows in the guest's CPU accounting (another
/// tenant on the host). The best rate seen in the run is the peak every "% of peak" refers to.
/// </summary>
internal static class FmaPeak
{
    private const int Chains = 12;

    /// <summary>Floats per FMA of the path measured.</summary>
    private static int Lanes => CpuFeatures.Usable switch { Isa.Avx512 => 16, Isa.Avx2 => 8, _ => 1 };

    /// <summary>How the peak is measured, for table headers: e.g. "Vector256 FMAs (AVX2 path)".</summary>
    public static string Method => $"{(Lanes == 1 ? "scalar" : $"Vector{32 * Lanes}")} FMAs, {Chains} chains per thread";

    private static readonly Dictionary<int, double> BestSeen = [];

    /// <summary>GFLOP/s of <paramref name="threads"/> threads together: the best of <paramref name="runs"/> runs of
    /// <paramref name="iterations"/> iterations (20M take ~70 ms with Vector512).</summary>
    public static double Measure(int threads, long iterations = 20_000_000, int runs = 5)
    {
        double best = 0;
        long flopsPerIteration = 2L * Chains * Lanes;
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
                Run(iterations);
                ends[t] = Stopwatch.GetTimestamp();
            })).ToArray();
            foreach (var w in workers) w.Start();
            foreach (var w in workers) w.Join();
            double seconds = (ends.Max() - starts.Min()) / (double)Stopwatch.Frequency;
            best = Math.Max(best, threads * iterations * flopsPerIteration / seconds / 1e9);
        }
        BestSeen[threads] = Math.Max(BestSeen.GetValueOrDefault(threads), best);
        return best;
    }

    /// <summary>GFLOP/s of the calling thread alone, timed by its CPU time (the peak a one-thread CPU-time
    /// measurement compares with, whatever share of a core a busy machine leaves it): the best of 5 runs.</summary>
    public static double MeasureByCpuTime(long iterations = 20_000_000)
    {
        double best = 0;
        for (int run = 0; run < 5; run++)
            best = Math.Max(best, iterations * 2.0 * Chains * Lanes / CpuClock.ThreadSeconds(() => Run(iterations)) / 1e9);
        return best;
    }

    /// <summary>A short measurement (~10 ms): how much of the peak the machine delivers right now.</summary>
    public static double Probe(int threads) => Measure(threads, 2_000_000, 3);

    /// <summary>The best rate seen so far in this run on <paramref name="threads"/> threads (measured now if none yet).</summary>
    public static double Peak(int threads) => BestSeen.TryGetValue(threads, out var best) ? best : Measure(threads);

    /// <summary>`bench peak`: a Markdown table, one row per thread count.</summary>
    public static void Report(int[] threadCounts)
    {
        Console.WriteLine($"FMA peak on {MachineInfo.Line}; {Method}, best of 5 runs");
        Console.WriteLine();
        Console.WriteLine("| CPU | path | threads | FMA peak GFLOP/s | per thread |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        foreach (int t in threadCounts)
        {
            double peak = Measure(t);
            Console.WriteLine($"| {MachineInfo.Cpu} | {MachineInfo.Name(CpuFeatures.Usable)} | {t} | {peak:F1} | {peak / t:F1} |");
        }
    }

    private static void Run(long iterations)
    {
        switch (CpuFeatures.Usable)
        {
            case Isa.Avx512: Chain512(iterations); break;
            case Isa.Avx2: Chain256(iterations); break;
            default: ChainScalar(iterations); break;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chain512(long iterations)
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

    /// <summary>The same with Vector256: 12 accumulators and 2 operands fit AVX2's 16 ymm registers.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chain256(long iterations)
    {
        var x = Vector256.Create(0.999999f);
        var y = Vector256.Create(1e-7f);
        Vector256<float> c0 = Vector256.Create(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0,
            c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector256.FusedMultiplyAdd(c0, x, y); c1 = Vector256.FusedMultiplyAdd(c1, x, y);
            c2 = Vector256.FusedMultiplyAdd(c2, x, y); c3 = Vector256.FusedMultiplyAdd(c3, x, y);
            c4 = Vector256.FusedMultiplyAdd(c4, x, y); c5 = Vector256.FusedMultiplyAdd(c5, x, y);
            c6 = Vector256.FusedMultiplyAdd(c6, x, y); c7 = Vector256.FusedMultiplyAdd(c7, x, y);
            c8 = Vector256.FusedMultiplyAdd(c8, x, y); c9 = Vector256.FusedMultiplyAdd(c9, x, y);
            c10 = Vector256.FusedMultiplyAdd(c10, x, y); c11 = Vector256.FusedMultiplyAdd(c11, x, y);
        }
        return Vector256.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float ChainScalar(long iterations)
    {
        float x = 0.999999f, y = 1e-7f;
        float c0 = 1f, c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < iterations; i++)
        {
            c0 = MathF.FusedMultiplyAdd(c0, x, y); c1 = MathF.FusedMultiplyAdd(c1, x, y);
            c2 = MathF.FusedMultiplyAdd(c2, x, y); c3 = MathF.FusedMultiplyAdd(c3, x, y);
            c4 = MathF.FusedMultiplyAdd(c4, x, y); c5 = MathF.FusedMultiplyAdd(c5, x, y);
            c6 = MathF.FusedMultiplyAdd(c6, x, y); c7 = MathF.FusedMultiplyAdd(c7, x, y);
            c8 = MathF.FusedMultiplyAdd(c8, x, y); c9 = MathF.FusedMultiplyAdd(c9, x, y);
            c10 = MathF.FusedMultiplyAdd(c10, x, y); c11 = MathF.FusedMultiplyAdd(c11, x, y);
        }
        return c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
    }
}
