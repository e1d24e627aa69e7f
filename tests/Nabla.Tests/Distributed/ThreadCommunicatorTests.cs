using Nabla.Distributed;

namespace Nabla.Tests.Distributed;

public class ThreadCommunicatorTests
{
    /// <summary>Runs <paramref name="body"/> on every rank of a new group, each on its own thread. The ranks wait up to
    /// 10 minutes for each other at a collective: the timeout only turns a deadlock into a failure, and the default 30 s
    /// is too short for a rank that validates while the others wait when other processes load the machine (the timeout
    /// itself is tested by <see cref="ARankThatNeverArrivesIsATimeoutNotAHang"/>).</summary>
    internal static T[] OnRanks<T>(int size, Func<ICommunicator, T> body)
    {
        var ranks = ThreadCommunicator.CreateGroup(size, TimeSpan.FromMinutes(10));
        var tasks = ranks.Select(c => Task.Factory.StartNew(() => body(c), TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(tasks);
        return tasks.Select(t => t.Result).ToArray();
    }

    /// <summary>Rank r's input: element i is r·1000 + i (exact in float).</summary>
    private static float[] Input(int rank, int n) => Enumerable.Range(0, n).Select(i => rank * 1000f + i).ToArray();

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4)]
    public void AllReduceSumsAndAveragesInPlace(int size)
    {
        const int n = 7; // not a multiple of the ranks: the slices each rank reduces are uneven
        var sums = OnRanks(size, c => { var b = Input(c.Rank, n); c.AllReduce(b, ReduceOp.Sum); return b; });
        var averages = OnRanks(size, c => { var b = Input(c.Rank, n); c.AllReduce(b, ReduceOp.Average); return b; });
        for (int i = 0; i < n; i++)
        {
            float expected = Enumerable.Range(0, size).Sum(r => r * 1000f + i);
            foreach (var b in sums) Assert.Equal(expected, b[i]);
            foreach (var b in averages) Assert.Equal(expected / size, b[i], 1e-4f);
        }
    }

    [Fact]
    public void ReduceScatterGivesEachRankItsBlockOfTheSum()
    {
        const int size = 3, block = 2;
        var received = OnRanks(size, c => { var r = new float[block]; c.ReduceScatter(Input(c.Rank, size * block), r); return r; });
        for (int rank = 0; rank < size; rank++)
            for (int i = 0; i < block; i++)
                Assert.Equal(Enumerable.Range(0, size).Sum(r => r * 1000f + rank * block + i), received[rank][i]);
    }

    [Fact]
    public void AllGatherConcatenatesInRankOrder()
    {
        const int size = 3, n = 2;
        var gathered = OnRanks(size, c => { var r = new float[size * n]; c.AllGather(Input(c.Rank, n), r); return r; });
        float[] expected = [0, 1, 1000, 1001, 2000, 2001];
        foreach (var g in gathered) Assert.Equal(expected, g);
    }

    [Fact]
    public void BroadcastCopiesTheRootsBuffer()
    {
        var buffers = OnRanks(3, c => { var b = Input(c.Rank, 4); c.Broadcast(b, root: 2); return b; });
        foreach (var b in buffers) Assert.Equal(Input(2, 4), b);
    }

    [Fact]
    public void AllReduceAsyncOnATensor()
    {
        var results = OnRanks(2, c =>
        {
            var t = Tensor.FromArray(Input(c.Rank, 3), 3);
            c.AllReduceAsync(t, ReduceOp.Average).Wait();
            return t.ToArray();
        });
        foreach (var r in results) Assert.Equal([500f, 501f, 502f], r);
    }

    [Fact]
    public void MismatchedLengthsAreAnErrorOnEveryRank()
    {
        var errors = OnRanks(2, c =>
        {
            try { c.AllReduce(new float[c.Rank + 1], ReduceOp.Sum); return ""; }
            catch (InvalidOperationException e) { return e.Message; }
        });
        Assert.Equal("AllReduce: rank 0 passed 1 elements, rank 1 passed 2.", errors[0]);
        Assert.Equal("AllReduce: rank 1 passed 2 elements, rank 0 passed 1.", errors[1]);
    }

    [Fact]
    public void ARankThatNeverArrivesIsATimeoutNotAHang()
    {
        var ranks = ThreadCommunicator.CreateGroup(2, TimeSpan.FromMilliseconds(200));
        var e = Assert.Throws<TimeoutException>(() => ranks[0].Barrier());
        Assert.Contains("Barrier: rank 0 waited", e.Message);
    }

    [Fact]
    public void BufferLengthsAreChecked()
    {
        var single = new SingleProcessCommunicator();
        Assert.Contains("ranks (1) × the receive buffer's 2", Assert.Throws<ArgumentException>(() => single.ReduceScatter(new float[3], new float[2])).Message);
        Assert.Contains("ranks (1) × the send buffer's 3", Assert.Throws<ArgumentException>(() => single.AllGather(new float[3], new float[2])).Message);
        Assert.Contains("root rank 1 is not among the 1 ranks", Assert.Throws<ArgumentOutOfRangeException>(() => single.Broadcast(new float[3], 1)).Message);
    }
}

public class MpiCommunicatorTests
{
    [Fact]
    public void AMissingMpiLibraryIsOneLineSayingWhatToInstall()
    {
        var e = Assert.Throws<MpiUnavailableException>(() => new MpiCommunicator("libmpi-not-installed.so.40"));
        Assert.Equal("libmpi-not-installed.so.40 could not be loaded: install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev).", e.Message);
    }
}
