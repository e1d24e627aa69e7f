using System.IO.Compression;
using Nabla.Data;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Data;

/// <summary>
/// The IDX reader against files written by tests/reference/make_data_fixtures.py following the format's definition
/// (raw and gzip; unsigned bytes, float32, int16), against Debian's Fashion-MNIST read by numpy, and on damaged
/// files: every one is a single error naming the file, raised before a large allocation.
/// </summary>
public class IdxTests : IDisposable
{
    private static ParityFixture Reference => ParityFixture.Get("data/idx_reference.safetensors");
    private static string FixtureFile(string name) => TestData.Fixture(Path.Combine("data", name));
    private readonly string _dir = Directory.CreateTempSubdirectory("nabla-idx-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("images-idx3-ubyte")]
    [InlineData("images-idx3-ubyte.gz")]
    public void ImagesAndLabelsMatchTheWriter(string file)
    {
        var images = Idx.ReadImages(FixtureFile(file));
        Assert.Equal([3, 1, 4, 5], images.Shape.ToArray());
        Assert.Equal(Reference["images"].ToArray(), images.ToArray());
        Assert.Equal(Reference["labels"].ToIntArray(), Idx.ReadLabels(FixtureFile("labels-idx1-ubyte")).ToIntArray());
    }

    [Theory]
    [InlineData("floats.idx", IdxType.Float32, new[] { 2, 3, 4 }, "floats")]
    [InlineData("shorts.idx.gz", IdxType.Int16, new[] { 5 }, "shorts")]
    public void OtherElementTypesAreBigEndian(string file, IdxType type, int[] shape, string reference)
    {
        var array = Idx.Read(FixtureFile(file));
        Assert.Equal(type, array.Type);
        Assert.Equal(shape, array.Shape);
        Assert.Equal(Reference[reference].ToArray(), Enumerable.Range(0, array.Count).Select(i => (float)array[i]).ToArray());
    }

    [FashionMnistFact]
    public void DebiansFashionMnistTestSplitMatchesNumpy()
    {
        var reference = ParityFixture.Get("data/fashion_mnist_reference.safetensors");
        var test = IdxDataset.FashionMnist.Load(DatasetSplit.Test);
        Assert.Equal([10000, 1, 28, 28], test.Images.Shape.ToArray());
        Assert.Equal(reference["labels"].ToIntArray(), test.Labels.ToIntArray());
        var sums = test.Images.Sum([1, 2, 3]).Mul(255f).ToArray();
        Close.Floats("pixel sums", reference["pixel_sums"].ToArray(), sums, rtol: 1e-5, atol: 1e-2);
        Assert.Equal(reference["image_0"].ToArray(), test.Images.Select(0, 0).Contiguous().ToArray());
        Assert.Equal(reference["image_9999"].ToArray(), test.Images.Select(0, 9999).Contiguous().ToArray());
        Assert.Equal(10, test.Classes.Count);
    }

    private string Write(string name, byte[] bytes, bool gzip = false)
    {
        var path = Path.Combine(_dir, name);
        if (!gzip) File.WriteAllBytes(path, bytes);
        else
        {
            using var file = File.Create(path);
            using var zip = new GZipStream(file, CompressionLevel.Fastest);
            zip.Write(bytes);
        }
        return path;
    }

    private static byte[] Header(byte type, params int[] dims)
    {
        var bytes = new List<byte> { 0, 0, type, (byte)dims.Length };
        foreach (var d in dims) bytes.AddRange(BitConverter.GetBytes(d).Reverse());
        return bytes.ToArray();
    }

    public static TheoryData<string, byte[], bool, string> DamagedFiles() => new()
    {
        { "empty", [], false, "too short for an IDX header" },
        { "text", "hello world\n"u8.ToArray(), false, "not an IDX file (magic 0x68656C6C" },
        { "rank0", [0, 0, 8, 0], false, "not an IDX file" },
        { "unknown-type", [0, 0, 7, 1, 0, 0, 0, 1, 5], false, "not an IDX file" },
        { "header-cut", [0, 0, 8, 3, 0, 0], false, "cannot hold the header of a 3-dimensional IDX array" },
        { "negative", [.. Header(8, 2, -1)], false, "dimension 1 has negative size -1" },
        { "claims-gigabytes", [.. Header(8, 60000, 28000, 28000), 1, 2, 3], false, "but the file holds 3 bytes of data" },
        { "overflowing-dims", [.. Header(0x0E, int.MaxValue, int.MaxValue, int.MaxValue, int.MaxValue)], false, "but the file holds 0 bytes of data" },
        { "short-data", [.. Header(8, 2, 2), 1, 2, 3], false, "(4 bytes) but the file holds 3 bytes" },
        { "extra-data", [.. Header(8, 2), 1, 2, 3], false, "(2 bytes) but the file holds 3 bytes" },
        { "gzip-short-data", [.. Header(8, 2, 2), 1, 2, 3], true, "(4 bytes) but the file holds 3 bytes" },
    };

    [Theory]
    [MemberData(nameof(DamagedFiles))]
    public void DamagedFilesAreOneErrorNamingTheFile(string name, byte[] bytes, bool gzip, string expected)
    {
        var path = Write(name, bytes, gzip);
        var e = Assert.Throws<DataFormatException>(() => Idx.Read(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void GzipTrailersAndStreamsAreChecked()
    {
        var good = File.ReadAllBytes(FixtureFile("images-idx3-ubyte.gz"));
        // A trailer claiming 4 GiB for a 95-byte file is refused before decompressing anything.
        var lying = good.ToArray();
        BitConverter.GetBytes(uint.MaxValue).CopyTo(lying, lying.Length - 4);
        Assert.Contains("the gzip trailer claims 4294967295 bytes", Assert.Throws<DataFormatException>(() => Idx.Read(Write("lying.gz", lying))).Message);
        // A trailer that agrees with the header but a stream that ends early.
        var cut = good[..(good.Length / 2)].Concat(good[^8..]).ToArray();
        var e = Assert.Throws<DataFormatException>(() => Idx.Read(Write("cut.gz", cut)));
        Assert.StartsWith(Path.Combine(_dir, "cut.gz") + ": ", e.Message);
        Assert.StartsWith(Path.Combine(_dir, "missing") + ": file not found", Assert.Throws<DataFormatException>(() => Idx.Read(Path.Combine(_dir, "missing"))).Message);
    }

    [Fact]
    public void ImagesAndLabelsMustHaveTheirShapes()
    {
        Assert.Contains("expected images, (count, rows, columns) unsigned bytes", Assert.Throws<DataFormatException>(() => Idx.ReadImages(FixtureFile("floats.idx"))).Message);
        Assert.Contains("expected labels", Assert.Throws<DataFormatException>(() => Idx.ReadLabels(FixtureFile("images-idx3-ubyte"))).Message);
    }

    [Fact]
    public void DatasetDirectoriesAreCheckedAndDownloadsArePinned()
    {
        var e = Assert.Throws<DataFormatException>(() => IdxDataset.Mnist.Load(DatasetSplit.Train, _dir));
        Assert.Equal($"{_dir}: no train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (or .gz) for mnist.", e.Message);
        foreach (var dataset in new[] { IdxDataset.Mnist, IdxDataset.FashionMnist })
        {
            Assert.Equal(4, dataset.Files.Count);
            Assert.All(dataset.Files, f => Assert.Matches("^[0-9a-f]{64}$", f.Sha256!));
        }
        Assert.StartsWith("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", IdxDataset.FashionMnist.Files[0].Url);
    }
}
