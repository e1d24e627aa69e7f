namespace Nabla.Data;

/// <summary>
/// Batches of images (B, C, H, W) and Int32 labels (B) for training and evaluation: shuffled per epoch, augmented
/// (<see cref="ImageAugmentation"/>) and normalised (<see cref="Normalization"/>), and made on a background thread
/// ahead of use (<c>prefetch</c> batches) so the model never waits for them.
/// Batch i is a pure function of (seed, i): it belongs to epoch i / <see cref="BatchesPerEpoch"/>, whose order is
/// drawn from (seed, epoch), and each image's augmentation is drawn from (seed, epoch, image index). So a run is
/// reproducible, a resumed run sees what an uninterrupted one would (it is the <see cref="IBatchSource"/> of a
/// <see cref="Training.Trainer"/>), and prefetching changes nothing but timing.
/// </summary>
public sealed class ImageLoader : IBatchSource, IDisposable
{
    private readonly Tensor _images;
    private readonly int[] _labels;
    private readonly ulong? _shuffleSeed;
    private readonly ulong _augmentationSeed;
    private readonly ImageAugmentation? _augmentation;
    private readonly Normalization? _normalization;
    private readonly BatchPrefetcher<(Tensor, Tensor)>? _prefetcher;
    private readonly int _channels, _height, _width;
    private int _cachedEpoch = -1;
    private int[] _order = [];

    /// <param name="images">(N, C, H, W) float images, in [0, 1] for the usual statistics.</param>
    /// <param name="labels">(N) Int32 class indices.</param>
    /// <param name="shuffleSeed">Seed of each epoch's order; null keeps the dataset's order (evaluation).</param>
    /// <param name="augmentation">Random changes for training; null for none (evaluation).</param>
    /// <param name="augmentationSeed">Seed of the augmentation draws.</param>
    /// <param name="prefetch">Batches made ahead on a background thread (0: made on the caller's thread).</param>
    public ImageLoader(Tensor images, Tensor labels, int batchSize, ulong? shuffleSeed = null, ImageAugmentation? augmentation = null,
        Normalization? normalization = null, ulong augmentationSeed = 0, int prefetch = 2)
    {
        if (images.Rank != 4) throw new ArgumentException($"ImageLoader: images must be (count, channels, height, width), got {images.ShapeString}.");
        if (labels.DType != DType.Int32 || labels.Rank != 1 || labels.Size(0) != images.Size(0))
            throw new ArgumentException($"ImageLoader: labels must be an Int32 vector with one label per image ({images.Size(0)}), got {labels.DType} {labels.ShapeString}.");
        if (images.Size(0) == 0) throw new ArgumentException("ImageLoader: there are no images.");
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), $"The batch size must be positive, got {batchSize}.");
        if (prefetch < 0) throw new ArgumentOutOfRangeException(nameof(prefetch), $"The prefetch depth must be ≥ 0, got {prefetch}.");
        _images = images.Contiguous();
        _labels = labels.ToIntArray();
        (_channels, _height, _width) = (images.Size(1), images.Size(2), images.Size(3));
        augmentation?.Check();
        normalization?.Check(_channels, $"images {images.ShapeString}");
        BatchSize = batchSize;
        _shuffleSeed = shuffleSeed;
        _augmentation = augmentation;
        _augmentationSeed = augmentationSeed;
        _normalization = normalization;
        if (prefetch > 0) _prefetcher = new BatchPrefetcher<(Tensor, Tensor)>(Make, prefetch);
    }

    public int BatchSize { get; }
    public int Count => _labels.Length;
    /// <summary>Batches per epoch; the last one holds the remaining images.</summary>
    public int BatchesPerEpoch => (Count + BatchSize - 1) / BatchSize;
    /// <summary>Time the caller spent waiting for a prefetched batch (near zero when the loader keeps up).</summary>
    public TimeSpan Waited => _prefetcher?.Waited ?? TimeSpan.Zero;

    /// <summary>Batch <paramref name="index"/> of the endless sequence of epochs: images (B, C, H, W) and labels (B).</summary>
    public (Tensor Inputs, Tensor Targets) Batch(long index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        if (_prefetcher == null) return Make(index);
        // Made on the prefetch thread, out of reach of the caller's memory scope: hand them to it (they are fresh).
        var (inputs, targets) = _prefetcher.Get(index);
        return (MemoryScope.Adopt(inputs), MemoryScope.Adopt(targets));
    }

    /// <summary>The batches of one epoch, in order.</summary>
    public IEnumerable<(Tensor Inputs, Tensor Targets)> Epoch(int epoch)
    {
        for (int b = 0; b < BatchesPerEpoch; b++) yield return Batch((long)epoch * BatchesPerEpoch + b);
    }

    // Runs on the prefetch thread: managed arrays and one tensor copy only, no kernels, no autograd.
    private (Tensor, Tensor) Make(long index)
    {
        int epoch = (int)(index / BatchesPerEpoch), start = (int)(index % BatchesPerEpoch) * BatchSize;
        int size = Math.Min(BatchSize, Count - start);
        var rows = EpochOrder(epoch).AsSpan(start, size);
        int imageSize = _channels * _height * _width;
        var pixels = new float[size * imageSize];
        var labels = new int[size];
        var source = _images.AsSpan();
        for (int i = 0; i < size; i++)
        {
            int row = rows[i];
            labels[i] = _labels[row];
            var image = pixels.AsSpan(i * imageSize, imageSize);
            var original = source.Slice(row * imageSize, imageSize);
            Generator? random = _augmentation == null ? null : new Generator(Mix(_augmentationSeed, (ulong)epoch, (ulong)row));
            if (random != null) _augmentation!.CropAndFlip(original, image, _channels, _height, _width, random);
            else original.CopyTo(image);
            _normalization?.Apply(image, _channels);
            if (random != null) _augmentation!.Erase(image, _channels, _height, _width, random);
        }
        return (Tensor.FromArray(pixels, size, _channels, _height, _width), Tensor.FromArray(labels));
    }

    private int[] EpochOrder(int epoch)
    {
        if (epoch == _cachedEpoch) return _order;
        var order = Enumerable.Range(0, Count).ToArray();
        if (_shuffleSeed is { } seed) new Generator(Mix(seed, (ulong)epoch, 0)).Shuffle(order.AsSpan());
        (_order, _cachedEpoch) = (order, epoch);
        return order;
    }

    /// <summary>One seed from three numbers, each folded in by a SplitMix64 step (so nearby inputs give unrelated seeds).</summary>
    private static ulong Mix(ulong a, ulong b, ulong c)
    {
        ulong state = a ^ b;
        state = Generator.SplitMix(ref state) ^ c;
        return Generator.SplitMix(ref state);
    }

    public void Dispose() => _prefetcher?.Dispose();
}
