namespace Nabla.Data;

/// <summary>
/// An image-classification dataset laid out as one folder per class, like torchvision's <c>ImageFolder</c>:
/// DIR/cat/1.png, DIR/dog/a.jpg, ... The classes are the sub-folders' names in ordinal order (their index is the
/// label); every image file under a class folder (recursively) belongs to it. Images are decoded by
/// <see cref="ImageFile"/>, resized so the shorter side is <c>size</c> and centre-cropped to size×size, so they
/// stack into one tensor.
/// </summary>
public static class ImageFolder
{
    private static readonly HashSet<string> Extensions = new(StringComparer.OrdinalIgnoreCase)
        { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga", ".tif", ".tiff", ".webp", ".pbm" };

    /// <param name="size">Side of the square images (N, channels, size, size) in [0, 1].</param>
    /// <param name="channels">1 (grey) or 3 (RGB).</param>
    public static ImageClassificationData Load(string directory, int size, int channels = 3)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"{directory}: no such directory (an image folder has one sub-folder of images per class).");
        if (size <= 0) throw new ArgumentException($"{directory}: the image size must be positive, got {size}.");
        var classes = Directory.GetDirectories(directory).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray();
        if (classes.Length < 2)
            throw new DataFormatException($"{directory}: {classes.Length} class folder(s); an image folder needs a sub-folder of images for each of at least two classes.");
        var images = new List<Tensor>();
        var labels = new List<int>();
        for (int c = 0; c < classes.Length; c++)
        {
            var files = Directory.EnumerateFiles(Path.Combine(directory, classes[c]), "*", SearchOption.AllDirectories)
                .Where(f => Extensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal).ToArray();
            if (files.Length == 0) throw new DataFormatException($"{Path.Combine(directory, classes[c])}: no image files for class '{classes[c]}'.");
            foreach (var file in files)
            {
                images.Add(ImageFile.Load(file, resize: size, centerCrop: size, channels: channels));
                labels.Add(c);
            }
        }
        return new ImageClassificationData(Tensor.Stack(images), Tensor.FromArray(labels.ToArray()), classes);
    }
}
