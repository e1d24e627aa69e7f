using System.Globalization;
using System.IO.Compression;
using System.Text;
using Nabla.IO;

namespace Nabla.Data;

/// <summary>
/// The 8×8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", test part: 1,797 images of 43
/// writers) as scikit-learn bundles them in <c>digits.csv.gz</c>: one image per line, 64 pixel counts 0–16 (row
/// by row) and then the label 0–9, no header. A small dataset with a different look from MNIST's, for fine-tuning.
/// Read from a path given explicitly, else from NABLA_DATA (or ~/.cache/nabla)/datasets/digits/digits.csv.gz, else
/// from Debian's <c>python3-sklearn</c> (or <c>apt-get download python3-sklearn</c> and unpack that file).
/// </summary>
public static class Digits
{
    public const string FileName = "digits.csv.gz";
    public const int Side = 8;
    private const int Pixels = Side * Side, MaxValue = 16;
    /// <summary>Largest file read: the real one is 57 KB gzipped, 300 KB of text.</summary>
    private const long MaxBytes = 64L << 20;

    public static IReadOnlyList<string> Classes { get; } = Enumerable.Range(0, 10).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Where the file is looked for when no path is given, in order.</summary>
    public static IReadOnlyList<string> SearchPaths =>
    [
        Path.Combine(Downloader.CacheRoot, "datasets", "digits", FileName),
        "/usr/lib/python3/dist-packages/sklearn/datasets/data/" + FileName,
    ];

    /// <summary>Every image (N, 1, 8, 8) with its pixel counts scaled to [0, 1], and the labels (N).</summary>
    public static ImageClassificationData Load(string? path = null)
    {
        path ??= SearchPaths.FirstOrDefault(File.Exists) ?? throw new FileNotFoundException(
            $"the 8×8 digits ({FileName}) are not on this machine: looked in {string.Join(" and ", SearchPaths)}. Put scikit-learn's " +
            $"{FileName} there (Debian: apt-get download python3-sklearn; dpkg-deb -x python3-sklearn_*.deb DIR; it is in DIR{SearchPaths[1]}).");
        var lines = ReadText(path).Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0) throw new DataFormatException($"{path}: no images.");
        var pixels = new float[lines.Length * Pixels];
        var labels = new int[lines.Length];
        for (int i = 0; i < lines.Length; i++)
        {
            var fields = lines[i].Split(',');
            if (fields.Length != Pixels + 1)
                throw new DataFormatException($"{path}: line {i + 1} has {fields.Length} values; an image is {Pixels} pixels and a label.");
            for (int j = 0; j <= Pixels; j++)
            {
                // sklearn writes floats ("16.0") in some versions, integers in others.
                if (!double.TryParse(fields[j], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value != Math.Floor(value)
                    || value < 0 || value > (j < Pixels ? MaxValue : Classes.Count - 1))
                    throw new DataFormatException($"{path}: line {i + 1}, value {j + 1}: '{fields[j]}' is not " +
                        (j < Pixels ? $"a pixel count 0–{MaxValue}." : $"a label 0–{Classes.Count - 1}."));
                if (j < Pixels) pixels[i * Pixels + j] = (float)(value / MaxValue);
                else labels[i] = (int)value;
            }
        }
        return new ImageClassificationData(Tensor.FromArray(pixels, lines.Length, 1, Side, Side), Tensor.FromArray(labels), Classes);
    }

    /// <summary>The file's text, gunzipped if it is gzip (by its magic bytes, not its name); both sizes bounded.</summary>
    private static string ReadText(string path)
    {
        var bytes = BoundedFile.ReadAllBytes(path, MaxBytes, "the digits file");
        if (bytes.Length < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b) return Encoding.UTF8.GetString(bytes);
        using var output = new MemoryStream();
        try
        {
            using var gzip = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress);
            var buffer = new byte[1 << 16];
            int n;
            while ((n = gzip.Read(buffer)) > 0)
            {
                if (output.Length + n > MaxBytes) throw new DataFormatException($"{path}: more than {MaxBytes >> 20} MiB once decompressed; is it the digits file?");
                output.Write(buffer, 0, n);
            }
        }
        catch (InvalidDataException e)
        {
            throw new DataFormatException($"{path}: damaged gzip data ({e.Message}).");
        }
        return Encoding.UTF8.GetString(output.GetBuffer(), 0, (int)output.Length);
    }
}
