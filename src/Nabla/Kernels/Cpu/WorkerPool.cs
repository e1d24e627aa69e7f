namespace Nabla.Kernels.Cpu;

/// <summary>A unit of parallel work: <see cref="Execute"/> is called once for each task index in [0, count).</summary>
public interface IParallelTask
{
    void Execute(int taskIndex);
}

/// <summary>
/// A persistent pool of worker threads for the kernels. The calling thread takes part in the work, and idle
/// workers spin briefly before they sleep, so the cost of a parallel call is a few microseconds and even a
/// 64×768×768 matmul gains from a second thread (<c>Parallel.For</c> costs ten times more per call).
/// Calls are not reentrant: a task must not start another parallel call (nested calls run inline).
/// </summary>
public static class WorkerPool
{
    private static readonly object StartGate = new();
    private static Worker[] _workers = [];
    private static int _threads = DefaultThreads();

    // The job being run. One job at a time (StartGate); _cursor packs (generation << 32 | next task index) so a
    // worker that wakes late for an old job can never take an index of the next one.
    private static IParallelTask? _task;
    private static int _taskCount;
    private static long _cursor;
    private static int _pending;
    private static long _generation;
    private static Exception? _error;
    [ThreadStatic] private static bool _insideJob;

    /// <summary>Number of threads kernels use (the caller included). Default: NABLA_THREADS or the core count.</summary>
    public static int Threads
    {
        get => _threads;
        set => _threads = Math.Max(1, value);
    }

    /// <summary>
    /// How many threads a <see cref="Run"/> from the current thread keeps busy at once: <see cref="Threads"/>, or 1
    /// inside a task (nested calls run inline). When a call has at most this many tasks, each task runs on its own
    /// thread at the same time as the others, so its tasks may wait for one another (a barrier between phases).
    /// </summary>
    public static int ConcurrentThreads => _insideJob ? 1 : _threads;

    private static int DefaultThreads() =>
        int.TryParse(Environment.GetEnvironmentVariable("NABLA_THREADS"), out var n) && n > 0 ? n : Environment.ProcessorCount;

    /// <summary>Runs <paramref name="task"/> for every index in [0, count), spread over <see cref="Threads"/> threads.</summary>
    public static void Run(int count, IParallelTask task)
    {
        if (count <= 0) return;
        int threads = Math.Min(_threads, count);
        if (threads == 1 || _insideJob)
        {
            for (int i = 0; i < count; i++) task.Execute(i);
            return;
        }
        lock (StartGate)
        {
            EnsureWorkers(threads - 1);
            long gen = _generation + 1;
            _task = task;
            _taskCount = count;
            _pending = count;
            _error = null;
            Volatile.Write(ref _cursor, gen << 32);
            Volatile.Write(ref _generation, gen);
            for (int w = 0; w < threads - 1; w++) _workers[w].Wake();
            _insideJob = true;
            try { Drain(gen); }
            finally { _insideJob = false; }
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) > 0) spin.SpinOnce(-1);
            _task = null;
            if (_error is { } e) throw new AggregateException("A parallel kernel task failed.", e);
        }
    }

    private static void Drain(long gen)
    {
        while (true)
        {
            long c = Volatile.Read(ref _cursor);
            if (c >> 32 != gen) return;
            int i = (int)(c & 0xffffffff);
            // While an index below the count is unclaimed, _pending > 0 and the job's fields cannot change.
            if (i >= Volatile.Read(ref _taskCount)) return;
            if (Interlocked.CompareExchange(ref _cursor, c + 1, c) != c) continue;
            try { _task!.Execute(i); }
            catch (Exception e) { Interlocked.CompareExchange(ref _error, e, null); }
            finally { Interlocked.Decrement(ref _pending); }
        }
    }

    private static void EnsureWorkers(int n)
    {
        if (_workers.Length >= n) return;
        var grown = new Worker[n];
        Array.Copy(_workers, grown, _workers.Length);
        for (int i = _workers.Length; i < n; i++) grown[i] = new Worker(i);
        _workers = grown;
    }

    private sealed class Worker
    {
        private readonly SemaphoreSlim _wake = new(0);
        private long _seenGeneration;
        private int _sleeping;

        public Worker(int index)
        {
            _seenGeneration = Interlocked.Read(ref _generation);
            var thread = new Thread(Loop) { IsBackground = true, Name = $"nabla-worker-{index}" };
            thread.Start();
        }

        public void Wake()
        {
            if (Interlocked.Exchange(ref _sleeping, 0) == 1) _wake.Release();
        }

        private void Loop()
        {
            _insideJob = true;
            while (true)
            {
                // Spin for a while (a training step issues the next kernel within microseconds), then sleep.
                var spin = new SpinWait();
                long gen;
                int spins = 0;
                while ((gen = Interlocked.Read(ref _generation)) == _seenGeneration)
                {
                    if (++spins < 20000) { spin.SpinOnce(-1); continue; }
                    Volatile.Write(ref _sleeping, 1);
                    if (Interlocked.Read(ref _generation) != _seenGeneration) { Volatile.Write(ref _sleeping, 0); continue; }
                    _wake.Wait();
                    spins = 0;
                }
                _seenGeneration = gen;
                Drain(gen);
            }
        }
    }
}
