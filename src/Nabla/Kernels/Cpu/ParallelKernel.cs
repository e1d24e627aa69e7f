namespace Nabla.Kernels.Cpu;

/// <summary>A kernel call's work as numbered items (planes, channels, heads): its arguments are the struct's fields.</summary>
internal interface IKernelItems
{
    void Execute<V>(int item) where V : struct, IVec<V>;
}

/// <summary>A kernel call's work as a range of rows or elements, split into contiguous chunks.</summary>
internal interface IKernelRange
{
    /// <summary>Does [start, end).</summary>
    void Execute<V>(long start, long end) where V : struct, IVec<V>;
}

/// <summary>
/// Runs a kernel's work, written once generic over the vector width, on <see cref="WorkerPool"/> with the width the
/// instruction set in effect at the call allows — without allocating. The work is a struct (the kernel's arguments
/// as fields, no closure), copied into a task object of its own type that each calling thread keeps and reuses; so
/// after the first call of a kernel from a thread, calls allocate nothing, and each kernel's struct names its own
/// arguments.
/// </summary>
internal static class ParallelKernel
{
    /// <summary>Claims per thread when a call has many more items than threads (see <see cref="Items{T}"/>).</summary>
    private const int ClaimsPerThread = 8;

    /// <summary>Runs <c>items.Execute&lt;V&gt;(i)</c> for every i in [0, count). Many small items (the 4,096 7×7
    /// planes of a batch norm or a pooling) are claimed in <see cref="ClaimsPerThread"/> runs of consecutive items per
    /// thread: each claim is an atomic on a cache line the threads pass back and forth, which cost more than a small
    /// plane's work and made such kernels slower on two threads than on one.</summary>
    public static void Items<T>(int count, in T items) where T : struct, IKernelItems
    {
        if (count <= 0) return;
        int claims = WorkerPool.ConcurrentThreads * ClaimsPerThread;
        if (WorkerPool.ConcurrentThreads > 1 && count > claims)
        {
            Items(claims, new ItemRuns<T>(items, count, claims));
            return;
        }
        var job = Job<T>.Take();
        job.Work = items;
        job.Capture();
        try { WorkerPool.Run(count, job); }
        finally
        {
            job.Work = default;
            Job<T>.Give(job);
        }
    }

    /// <summary>Splits [0, n) into at most <paramref name="chunksPerThread"/> chunks per thread, each of at least
    /// <paramref name="grain"/> (so small calls stay on the calling thread).</summary>
    public static void Range<T>(long n, long grain, int chunksPerThread, in T range) where T : struct, IKernelRange
    {
        if (n <= 0) return;
        int chunks = (int)Math.Clamp(n / Math.Max(1, grain), 1, (long)WorkerPool.Threads * chunksPerThread);
        if (chunks == 1)
        {
            switch (CpuFeatures.Effective)
            {
                case Isa.Avx512: range.Execute<V512>(0, n); break;
                case Isa.Avx2: range.Execute<V256>(0, n); break;
                default: range.Execute<V1>(0, n); break;
            }
            return;
        }
        Items(chunks, new Chunks<T>(range, n, chunks));
    }

    private readonly struct ItemRuns<T>(T items, int count, int runs) : IKernelItems where T : struct, IKernelItems
    {
        public void Execute<V>(int run) where V : struct, IVec<V>
        {
            int end = (int)((long)count * (run + 1) / runs);
            for (int i = (int)((long)count * run / runs); i < end; i++) items.Execute<V>(i);
        }
    }

    private readonly struct Chunks<T>(T range, long n, int chunks) : IKernelItems where T : struct, IKernelRange
    {
        public void Execute<V>(int chunk) where V : struct, IVec<V> => range.Execute<V>(n * chunk / chunks, n * (chunk + 1) / chunks);
    }

    /// <summary>The pool's task for work of type T. A thread's idle instance is taken while a call runs, so a nested
    /// call of the same kernel (which runs inline) gets a fresh one rather than overwriting the running one.</summary>
    private sealed class Job<T> : VectorTask where T : struct, IKernelItems
    {
        [ThreadStatic] private static Job<T>? _idle;

        public T Work;

        public static Job<T> Take()
        {
            var job = _idle ?? new Job<T>();
            _idle = null;
            return job;
        }

        public static void Give(Job<T> job) => _idle = job;

        protected override void Execute<V>(int item) => Work.Execute<V>(item);
    }
}
