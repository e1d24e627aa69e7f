using Nabla.Gpu;

namespace Nabla.GpuBench;

/// <summary>A float buffer on the device, filled with N(0, scale²) values; freed on dispose.</summary>
public sealed unsafe class DeviceBuffer : IDisposable
{
    private readonly GpuRuntime _runtime;
    private readonly long _capacity;
    public float* Pointer { get; }
    public long Length { get; }

    public DeviceBuffer(GpuRuntime runtime, long length, Generator? random = null, float scale = 1f)
    {
        _runtime = runtime;
        Length = length;
        Pointer = (float*)runtime.Allocate(Math.Max(length, 1) * sizeof(float), out _capacity);
        var host = new float[length];
        if (random is not null)
            for (long i = 0; i < length; i++) host[i] = (float)random.NextNormal() * scale;
        fixed (float* p = host) runtime.CopyFromHost(p, (nint)Pointer, length * sizeof(float));
    }

    public float[] Read()
    {
        var host = new float[Length];
        fixed (float* p = host) _runtime.CopyToHost((nint)Pointer, p, Length * sizeof(float));
        return host;
    }

    public void Dispose() => _runtime.Free((nint)Pointer, _capacity);
}

public static class Timing
{
    /// <summary>Median milliseconds of <paramref name="run"/> (synchronised with the device) after one warm-up call,
    /// repeated for about <paramref name="seconds"/> (at least <paramref name="minRuns"/> times, at most 50).</summary>
    public static double MedianMs(GpuRuntime runtime, Action run, double seconds, int minRuns = 3, bool warmUp = true) =>
        Median(Measure(runtime.Synchronize, run, seconds, minRuns, maxRuns: 50, warmUps: warmUp ? 1 : 0));

    /// <summary>Milliseconds of each timed call of <paramref name="run"/>, the clock read after <paramref name="synchronize"/>
    /// (kernels are launched asynchronously), following <paramref name="warmUps"/> untimed calls (kernel compilation,
    /// pools, optimizer state); repeated for about <paramref name="seconds"/>, at least <paramref name="minRuns"/> and at
    /// most <paramref name="maxRuns"/> times.</summary>
    public static List<double> Measure(Action synchronize, Action run, double seconds, int minRuns, int maxRuns, int warmUps)
    {
        for (int i = 0; i < warmUps; i++)
        {
            run();
            synchronize();
        }
        var times = new List<double>();
        var total = System.Diagnostics.Stopwatch.StartNew();
        while (times.Count < minRuns || (total.Elapsed.TotalSeconds < seconds && times.Count < maxRuns))
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            run();
            synchronize();
            times.Add(watch.Elapsed.TotalMilliseconds);
        }
        return times;
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>Largest |a - b| relative to the largest |b|: a version's output against v1's (a miscompiled kernel shows).</summary>
    public static double RelativeDifference(float[] a, float[] b)
    {
        double diff = 0, scale = 1e-30;
        for (int i = 0; i < a.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(a[i] - b[i]));
            scale = Math.Max(scale, Math.Abs(b[i]));
        }
        return diff / scale;
    }
}
