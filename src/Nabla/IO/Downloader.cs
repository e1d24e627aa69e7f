using System.Security.Cryptography;

namespace Nabla.IO;

/// <summary>A file to download: its name in the cache directory, where it lives, and the SHA-256 its content must have.</summary>
public sealed record RemoteFile(string Name, string Url, string? Sha256 = null);

/// <summary>A download that failed, stalled, was refused or did not match its checksum.</summary>
public sealed class DownloadException(string message, Exception? inner = null) : Exception(ErrorText.OneLine(message), inner);

/// <summary>
/// Downloads files into a cache directory. Every file must come with the SHA-256 of its content (pinned in
/// code or listed in a manifest): a file without one is refused rather than trusted, and one that does not
/// match is discarded. Names are plain file names, so a manifest cannot write outside the directory. A
/// download lands under a temporary name and is renamed into place only once verified, so an interrupted,
/// stalled or corrupt download never replaces a good file.
/// </summary>
public static class Downloader
{
    /// <summary>How long a download may go without receiving a byte before it is abandoned.</summary>
    public static readonly TimeSpan DefaultStallTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The cache root: NABLA_DATA, or ~/.cache/nabla.</summary>
    public static string CacheRoot => Environment.GetEnvironmentVariable("NABLA_DATA") is { Length: > 0 } dir
        ? dir
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "nabla");

    /// <summary>Checks what a download would need before any byte moves: a plain file name and a well-formed
    /// SHA-256. <paramref name="source"/> names where the entry came from (a manifest's path) in messages.</summary>
    public static void Validate(RemoteFile file, string source)
    {
        var name = file.Name;
        if (string.IsNullOrEmpty(name) || name is "." or ".." || name.IndexOfAny(['/', '\\', '\0']) >= 0 || Path.IsPathRooted(name)
            || name.Length > 255 || name.Any(char.IsControl))
            throw new DownloadException($"{source}: file name \"{name}\" is not a plain file name (no directories, \"..\" or absolute paths); it must stay inside the cache directory.");
        if (string.IsNullOrEmpty(file.Url) || !Uri.TryCreate(file.Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new DownloadException($"{source}: {name}: \"{file.Url}\" is not an http(s) URL.");
        if (file.Sha256 is not { Length: 64 } sha || !sha.All(Uri.IsHexDigit))
            throw new DownloadException(file.Sha256 is null
                ? $"{source}: {name} has no SHA-256; refusing to download a file that cannot be verified."
                : $"{source}: {name}: \"{file.Sha256}\" is not a SHA-256 (64 hexadecimal digits).");
    }

    /// <summary>Ensures <paramref name="file"/> is in <paramref name="directory"/> with the right content; returns its path.</summary>
    public static async Task<string> FetchAsync(RemoteFile file, string directory, HttpClient http,
        IProgress<(long Done, long? Total)>? progress = null, CancellationToken cancel = default, TimeSpan? stallTimeout = null)
    {
        Validate(file, file.Url);
        var expected = file.Sha256!;
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, file.Name);
        if (File.Exists(path) && Hash(path).Equals(expected, StringComparison.OrdinalIgnoreCase)) return path;

        var stall = stallTimeout ?? DefaultStallTimeout;
        var tmp = Path.Combine(directory, $".{file.Name}.{Guid.NewGuid():N}.part");
        using var watchdog = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        try
        {
            watchdog.CancelAfter(stall);
            using var response = await http.GetAsync(file.Url, HttpCompletionOption.ResponseHeadersRead, watchdog.Token);
            if (!response.IsSuccessStatusCode)
                throw new DownloadException($"{file.Url}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}.");
            long? total = response.Content.Headers.ContentLength;
            string actual;
            using (var sha = SHA256.Create())
            await using (var output = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            await using (var input = await response.Content.ReadAsStreamAsync(watchdog.Token))
            {
                var buffer = new byte[1 << 20];
                long done = 0;
                int n;
                watchdog.CancelAfter(stall);
                while ((n = await input.ReadAsync(buffer, watchdog.Token)) > 0)
                {
                    watchdog.CancelAfter(stall); // the clock restarts with every byte received
                    sha.TransformBlock(buffer, 0, n, null, 0);
                    await output.WriteAsync(buffer.AsMemory(0, n), cancel);
                    done += n;
                    progress?.Report((done, total));
                }
                if (total is { } t && done != t) throw new DownloadException($"{file.Url}: the connection closed after {done} of {t} bytes.");
                sha.TransformFinalBlock([], 0, 0);
                actual = Convert.ToHexStringLower(sha.Hash!);
                output.Flush(flushToDisk: true);
            }
            if (!actual.Equals(expected, StringComparison.OrdinalIgnoreCase))
                throw new DownloadException($"{file.Url}: SHA-256 mismatch: expected {expected}, got {actual}. The download is corrupt or the file changed; nothing was saved.");
            File.Move(tmp, path, overwrite: true);
            return path;
        }
        catch (OperationCanceledException e) when (!cancel.IsCancellationRequested)
        {
            throw new DownloadException($"{file.Url}: no data for {stall.TotalSeconds:0.#} s; the download stalled and was abandoned.", e);
        }
        catch (HttpRequestException e)
        {
            throw new DownloadException($"{file.Url}: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new DownloadException($"{file.Url}: {e.Message}", e);
        }
        finally
        {
            try { File.Delete(tmp); } catch (IOException) { }
        }
    }

    /// <summary>The SHA-256 of a file, in lower-case hex (as manifests give it).</summary>
    public static string Hash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
