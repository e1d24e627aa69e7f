using Nabla.Data;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Data;

/// <summary>
/// Image files decoded by ImageSharp against PIL + torchvision's transforms (tests/reference/make_data_fixtures.py):
/// a PNG exactly, a grey PNG exactly, a JPEG within a couple of levels (decoders may round their IDCT differently),
/// and torchvision's ImageNet preprocessing (Resize, CenterCrop, ToTensor, Normalize) within what two bilinear
/// resamplers differ by.
/// </summary>
public class ImageFileTests
{
    private static ParityFixture Reference => ParityFixture.Get("data/images_reference.safetensors");
    private static string FixtureFile(string name) => TestData.Fixture(Path.Combine("data", name));

    [Fact]
    public void PngDecodesExactlyAsTorchvisionToTensor()
    {
        Close.Tensor("photo.png", Reference["png"], ImageFile.Load(FixtureFile("photo.png")), rtol: 0, atol: 1e-7);
        Close.Tensor("grey.png", Reference["grey"], ImageFile.Load(FixtureFile("grey.png"), channels: 1), rtol: 0, atol: 1e-7);
    }

    [Fact]
    public void JpegDecodesWithinTwoLevels()
    {
        Close.Tensor("photo.jpg", Reference["jpg"], ImageFile.Load(FixtureFile("photo.jpg")), rtol: 0, atol: 2.5 / 255);
    }

    [Fact]
    public void ImageNetPreprocessingMatchesTorchvision()
    {
        var image = ImageFile.Load(FixtureFile("photo.png"), resize: 20, centerCrop: 16, normalization: Normalization.ImageNet);
        // One level in [0, 1] units is 1/255; after dividing by std ≈ 0.22 it is ≈ 0.018.
        Close.Tensor("photo.png resized", Reference["png_imagenet"], image, rtol: 0, atol: 3 * 0.018);
        var mean = Reference["png_imagenet"].Sub(image).Abs().Mean().Item();
        Assert.True(mean < 0.018, $"mean difference {mean} is more than one grey level");
    }

    [Fact]
    public void FilesThatAreNotImagesAreOneErrorNamingThem()
    {
        var path = FixtureFile("floats.idx");
        var e = Assert.Throws<DataFormatException>(() => ImageFile.Load(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains("a 99×99 centre crop does not fit the 40×30 image",
            Assert.Throws<ArgumentException>(() => ImageFile.Load(FixtureFile("photo.png"), centerCrop: 99)).Message);
        Assert.StartsWith("/nonexistent.png: cannot read", Assert.Throws<DataFormatException>(() => ImageFile.Load("/nonexistent.png")).Message);
    }
}
