using Nabla.IO;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace Nabla.Data;

/// <summary>
/// Image files (PNG, JPEG, BMP, GIF, ...) decoded into float tensors (C, H, W) in [0, 1], RGB (C = 3) or grey
/// (C = 1), optionally resized, centre-cropped and normalised — the preprocessing pretrained classifiers expect:
/// torchvision's ImageNet models take <c>Load(path, resize: 256, centerCrop: 224, normalization: Normalization.ImageNet)</c>.
/// Decoding uses SixLabors.ImageSharp (fully managed). The image's size is read from its header and checked before
/// its pixels are decoded, and a file that is not an image, or is damaged, is one error naming it.
/// </summary>
public static class ImageFile
{
    /// <summary>Largest image decoded, in pixels (a header can claim any size; decoding allocates for all of it).</summary>
    public const long MaxPixels = 100_000_000;

    /// <param name="resize">Scales the image so its shorter side has this many pixels (bilinear), keeping the aspect ratio.</param>
    /// <param name="centerCrop">Then keeps the central square of this side.</param>
    /// <param name="channels">3 for RGB, 1 for grey.</param>
    /// <param name="filter">The resampling of <paramref name="resize"/>: bilinear (torchvision's default) or bicubic (what most timm ViTs were trained with).</param>
    public static Tensor Load(string path, int? resize = null, int? centerCrop = null, Normalization? normalization = null, int channels = 3,
        ResizeFilter filter = ResizeFilter.Bilinear)
    {
        if (channels is not (1 or 3)) throw new ArgumentException($"{path}: images are read with 1 (grey) or 3 (RGB) channels, not {channels}.");
        if (resize is <= 0 || centerCrop is <= 0) throw new ArgumentException($"{path}: resize ({resize}) and crop ({centerCrop}) sizes must be positive.");
        normalization?.Check(channels, path);
        using var image = Decode(path);
        if (resize is { } shorter)
        {
            // The shorter side becomes `shorter`, the longer one scales with it (torchvision's Resize(int)).
            var (w, h) = image.Width <= image.Height
                ? (shorter, (int)Math.Max(1, (long)shorter * image.Height / image.Width))
                : ((int)Math.Max(1, (long)shorter * image.Width / image.Height), shorter);
            image.Mutate(x => x.Resize(w, h, filter == ResizeFilter.Bicubic ? KnownResamplers.Bicubic : KnownResamplers.Triangle));
        }
        if (centerCrop is { } side)
        {
            if (side > image.Width || side > image.Height)
                throw new ArgumentException($"{path}: a {side}×{side} centre crop does not fit the {image.Width}×{image.Height} image; resize it first.");
            // torchvision's CenterCrop: the offset rounds to the nearest pixel.
            int left = (int)Math.Round((image.Width - side) / 2.0), top = (int)Math.Round((image.Height - side) / 2.0);
            image.Mutate(x => x.Crop(new Rectangle(left, top, side, side)));
        }
        return ToTensor(image, channels, normalization);
    }

    /// <summary>The decoded pixels, after checking the header's size. A damaged file makes the decoder throw all
    /// kinds of exceptions (ArgumentOutOfRange on a truncated PNG, for one): each becomes one error naming the file.</summary>
    private static Image<Rgb24> Decode(string path)
    {
        FileStream file;
        // Opened through BoundedFile so a pipe or device is an error, not a read that never ends.
        try { file = BoundedFile.OpenRead(path, "an image file"); }
        catch (InputFileException e)
        {
            throw new DataFormatException($"{path}: cannot read: {(e.Message.StartsWith(path + ": ") ? e.Message[(path.Length + 2)..] : e.Message)}");
        }
        using var _ = file;
        try
        {
            var info = Image.Identify(file) ?? throw new DataFormatException($"{path}: not an image file this reader knows (PNG, JPEG, BMP, GIF, TGA, TIFF, WebP, PBM).");
            if ((long)info.Width * info.Height > MaxPixels)
                throw new DataFormatException($"{path}: {info.Width}×{info.Height} pixels is more than the {MaxPixels} this reader decodes.");
            file.Position = 0;
            return Image.Load<Rgb24>(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataFormatException($"{path}: cannot read: {e.Message}");
        }
        catch (Exception e) when (e is not (DataFormatException or OutOfMemoryException))
        {
            throw new DataFormatException($"{path}: cannot decode the image: {e.Message}");
        }
    }

    private static Tensor ToTensor(Image<Rgb24> image, int channels, Normalization? normalization)
    {
        int H = image.Height, W = image.Width, plane = H * W;
        var data = new float[channels * plane];
        image.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < H; y++)
            {
                var row = rows.GetRowSpan(y);
                for (int x = 0; x < W; x++)
                {
                    var p = row[x];
                    if (channels == 3)
                    {
                        data[y * W + x] = p.R / 255f;
                        data[plane + y * W + x] = p.G / 255f;
                        data[2 * plane + y * W + x] = p.B / 255f;
                    }
                    else data[y * W + x] = (0.299f * p.R + 0.587f * p.G + 0.114f * p.B) / 255f; // ITU-R 601 luma, as PIL's "L"
                }
            }
        });
        normalization?.Apply(data, channels);
        return Tensor.FromArray(data, channels, H, W);
    }
}

/// <summary>How <see cref="ImageFile.Load"/> resamples an image it resizes.</summary>
public enum ResizeFilter { Bilinear, Bicubic }
