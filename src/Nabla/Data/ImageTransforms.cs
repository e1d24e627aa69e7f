namespace Nabla.Data;

/// <summary>Per-channel normalisation x → (x - mean) / std, with the statistics of the images a model was trained on.</summary>
public sealed record Normalization(float[] Mean, float[] Std)
{
    /// <summary>The ImageNet statistics that torchvision's and timm's pretrained weights expect (RGB in [0, 1]).</summary>
    public static Normalization ImageNet { get; } = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);

    public int Channels => Mean.Length;

    internal void Check(int channels, string what)
    {
        if (Mean.Length != Std.Length || Std.Any(s => !(s > 0)))
            throw new ArgumentException($"Normalization: mean ({Mean.Length} values) and std ({Std.Length}, all positive) must describe the same channels.");
        if (channels != Mean.Length)
            throw new ArgumentException($"Normalization for {Mean.Length} channel(s) cannot apply to {what} with {channels}.");
    }

    /// <summary>Normalises one image (C, H, W) in place.</summary>
    internal void Apply(Span<float> image, int channels)
    {
        int plane = image.Length / channels;
        for (int c = 0; c < channels; c++)
        {
            float mean = Mean[c], scale = 1f / Std[c];
            foreach (ref var v in image.Slice(c * plane, plane)) v = (v - mean) * scale;
        }
    }
}

/// <summary>
/// Random changes of each training image that keep its class, so that the model sees a slightly different image
/// every epoch and learns what does not depend on position, orientation or an occluded patch:
/// random crop with zero padding (shift by up to <see cref="CropPadding"/> pixels), horizontal flip with
/// probability ½, and random erasing (Zhong et al., 2017: a rectangle of random area and aspect ratio set to 0,
/// i.e. to the mean once normalised, with probability <see cref="ErasingProbability"/>). Defaults follow
/// torchvision's RandomCrop, RandomHorizontalFlip and RandomErasing.
/// </summary>
public sealed record ImageAugmentation
{
    public int CropPadding { get; init; }
    public bool HorizontalFlip { get; init; }
    public float ErasingProbability { get; init; }
    /// <summary>Range of the erased area as a fraction of the image.</summary>
    public (float Min, float Max) ErasingScale { get; init; } = (0.02f, 0.33f);
    /// <summary>Range of the erased rectangle's aspect ratio (height / width), drawn log-uniformly.</summary>
    public (float Min, float Max) ErasingRatio { get; init; } = (0.3f, 3.3f);

    /// <summary>What works for Fashion-MNIST: shifts of up to 2 pixels, flips, erasing half of the time.</summary>
    public static ImageAugmentation FashionMnist { get; } = new() { CropPadding = 2, HorizontalFlip = true, ErasingProbability = 0.5f };

    internal void Check()
    {
        if (CropPadding < 0) throw new ArgumentException($"Augmentation: crop padding must be ≥ 0, got {CropPadding}.");
        if (ErasingProbability is < 0 or > 1 || float.IsNaN(ErasingProbability)) throw new ArgumentException($"Augmentation: erasing probability must be in [0, 1], got {ErasingProbability}.");
        if (!(ErasingScale.Min > 0 && ErasingScale.Min <= ErasingScale.Max && ErasingScale.Max <= 1) || !(ErasingRatio.Min > 0 && ErasingRatio.Min <= ErasingRatio.Max))
            throw new ArgumentException($"Augmentation: erasing scale {ErasingScale} must lie in (0, 1] and ratio {ErasingRatio} be positive, each with min ≤ max.");
    }

    /// <summary>Shifts (crop of the zero-padded image) and flips <paramref name="source"/> (C, H, W) into <paramref name="target"/>.</summary>
    internal void CropAndFlip(ReadOnlySpan<float> source, Span<float> target, int channels, int height, int width, Generator random)
    {
        int dy = CropPadding > 0 ? random.NextInt(2 * CropPadding + 1) - CropPadding : 0;
        int dx = CropPadding > 0 ? random.NextInt(2 * CropPadding + 1) - CropPadding : 0;
        bool flip = HorizontalFlip && random.NextFloat() < 0.5f;
        int plane = height * width;
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < height; y++)
            {
                int sy = y + dy;
                var row = target.Slice(c * plane + y * width, width);
                if (sy < 0 || sy >= height) { row.Clear(); continue; }
                var sourceRow = source.Slice(c * plane + sy * width, width);
                for (int x = 0; x < width; x++)
                {
                    int sx = (flip ? width - 1 - x : x) + dx;
                    row[x] = sx >= 0 && sx < width ? sourceRow[sx] : 0f;
                }
            }
    }

    /// <summary>With probability <see cref="ErasingProbability"/>, zeroes a random rectangle of <paramref name="image"/>
    /// (C, H, W) in every channel; like torchvision, gives up after 10 draws that do not fit.</summary>
    internal void Erase(Span<float> image, int channels, int height, int width, Generator random)
    {
        if (ErasingProbability == 0 || random.NextFloat() >= ErasingProbability) return;
        float area = height * width;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            float target = area * (ErasingScale.Min + random.NextFloat() * (ErasingScale.Max - ErasingScale.Min));
            float logMin = MathF.Log(ErasingRatio.Min), logMax = MathF.Log(ErasingRatio.Max);
            float ratio = MathF.Exp(logMin + random.NextFloat() * (logMax - logMin));
            int h = (int)MathF.Round(MathF.Sqrt(target * ratio)), w = (int)MathF.Round(MathF.Sqrt(target / ratio));
            if (h >= height || w >= width || h < 1 || w < 1) continue;
            int top = random.NextInt(height - h + 1), left = random.NextInt(width - w + 1);
            for (int c = 0; c < channels; c++)
                for (int y = top; y < top + h; y++)
                    image.Slice((c * height + y) * width + left, w).Clear();
            return;
        }
    }
}
