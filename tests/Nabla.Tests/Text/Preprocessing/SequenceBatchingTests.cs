using Nabla.Text.Preprocessing;

namespace Nabla.Tests.Text.Preprocessing;

public sealed class SequenceBatchingTests
{
    [Fact]
    public void TruncatesAtEitherEnd()
    {
        int[] ids = [1, 2, 3, 4, 5];
        Assert.Equal([1, 2, 3], SequenceBatching.Truncate(ids, 3));
        Assert.Equal([3, 4, 5], SequenceBatching.Truncate(ids, 3, SequenceEnd.Start));
        Assert.Same(ids, SequenceBatching.Truncate(ids, 9));
    }

    [Fact]
    public void PadsToTheLongestAtEitherEnd()
    {
        int[][] sequences = [[5, 6], [7, 8, 9], [4]];
        var (ids, lengths) = SequenceBatching.Pad(sequences);
        Assert.Equal([3, 3], ids.Shape.ToArray());
        Assert.Equal([5, 6, 0, 7, 8, 9, 4, 0, 0], ids.ToIntArray());
        Assert.Equal([2, 3, 1], lengths);
        var (left, _) = SequenceBatching.Pad(sequences, padId: -1, padAt: SequenceEnd.Start);
        Assert.Equal([-1, 5, 6, 7, 8, 9, -1, -1, 4], left.ToIntArray());
    }

    private static int[] RandomLengths(int n, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => random.Next(1, 200)).ToArray();
    }

    [Fact]
    public void BucketsCoverEveryIndexOnceWithLittlePadding()
    {
        var lengths = RandomLengths(1000, 1);
        var batches = SequenceBatching.BucketByLength(lengths, batchSize: 16, seed: 7, poolBatches: 10);
        Assert.Equal(Enumerable.Range(0, 1000), batches.SelectMany(b => b).Order());
        Assert.All(batches, b => Assert.InRange(b.Length, 1, 16));
        // Padded cells as a share of all cells: bucketed batches must pad far less than batches of random texts.
        double Padding(IEnumerable<int[]> bs) =>
            bs.Sum(b => b.Length * b.Max(i => lengths[i]) - b.Sum(i => lengths[i])) / (double)bs.Sum(b => b.Length * b.Max(i => lengths[i]));
        var unbucketed = Enumerable.Range(0, 1000).Chunk(16);
        Assert.True(Padding(batches) < Padding(unbucketed) / 4, $"bucketed {Padding(batches):P1}, unbucketed {Padding(unbucketed):P1}");
    }

    [Fact]
    public void TheSeedDecidesTheBatchesAndWithoutOneTheyComeInLengthOrder()
    {
        var lengths = RandomLengths(200, 2);
        Assert.Equal(SequenceBatching.BucketByLength(lengths, 8, seed: 3), SequenceBatching.BucketByLength(lengths, 8, seed: 3));
        Assert.NotEqual(SequenceBatching.BucketByLength(lengths, 8, seed: 3), SequenceBatching.BucketByLength(lengths, 8, seed: 4));
        var ordered = SequenceBatching.BucketByLength(lengths, 8, seed: null).SelectMany(b => b).Select(i => lengths[i]).ToArray();
        Assert.Equal(lengths.Order(), ordered);
    }

    [Fact]
    public void ClassificationBatchesArePaddedIdsAndLabelsAndChangeEveryEpoch()
    {
        int[][] sequences = [[3, 4], [5], [], [6, 7, 8], [9, 10]];
        int[] labels = [0, 1, 0, 1, 1];
        var batches = new SequenceClassificationBatches(sequences, labels, batchSize: 2, seed: 11);
        Assert.Equal(3, batches.BatchesPerEpoch);
        var seen = new List<int>();
        for (int i = 0; i < 3; i++)
        {
            var (ids, targets) = batches.Batch(i);
            var indices = batches.Batches(0)[i];
            Assert.Equal(indices.Select(j => labels[j]), targets.ToIntArray());
            int t = ids.Size(1);
            var flat = ids.ToIntArray();
            for (int row = 0; row < indices.Length; row++)
            {
                // An empty text becomes one <unk>; the rest is padding.
                int[] expected = sequences[indices[row]] is { Length: > 0 } s ? s : [WordVocabulary.UnknownId];
                Assert.Equal(expected.Concat(Enumerable.Repeat(WordVocabulary.PadId, t - expected.Length)), flat.Skip(row * t).Take(t));
            }
            seen.AddRange(indices);
        }
        Assert.Equal([0, 1, 2, 3, 4], seen.Order());
        var firstEpoch = batches.Batches(0).SelectMany(b => b).ToArray();
        Assert.Contains(Enumerable.Range(1, 10), e => !batches.Batches(e).SelectMany(b => b).SequenceEqual(firstEpoch));
    }
}
