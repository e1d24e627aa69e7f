using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Nabla.IO;

/// <summary>An input file that cannot be read as asked: missing, a directory, a device or pipe, unreadable, or
/// larger than the reader allows. The message starts with the path.</summary>
public sealed class InputFileException(string message, Exception? inner = null) : IOException(ErrorText.OneLine(message), inner);

/// <summary>
/// Opens and reads input files with a size cap, so that a path to <c>/dev/zero</c>, a FIFO or a directory is an
/// error naming the path instead of a hang or an out-of-memory crash. The readers of user-supplied files go
/// through here; <c>what</c> in the methods below names the file's role in messages ("a run configuration",
/// "a safetensors file").
/// </summary>
public static partial class BoundedFile
{
    /// <summary>Cap for small JSON and text files: configs, vocabularies, manifests, run state.</summary>
    public const long SmallFileLimit = 64L << 20;

    /// <summary>Cap for text corpora read whole (a .NET string holds at most about a billion characters).</summary>
    public const long TextFileLimit = 512L << 20;

    /// <summary>Opens a regular file for reading; anything else (missing, directory, pipe, socket) is an error.</summary>
    public static FileStream OpenRead(string path, string what)
    {
        if (Directory.Exists(path)) throw new InputFileException($"{path}: is a directory, expected {what}.");
        if (!File.Exists(path)) throw new InputFileException($"{path}: file not found (expected {what}).");
        FileStream stream;
        try
        {
            stream = new FileStream(OpenHandleWithoutBlocking(path), FileAccess.Read, bufferSize: 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputFileException($"{path}: cannot read {what} ({e.Message}).", e);
        }
        // Pipes, sockets and terminals cannot seek; character devices such as /dev/zero can, but report a size
        // of 0 and then deliver data without end. Either way the size means nothing and a read may never stop.
        if (!stream.CanSeek || stream.Length == 0 && DeliversData(stream))
        {
            stream.Dispose();
            throw new InputFileException($"{path}: not a regular file (a pipe or device), expected {what}.");
        }
        return stream;
    }

    private static bool DeliversData(FileStream stream)
    {
        try
        {
            bool data = stream.ReadByte() >= 0;
            stream.Position = 0;
            return data;
        }
        catch (IOException)
        {
            return true;
        }
    }

    /// <summary>The whole content, at most <paramref name="maxBytes"/> bytes; only the bytes the file had when it
    /// was opened are read.</summary>
    public static byte[] ReadAllBytes(string path, long maxBytes, string what)
    {
        using var stream = OpenRead(path, what);
        long length = stream.Length;
        if (length > maxBytes)
            throw new InputFileException($"{path}: {FormatBytes(length)}, too large for {what} (limit {FormatBytes(maxBytes)}); is it the right file?");
        var content = new byte[length];
        int read = 0;
        try
        {
            int n;
            while (read < content.Length && (n = stream.Read(content, read, content.Length - read)) > 0) read += n;
        }
        catch (IOException e)
        {
            throw new InputFileException($"{path}: cannot read {what} ({e.Message}).", e);
        }
        if (read < content.Length) throw new InputFileException($"{path}: the file shrank from {length} to {read} bytes while being read.");
        return content;
    }

    /// <summary>The whole content decoded as UTF-8 (a byte-order mark is skipped), at most <paramref name="maxBytes"/> bytes.</summary>
    public static string ReadAllText(string path, long maxBytes, string what)
    {
        var bytes = ReadAllBytes(path, maxBytes, what);
        var span = bytes.AsSpan();
        if (span.StartsWith(Encoding.UTF8.Preamble)) span = span[Encoding.UTF8.Preamble.Length..];
        return Encoding.UTF8.GetString(span);
    }

    private static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.#} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.#} MiB",
        >= 1L << 10 => $"{bytes / (double)(1L << 10):0.#} KiB",
        _ => $"{bytes} bytes",
    };

    /// <summary>
    /// Opening a FIFO for reading blocks until some process opens it for writing, which may be never. On Linux
    /// the file is opened with O_NONBLOCK, which returns at once for a FIFO (it is then refused as not
    /// seekable) and changes nothing for regular files; elsewhere it is opened normally.
    /// </summary>
    private static SafeFileHandle OpenHandleWithoutBlocking(string path)
    {
        if (!OperatingSystem.IsLinux()) return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        const int ReadOnly = 0, NonBlocking = 0x800, CloseOnExec = 0x80000; // the same on x86-64 and arm64 Linux
        int fd = Open(path, ReadOnly | NonBlocking | CloseOnExec);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException(Marshal.GetPInvokeErrorMessage(errno));
        }
        return new SafeFileHandle((IntPtr)fd, ownsHandle: true);
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);
}
