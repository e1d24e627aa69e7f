using System.Collections.Concurrent;

namespace Nabla.Data;

/// <summary>
/// Makes batches ahead of time on a background thread, so that preparing batch i + 1 (reading, augmenting,
/// copying) overlaps the model's work on batch i. Batches are a pure function of their index; a bounded queue
/// holds up to <c>depth</c> of the batches that follow the last one taken. Asking for the next index takes it from
/// the queue (waiting only if the producer is behind); asking for any other index restarts the producer there.
/// An exception while making a batch reaches the caller when it asks for that batch.
/// </summary>
internal sealed class BatchPrefetcher<T> : IDisposable
{
    private readonly Func<long, T> _make;
    private readonly int _depth;
    private BlockingCollection<(long Index, T? Item, Exception? Error)>? _queue;
    private CancellationTokenSource? _cancel;
    private Thread? _worker;
    private long _next = -1;

    public BatchPrefetcher(Func<long, T> make, int depth)
    {
        if (depth <= 0) throw new ArgumentOutOfRangeException(nameof(depth), $"The prefetch depth must be positive, got {depth}.");
        _make = make;
        _depth = depth;
    }

    /// <summary>How long <see cref="Get"/> waited for the producer in total: near zero when prefetching keeps up.</summary>
    public TimeSpan Waited { get; private set; }

    public T Get(long index)
    {
        if (index != _next || _queue == null) Restart(index);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var (got, item, error) = _queue!.Take();
        Waited += System.Diagnostics.Stopwatch.GetElapsedTime(started);
        if (error != null)
        {
            Stop(); // the producer has ended; a later call starts over
            throw error;
        }
        System.Diagnostics.Debug.Assert(got == index);
        _next = index + 1;
        return item!;
    }

    private void Restart(long start)
    {
        Stop();
        var queue = _queue = new BlockingCollection<(long, T?, Exception?)>(_depth);
        var cancel = _cancel = new CancellationTokenSource();
        _worker = new Thread(() =>
        {
            try
            {
                for (long i = start; ; i++)
                {
                    T item;
                    try { item = _make(i); }
                    catch (Exception e)
                    {
                        queue.Add((i, default, e), cancel.Token);
                        return;
                    }
                    queue.Add((i, item, null), cancel.Token);
                }
            }
            catch (OperationCanceledException) { }
        }) { IsBackground = true, Name = "Nabla batch prefetch" };
        _worker.Start();
        _next = start;
    }

    private void Stop()
    {
        if (_worker == null) return;
        _cancel!.Cancel();
        _worker.Join();
        _cancel.Dispose();
        _queue!.Dispose();
        (_worker, _cancel, _queue) = (null, null, null);
    }

    public void Dispose() => Stop();
}
