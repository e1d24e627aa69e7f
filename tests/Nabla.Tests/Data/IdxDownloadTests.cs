using System.IO.Compression;
using System.Security.Cryptography;
using Nabla.Data;
using Nabla.IO;
using Nabla.Tests.IO;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Data;

/// <summary>
/// Downloading an IDX dataset from a server on 127.0.0.1 (these machines have no internet): the official location
/// failing falls back to the next mirror, every file is checked against its pinned SHA-256, and the downloaded
/// directory loads. The four files are the Python-written fixtures.
/// </summary>
public class IdxDownloadTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nabla-idx-download-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Gzip(byte[] raw)
    {
        using var buffer = new MemoryStream();
        using (var zip = new GZipStream(buffer, CompressionLevel.Fastest)) zip.Write(raw);
        return buffer.ToArray();
    }

    [Fact]
    public async Task DownloadsFromTheFirstMirrorThatServesAndChecksEveryFile()
    {
        var images = File.ReadAllBytes(TestData.Fixture("data/images-idx3-ubyte.gz"));
        var labels = Gzip(File.ReadAllBytes(TestData.Fixture("data/labels-idx1-ubyte")));
        var files = new Dictionary<string, byte[]>
        {
            ["good/train-images-idx3-ubyte.gz"] = images, ["good/train-labels-idx1-ubyte.gz"] = labels,
            ["good/t10k-images-idx3-ubyte.gz"] = images, ["good/t10k-labels-idx1-ubyte.gz"] = labels,
        };
        using var server = new LocalHttpServer(LocalHttpServer.Files(files.GetValueOrDefault));
        string[] hashes = [.. new[] { images, labels, images, labels }.Select(b => Convert.ToHexStringLower(SHA256.HashData(b)))];
        var dataset = new IdxDataset("tiny", [server.Url + "missing/", server.Url + "good/"], hashes,
            [.. Enumerable.Range(0, 10).Select(i => i.ToString())], new Normalization([0.5f], [0.25f]));
        using var http = new HttpClient();

        var directory = await dataset.DownloadAsync(http, Path.Combine(_dir, "tiny"));
        var test = dataset.Load(DatasetSplit.Test, directory);
        var reference = ParityFixture.Get("data/idx_reference.safetensors");
        Assert.Equal(reference["images"].ToArray(), test.Images.ToArray());
        Assert.Equal(reference["labels"].ToIntArray(), test.Labels.ToIntArray());

        // A pin that does not match what the servers send: nothing is saved, and the error names the dataset and file.
        hashes[0] = new string('0', 64);
        var pinned = new IdxDataset("tiny", [server.Url + "good/"], hashes, dataset.Classes, dataset.Statistics);
        var e = await Assert.ThrowsAsync<DownloadException>(() => pinned.DownloadAsync(http, Path.Combine(_dir, "pinned")));
        Assert.StartsWith("tiny: could not download train-images-idx3-ubyte.gz: ", e.Message);
        Assert.False(File.Exists(Path.Combine(_dir, "pinned", "train-images-idx3-ubyte.gz")));
    }

    [Fact]
    public void CacheFollowsTheDownloaderAndDescriptionsAreChecked()
    {
        Assert.Equal(Path.Combine(Downloader.CacheRoot, "datasets", "fashion-mnist"), IdxDataset.FashionMnist.CacheDirectory);
        Assert.Throws<ArgumentException>(() => new IdxDataset("x", ["http://host/no-slash"], [.. Enumerable.Repeat(new string('a', 64), 4)], ["a"], new Normalization([0f], [1f])));
        Assert.Throws<ArgumentException>(() => new IdxDataset("x", ["http://host/"], ["abc"], ["a"], new Normalization([0f], [1f])));
    }
}
