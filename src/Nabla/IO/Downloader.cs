using System.Security.Cryptography;

namespace Nabla.IO;

/// <summary>A file to download: where it lives and, when known, the SHA-256 of its content.</summary>
public sealed record RemoteFile(string Name, string Url, string? Sha256 = null);

/// <summary>A download that failed or did not match its checksum.</summary>
public sealed class DownloadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Downloads files into a cache directory and checks them: against the pinned SHA-256 when there is one,
/// otherwise against the SHA-256 the server advertises for large files (Hugging Face's X-Linked-ETag),
/// otherwise recording the hash it saw (in NAME.sha256 beside the file) so later uses can be checked. Files
/// land through a temporary name, so an interrupted download never looks complete.
/// </summary>
public static class Downloader
{
    /// <summary>The cache root: NABLA_DATA, or ~/.cache/nabla.</summary>
    public static string CacheRoot => Environment.GetEnvironmentVariable("NABLA_DATA") is { Length: > 0 } dir
        ? dir
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "nabla");

    /// <summary>Ensures <paramref name="file"/> is in <paramref name="directory"/> with the right content; returns its path.</summary>
    public static async Task<string> FetchAsync(RemoteFile file, string directory, HttpClient http,
        IProgress<(long Done, long? Total)>? progress = null, CancellationToken cancel = default)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, file.Name);
        var sidecar = path + ".sha256";
        if (File.Exists(path))
        {
            var expected = file.Sha256 ?? (File.Exists(sidecar) ? (await File.ReadAllTextAsync(sidecar, cancel)).Trim() : null);
            if (expected != null && Hash(path).Equals(expected, StringComparison.OrdinalIgnoreCase)) return path;
        }
        var tmp = path + ".part";
        string actual;
        try
        {
            using var response = await http.GetAsync(file.Url, HttpCompletionOption.ResponseHeadersRead, cancel);
            if (!response.IsSuccessStatusCode)
                throw new DownloadException($"{file.Url}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}.");
            string? advertised = null;
            foreach (var header in new[] { "X-Linked-ETag", "ETag" })
                if (response.Headers.TryGetValues(header, out var values))
                {
                    var v = values.First().Trim('"');
                    if (v.Length == 64 && v.All(Uri.IsHexDigit)) { advertised = v; break; }
                }
            long? total = response.Content.Headers.ContentLength;
            using (var sha = SHA256.Create())
            await using (var output = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            await using (var input = await response.Content.ReadAsStreamAsync(cancel))
            {
                var buffer = new byte[1 << 20];
                long done = 0;
                int n;
                while ((n = await input.ReadAsync(buffer, cancel)) > 0)
                {
                    sha.TransformBlock(buffer, 0, n, null, 0);
                    await output.WriteAsync(buffer.AsMemory(0, n), cancel);
                    done += n;
                    progress?.Report((done, total));
                }
                if (total is { } t && done != t) throw new DownloadException($"{file.Url}: the connection closed after {done} of {t} bytes.");
                sha.TransformFinalBlock([], 0, 0);
                actual = Convert.ToHexStringLower(sha.Hash!);
            }
            var expected = file.Sha256 ?? advertised;
            if (expected != null && !actual.Equals(expected, StringComparison.OrdinalIgnoreCase))
                throw new DownloadException($"{file.Url}: SHA-256 mismatch: expected {expected}, got {actual}. The download is corrupt or the file changed; nothing was saved.");
        }
        catch (HttpRequestException e)
        {
            File.Delete(tmp);
            throw new DownloadException($"{file.Url}: {e.Message}", e);
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
        File.Move(tmp, path, overwrite: true);
        AtomicFile.WriteAllText(sidecar, actual + "\n");
        return path;
    }

    public static string Hash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
