using Nabla.Data;

namespace Nabla.Tests.Data;

/// <summary>The 8×8 digits (scikit-learn's digits.csv.gz, fetched by tests/data/fetch-sklearn-data.sh), image folders,
/// and the per-class splits fine-tuning uses.</summary>
public class SmallImageDatasetTests
{
    [Fact]
    public void DigitsHaveScikitLearnsCountsAndPixelScale()
    {
        var digits = Digits.Load(TestData.File("sklearn/digits.csv.gz"));
        Assert.Equal([1797, 1, 8, 8], digits.Images.Shape.ToArray());
        // Per-class counts as scikit-learn's documentation of load_digits lists them.
        var counts = digits.Labels.ToIntArray().GroupBy(l => l).OrderBy(g => g.Key).Select(g => g.Count());
        Assert.Equal([178, 182, 177, 183, 181, 182, 181, 179, 174, 180], counts);
        // Pixel counts 0..16 scaled to [0, 1]: multiples of 1/16.
        Assert.All(digits.Images.ToArray(), p => Assert.True(p >= 0 && p <= 1 && p * 16 == MathF.Round(p * 16)));
    }

    [Fact]
    public void MalformedDigitsFilesNameTheLine()
    {
        var path = Path.Combine(Path.GetTempPath(), $"nabla-digits-{Guid.NewGuid():N}.csv");
        try
        {
            var good = string.Join(',', Enumerable.Repeat("0", 64)) + ",3";
            File.WriteAllText(path, good + "\n" + string.Join(',', Enumerable.Repeat("0", 63)) + ",17,3\n");
            Assert.Contains("line 2, value 64: '17' is not a pixel count", Assert.Throws<DataFormatException>(() => Digits.Load(path)).Message);
            File.WriteAllText(path, good + "\n1,2,3\n");
            Assert.Contains("line 2 has 3 values", Assert.Throws<DataFormatException>(() => Digits.Load(path)).Message);
            File.WriteAllBytes(path, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]); // a deflate block of the reserved type 3
            Assert.Contains("damaged gzip", Assert.Throws<DataFormatException>(() => Digits.Load(path)).Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void ImageFolderHasAClassPerSubfolder()
    {
        var root = Directory.CreateTempSubdirectory("nabla-image-folder-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "b-grey"));
            Directory.CreateDirectory(Path.Combine(root, "a-photo", "nested"));
            var data = Path.Combine(AppContext.BaseDirectory, "Fixtures", "data");
            File.Copy(Path.Combine(data, "photo.png"), Path.Combine(root, "a-photo", "1.png"));
            File.Copy(Path.Combine(data, "photo.jpg"), Path.Combine(root, "a-photo", "nested", "2.JPG"));
            File.Copy(Path.Combine(data, "grey.png"), Path.Combine(root, "b-grey", "1.png"));
            File.WriteAllText(Path.Combine(root, "b-grey", "notes.txt"), "not an image");
            var folder = ImageFolder.Load(root, size: 16, channels: 1);
            Assert.Equal(["a-photo", "b-grey"], folder.Classes);
            Assert.Equal([3, 1, 16, 16], folder.Images.Shape.ToArray());
            Assert.Equal([0, 0, 1], folder.Labels.ToIntArray());
            // The images are the files themselves, resized: the grey one as ImageFile reads it.
            var grey = ImageFile.Load(Path.Combine(data, "grey.png"), resize: 16, centerCrop: 16, channels: 1).ToArray();
            Assert.Equal(grey, folder.Images.Narrow(0, 2, 1).ToArray());

            Directory.CreateDirectory(Path.Combine(root, "c-empty"));
            Assert.Contains("no image files for class 'c-empty'", Assert.Throws<DataFormatException>(() => ImageFolder.Load(root, 16)).Message);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public void HoldOutAndFirstPerClassKeepEveryClassBalanced()
    {
        // Labels 0,1,0,1,... and each image's value its index, so the selected rows can be read back.
        var images = Tensor.FromArray(Enumerable.Range(0, 20).Select(i => (float)i).ToArray(), 20, 1, 1, 1);
        var data = new ImageClassificationData(images, Tensor.FromArray(Enumerable.Range(0, 20).Select(i => i % 2).ToArray()), ["even", "odd"]);
        var (train, test) = data.HoldOut(5);
        Assert.Equal([8, 9, 18, 19], test.Images.ToArray().Select(v => (int)v)); // the 5th and 10th of each class
        Assert.Equal(16, train.Count);
        Assert.Equal([0, 1, 2, 3, 4, 5], train.FirstPerClass(3).Images.ToArray().Select(v => (int)v));
        Assert.Equal(train.Labels.ToIntArray(), train.FirstPerClass(100).Labels.ToIntArray());
    }
}
