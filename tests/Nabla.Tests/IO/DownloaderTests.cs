using System.Diagnostics;
using System.Security.Cryptography;
using Nabla.IO;

namespace Nabla.Tests.IO;

public class DownloaderTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nabla-download-" + Guid.NewGuid().ToString("N"));
    private static readonly byte[] Content = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7)).ToArray();
    private static readonly string ContentSha = Convert.ToHexStringLower(SHA256.HashData(Content));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static Task<string> Fetch(RemoteFile file, string dir, TimeSpan? stall = null)
    {
        var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        return Downloader.FetchAsync(file, dir, http, stallTimeout: stall);
    }

    [Fact]
    public async Task DownloadsAndVerifiesThenReusesTheCachedFile()
    {
        int requests = 0;
        using var server = new LocalHttpServer(LocalHttpServer.Files(name => { Interlocked.Increment(ref requests); return name == "w" ? Content : null; }));
        var file = new RemoteFile("w.bin", server.Url + "w", ContentSha);
        var path = await Fetch(file, _dir);
        Assert.Equal(Content, File.ReadAllBytes(path));
        await Fetch(file, _dir);
        Assert.Equal(1, requests); // the second call found the verified file in place
        Assert.Equal(["w.bin"], Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public async Task AStalledDownloadFailsNamingTheUrlAndKeepsTheGoodFile()
    {
        var goodBytes = "previous good content"u8.ToArray();
        Directory.CreateDirectory(_dir);
        File.WriteAllBytes(Path.Combine(_dir, "w.bin"), goodBytes);
        using var stop = new CancellationTokenSource();
        using var server = new LocalHttpServer(async (_, response) =>
        {
            response.ContentLength64 = Content.Length;
            await response.OutputStream.WriteAsync(Content.AsMemory(0, 1000));
            await response.OutputStream.FlushAsync();
            await Task.Delay(Timeout.Infinite, stop.Token); // then nothing, until the test ends
        });
        var clock = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<DownloadException>(() => Fetch(new RemoteFile("w.bin", server.Url + "w", ContentSha), _dir, TimeSpan.FromSeconds(1)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
        Assert.Contains(server.Url + "w", e.Message);
        Assert.Contains("stalled", e.Message);
        Assert.Equal(goodBytes, File.ReadAllBytes(Path.Combine(_dir, "w.bin")));
        Assert.Equal(["w.bin"], Directory.GetFiles(_dir).Select(Path.GetFileName));
        stop.Cancel();
    }

    [Fact]
    public async Task ACutConnectionOrAWrongHashLeavesNothingBehind()
    {
        using var server = new LocalHttpServer(async (name, response) =>
        {
            if (name == "cut")
            {
                response.ContentLength64 = Content.Length;
                await response.OutputStream.WriteAsync(Content.AsMemory(0, 1000));
                response.Abort();
                return;
            }
            response.ContentLength64 = Content.Length;
            await response.OutputStream.WriteAsync(Content);
        });
        await Assert.ThrowsAsync<DownloadException>(() => Fetch(new RemoteFile("a.bin", server.Url + "cut", ContentSha), _dir));
        var e = await Assert.ThrowsAsync<DownloadException>(() => Fetch(new RemoteFile("b.bin", server.Url + "whole", new string('0', 64)), _dir));
        Assert.Contains("SHA-256 mismatch", e.Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Theory]
    [InlineData("../x")]
    [InlineData("/tmp/x")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData("")]
    public async Task NamesMustBePlainFileNames(string name)
    {
        var e = await Assert.ThrowsAsync<DownloadException>(() => Fetch(new RemoteFile(name, "http://127.0.0.1:9/x", ContentSha), _dir));
        Assert.Contains("not a plain file name", e.Message);
        Assert.False(Directory.Exists(_dir));
    }

    [Fact]
    public async Task AFileWithoutAHashIsRefusedBeforeAnyRequest()
    {
        var e = await Assert.ThrowsAsync<DownloadException>(() => Fetch(new RemoteFile("w.bin", "http://127.0.0.1:9/w"), _dir));
        Assert.Contains("has no SHA-256", e.Message);
    }
}
