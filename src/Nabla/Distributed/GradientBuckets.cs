using System.Diagnostics;

namespace Nabla.Distributed;

/// <summary>
/// Averages the gradients of a model's parameters across the ranks of a communicator, as PyTorch's DDP does: the
/// parameters are grouped, last first (the order backward finishes their gradients), into buckets of about
/// <see cref="DefaultBucketBytes"/>, and a bucket's all-reduce starts as soon as the last of its gradients is final
/// (each parameter's post-accumulate-grad hook), so communication runs on the communicator's thread while backward
/// computes the earlier layers' gradients. Buckets start strictly in order, so every rank issues the same
/// collectives in the same order. A bucket's gradients are copied into one flat buffer (one collective per bucket
/// instead of one per tensor) and the averages copied back by <see cref="Finish"/>.
/// </summary>
public sealed class GradientBuckets : IDisposable
{
    /// <summary>PyTorch DDP's default bucket size, 25 MiB.</summary>
    public const long DefaultBucketBytes = 25L << 20;

    private sealed class Bucket(Tensor[] parameters, Tensor flat)
    {
        public readonly Tensor[] Parameters = parameters;
        public readonly Tensor Flat = flat;
        public int Ready;
        public CollectiveRequest? Request;
    }

    private readonly ICommunicator _communicator;
    private readonly Bucket[] _buckets;
    private readonly Dictionary<Tensor, int> _bucketOf = new(ReferenceEqualityComparer.Instance);
    private readonly List<IDisposable> _hooks = [];
    private readonly bool _overlap;
    private int _nextToStart;
    private bool _armed;

    /// <param name="overlap">Start each bucket during backward (true) or all of them in <see cref="Finish"/> (false,
    /// to measure what overlapping saves).</param>
    public GradientBuckets(ICommunicator communicator, IReadOnlyList<Tensor> parameters, long bucketBytes = DefaultBucketBytes, bool overlap = true)
    {
        if (bucketBytes < sizeof(float)) throw new ArgumentOutOfRangeException(nameof(bucketBytes), $"A bucket must hold at least one float, got {bucketBytes} bytes.");
        _communicator = communicator;
        _overlap = overlap;
        var buckets = new List<Bucket>();
        var current = new List<Tensor>();
        long bytes = 0;
        void Close()
        {
            if (current.Count == 0) return;
            // The flat buffer outlives every memory scope: it is reused by every step.
            var flat = MemoryScope.Keep(Tensor.Zeros(checked((int)current.Sum(p => (long)p.Count))));
            buckets.Add(new Bucket(current.ToArray(), flat));
            current.Clear();
            bytes = 0;
        }
        foreach (var p in parameters.Reverse())
        {
            if (p.DType != DType.Float32) throw new ArgumentException($"Gradient all-reduce: parameter {p.Name ?? p.ShapeString} is {p.DType}; only float32 parameters are supported.");
            if (!_bucketOf.TryAdd(p, -1)) continue; // a parameter shared by two modules is reduced once
            if (bytes > 0 && bytes + p.Count * 4L > bucketBytes) Close();
            _bucketOf[p] = buckets.Count;
            current.Add(p);
            bytes += p.Count * 4L;
        }
        Close();
        _buckets = buckets.ToArray();
        foreach (var p in _bucketOf.Keys) _hooks.Add(p.RegisterPostAccumulateGradHook(OnGradientFinal));
    }

    public int BucketCount => _buckets.Length;

    /// <summary>Milliseconds <see cref="Finish"/> spent waiting for all-reduces: the communication backward did not hide.</summary>
    public double ExposedMilliseconds { get; private set; }

    /// <summary>Call before the backward pass whose gradients are to be averaged (with gradient accumulation: the
    /// last micro-batch's; the earlier ones only add to the gradients locally).</summary>
    public void Arm()
    {
        foreach (var b in _buckets) { b.Ready = 0; b.Request = null; }
        _nextToStart = 0;
        _armed = true;
    }

    private void OnGradientFinal(Tensor parameter)
    {
        if (!_armed || !_overlap) return;
        var bucket = _buckets[_bucketOf[parameter]];
        bucket.Ready++;
        while (_nextToStart < _buckets.Length && _buckets[_nextToStart].Ready == _buckets[_nextToStart].Parameters.Length)
            Start(_buckets[_nextToStart++]);
    }

    private void Start(Bucket bucket)
    {
        var flat = bucket.Flat.AsSpan();
        int offset = 0;
        foreach (var p in bucket.Parameters)
        {
            var slot = flat.Slice(offset, p.Count);
            if (p.Grad is { } g) Contiguous(g).AsSpan().CopyTo(slot);
            else slot.Clear(); // unused in this step's graph on every rank: contributes nothing
            offset += p.Count;
        }
        bucket.Request = _communicator.AllReduceAsync(bucket.Flat, ReduceOp.Average);
    }

    /// <summary>Starts the buckets backward did not (parameters without a gradient, or no overlap), waits for all,
    /// and replaces every parameter's gradient by its average over the ranks.</summary>
    public void Finish()
    {
        if (!_armed) throw new InvalidOperationException("GradientBuckets.Finish() without Arm() before the backward pass.");
        _armed = false;
        while (_nextToStart < _buckets.Length) Start(_buckets[_nextToStart++]);
        var clock = Stopwatch.StartNew();
        foreach (var bucket in _buckets) bucket.Request!.Wait();
        ExposedMilliseconds = clock.Elapsed.TotalMilliseconds;
        foreach (var bucket in _buckets)
        {
            var flat = bucket.Flat.AsSpan();
            int offset = 0;
            foreach (var p in bucket.Parameters)
            {
                if (p.Grad is { } g)
                {
                    var target = Contiguous(g);
                    flat.Slice(offset, p.Count).CopyTo(target.AsSpan());
                    if (!ReferenceEquals(target, g)) p.Grad = target;
                }
                offset += p.Count;
            }
        }
    }

    private static Tensor Contiguous(Tensor gradient) => gradient.IsContiguous ? gradient : gradient.Contiguous();

    public void Dispose()
    {
        foreach (var hook in _hooks) hook.Dispose();
        _hooks.Clear();
    }
}
