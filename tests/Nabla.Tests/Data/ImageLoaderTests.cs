using Nabla.Data;

namespace Nabla.Tests.Data;

/// <summary>
/// The image loader: batch i is a pure function of (seed, i) — with or without prefetching, read in order or after
/// a jump — every epoch visits every image once, augmentation does exactly what it says (shift with zero fill,
/// mirror, erase a rectangle to the mean), normalisation uses the given statistics, and an error while making a
/// batch reaches the caller.
/// </summary>
public class ImageLoaderTests
{
    private const int N = 23, C = 2, H = 6, W = 5;

    /// <summary>Images whose every pixel encodes (image, channel, row, column), so a batch can be decoded.</summary>
    private static (Tensor Images, Tensor Labels) Data()
    {
        var pixels = new float[N * C * H * W];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = 1 + i;
        return (Tensor.FromArray(pixels, N, C, H, W), Tensor.FromArray(Enumerable.Range(0, N).Select(i => i % 3).ToArray()));
    }

    private static float[][] Batches(ImageLoader loader, IEnumerable<long> indices) =>
        indices.Select(i => { var (x, y) = loader.Batch(i); return x.ToArray().Concat(y.ToIntArray().Select(v => (float)v)).ToArray(); }).ToArray();

    [Fact]
    public void BatchesArePureFunctionsOfSeedAndIndex()
    {
        var (images, labels) = Data();
        var augmentation = new ImageAugmentation { CropPadding = 1, HorizontalFlip = true, ErasingProbability = 0.5f };
        using var direct = new ImageLoader(images, labels, 5, shuffleSeed: 7, augmentation, augmentationSeed: 3, prefetch: 0);
        using var prefetched = new ImageLoader(images, labels, 5, shuffleSeed: 7, augmentation, augmentationSeed: 3, prefetch: 3);
        var indices = Enumerable.Range(0, 12).Select(i => (long)i).ToArray();
        var expected = Batches(direct, indices);
        Assert.Equal(expected, Batches(prefetched, indices));
        // Jumping back and forth restarts the prefetcher and still gives the same batches.
        Assert.Equal(new[] { expected[9], expected[2], expected[3], expected[11] }, Batches(prefetched, [9, 2, 3, 11]));
        // Different epochs differ (new order and new augmentation), and another seed differs.
        Assert.NotEqual(expected[0], expected[5]);
        using var other = new ImageLoader(images, labels, 5, shuffleSeed: 8, augmentation, augmentationSeed: 3, prefetch: 0);
        Assert.NotEqual(expected[0], Batches(other, [0])[0]);
    }

    [Fact]
    public void EveryEpochVisitsEveryImageOnceWithItsLabel()
    {
        var (images, labels) = Data();
        using var loader = new ImageLoader(images, labels, 5, shuffleSeed: 1);
        Assert.Equal(5, loader.BatchesPerEpoch);
        foreach (var epoch in new[] { 0, 1 })
        {
            var seen = new List<int>();
            foreach (var (x, y) in loader.Epoch(epoch))
            {
                var first = x.ToArray();
                var ys = y.ToIntArray();
                for (int b = 0; b < ys.Length; b++)
                {
                    int image = (int)(first[b * C * H * W] - 1) / (C * H * W);
                    Assert.Equal(image % 3, ys[b]);
                    seen.Add(image);
                }
            }
            Assert.Equal(Enumerable.Range(0, N), seen.Order());
            Assert.NotEqual(Enumerable.Range(0, N), seen); // shuffled
        }
        using var ordered = new ImageLoader(images, labels, 10);
        Assert.Equal(images.Narrow(0, 20, 3).ToArray(), ordered.Batch(2).Inputs.ToArray()); // unshuffled, short last batch
    }

    [Fact]
    public void CropShiftsWithZerosAndFlipMirrors()
    {
        var (images, labels) = Data();
        using var loader = new ImageLoader(images, labels, N, augmentation: new ImageAugmentation { CropPadding = 2, HorizontalFlip = true }, prefetch: 0);
        var batch = loader.Batch(0).Inputs;
        var source = images.ToArray();
        var shifts = new HashSet<(int, int, bool)>();
        for (int n = 0; n < N; n++)
        {
            var output = batch.Select(0, n).Contiguous().ToArray();
            // Find the shift and flip that explain the output: every pixel is the source pixel or 0 outside the image.
            var match = (from dy in Enumerable.Range(-2, 5) from dx in Enumerable.Range(-2, 5) from flip in new[] { false, true }
                         where Explains(output, source.AsSpan(n * C * H * W, C * H * W).ToArray(), dy, dx, flip)
                         select (dy, dx, flip)).ToList();
            Assert.True(match.Count == 1, $"image {n}: {match.Count} shift/flip combinations explain the output");
            shifts.Add(match[0]);
        }
        Assert.True(shifts.Count > 8, $"only {shifts.Count} distinct shifts/flips over {N} images");
        Assert.Contains(shifts, s => s.Item3);
        Assert.Contains(shifts, s => !s.Item3);
    }

    private static bool Explains(float[] output, float[] source, int dy, int dx, bool flip)
    {
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                {
                    int sy = y + dy, sx = (flip ? W - 1 - x : x) + dx;
                    float expected = sy is >= 0 and < H && sx is >= 0 and < W ? source[(c * H + sy) * W + sx] : 0;
                    if (output[(c * H + y) * W + x] != expected) return false;
                }
        return true;
    }

    [Fact]
    public void ErasingZeroesOneRectangleAfterNormalisation()
    {
        const int n = 400, side = 16;
        var images = Tensor.Full(0.5f, n, 1, side, side);
        var labels = Tensor.FromArray(new int[n]);
        var normalization = new Normalization([0.25f], [0.5f]); // 0.5 → 0.5
        using var loader = new ImageLoader(images, labels, n, augmentation: new ImageAugmentation { ErasingProbability = 0.5f },
            normalization: normalization, prefetch: 0);
        var batch = loader.Batch(0).Inputs.ToArray();
        int erased = 0;
        for (int i = 0; i < n; i++)
        {
            var image = batch.AsSpan(i * side * side, side * side);
            var zeros = new List<(int Y, int X)>();
            for (int p = 0; p < image.Length; p++)
            {
                if (image[p] == 0) zeros.Add((p / side, p % side));
                else Assert.Equal(0.5f, image[p]);
            }
            if (zeros.Count == 0) continue;
            erased++;
            int h = zeros.Max(z => z.Y) - zeros.Min(z => z.Y) + 1, w = zeros.Max(z => z.X) - zeros.Min(z => z.X) + 1;
            Assert.Equal(h * w, zeros.Count); // one filled rectangle
            Assert.InRange(h * w, 0.02 * side * side * 0.5, 0.33 * side * side * 1.5);
            Assert.InRange(h / (double)w, 0.3 / 2, 3.3 * 2);
        }
        Assert.InRange(erased, n * 0.5 - 5 * 10, n * 0.5 + 5 * 10); // Binomial(400, ½): sd 10
    }

    [Fact]
    public void ErrorsReachTheCaller()
    {
        var (images, labels) = Data();
        Assert.Contains("Normalization for 1 channel(s) cannot apply to images [23, 2, 6, 5] with 2",
            Assert.Throws<ArgumentException>(() => new ImageLoader(images, labels, 4, normalization: new Normalization([0f], [1f]))).Message);
        Assert.Contains("one label per image (23)",
            Assert.Throws<ArgumentException>(() => new ImageLoader(images, Tensor.FromArray(new int[3]), 4)).Message);
        Assert.Contains("crop padding must be ≥ 0",
            Assert.Throws<ArgumentException>(() => new ImageLoader(images, labels, 4, augmentation: new ImageAugmentation { CropPadding = -1 })).Message);
        var prefetcher = new BatchPrefetcher<int>(i => i < 3 ? (int)i : throw new InvalidDataException($"batch {i} is damaged"), 2);
        Assert.Equal(0, prefetcher.Get(0));
        Assert.Equal(1, prefetcher.Get(1));
        Assert.Equal(2, prefetcher.Get(2));
        Assert.Equal("batch 3 is damaged", Assert.Throws<InvalidDataException>(() => prefetcher.Get(3)).Message);
        Assert.Equal(1, prefetcher.Get(1)); // starts over
        prefetcher.Dispose();
    }
}
