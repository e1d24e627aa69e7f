using Nabla.Distributed;
using Nabla.NN;

namespace Nabla.Tests.Distributed;

public class GradientBucketsTests
{
    /// <summary>Two ranks as far as the buckets can tell; records, at each all-reduce started, which parameters had a
    /// gradient yet, and doubles the buffer (as a sum over two identical ranks would).</summary>
    private sealed class RecordingCommunicator(IReadOnlyList<Tensor> parameters) : ICommunicator
    {
        public readonly List<int> GradientsReadyAtStart = [];
        public int Rank => 0;
        public int Size => 2;

        public CollectiveRequest AllReduceAsync(Tensor buffer, ReduceOp op)
        {
            GradientsReadyAtStart.Add(parameters.Count(p => p.Grad != null));
            if (op == ReduceOp.Sum) AllReduce(buffer.AsSpan(), op);
            return CollectiveRequest.Completed;
        }

        public void AllReduce(Span<float> buffer, ReduceOp op)
        {
            if (op == ReduceOp.Sum) foreach (ref var v in buffer) v *= 2;
        }

        public void ReduceScatter(ReadOnlySpan<float> send, Span<float> receive) => throw new NotSupportedException();
        public void AllGather(ReadOnlySpan<float> send, Span<float> receive) => throw new NotSupportedException();
        public void Broadcast(Span<float> buffer, int root) => throw new NotSupportedException();
        public void Barrier() { }
        public void Dispose() { }
    }

    [Fact]
    public void EachBucketStartsAsSoonAsBackwardHasFinishedItsGradients()
    {
        // Three layers of 8×8 + 8 floats (288 bytes each); buckets of 300 bytes hold one layer's weight and bias.
        var model = new Sequential(new Linear(8, 8), new ReLU(), new Linear(8, 8), new ReLU(), new Linear(8, 8));
        var parameters = model.Parameters().ToList();
        var communicator = new RecordingCommunicator(parameters);
        using var buckets = new GradientBuckets(communicator, parameters, bucketBytes: 300);
        Assert.Equal(3, buckets.BucketCount);

        buckets.Arm();
        model.Forward(Tensor.Randn(4, 8)).Sum().Backward();
        // The last layer's bucket started while the first two layers had no gradients yet, the middle one with only
        // the last two layers done: communication overlapped backward.
        Assert.Equal([2, 4, 6], communicator.GradientsReadyAtStart);
        var before = parameters.Select(p => p.Grad!.ToArray()).ToList();
        buckets.Finish();
        for (int i = 0; i < parameters.Count; i++) Assert.Equal(before[i], parameters[i].Grad!.ToArray()); // the average of two equal ranks
    }

    [Fact]
    public void WithoutOverlapEverythingStartsAfterBackward()
    {
        var model = new Sequential(new Linear(8, 8), new ReLU(), new Linear(8, 8));
        var parameters = model.Parameters().ToList();
        var communicator = new RecordingCommunicator(parameters);
        using var buckets = new GradientBuckets(communicator, parameters, bucketBytes: 300, overlap: false);
        buckets.Arm();
        model.Forward(Tensor.Randn(4, 8)).Sum().Backward();
        Assert.Empty(communicator.GradientsReadyAtStart);
        buckets.Finish();
        Assert.Equal([4, 4], communicator.GradientsReadyAtStart);
    }

    [Fact]
    public void BackwardWithoutArmCommunicatesNothing()
    {
        // Gradient accumulation: the micro-batches before the last only add to the gradients locally.
        var model = new Linear(8, 8);
        var parameters = model.Parameters().ToList();
        var communicator = new RecordingCommunicator(parameters);
        using var buckets = new GradientBuckets(communicator, parameters);
        model.Forward(Tensor.Randn(4, 8)).Sum().Backward();
        Assert.Empty(communicator.GradientsReadyAtStart);
        Assert.Throws<InvalidOperationException>(buckets.Finish);
    }
}
