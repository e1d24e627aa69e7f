using System.Text.Json;

namespace Nabla.Text;

/// <summary>
/// A tokenizer file that is missing, unreadable or malformed. The message starts with the file's path and,
/// where it applies, the line (<c>path:line: problem</c>), like a compiler's.
/// </summary>
public sealed class TokenizerFileException(string message, Exception? inner = null) : IOException(IO.ErrorText.OneLine(message), inner)
{
    /// <summary>A problem at a byte offset of a file's content, reported with its 1-based line.</summary>
    internal static TokenizerFileException At(string path, ReadOnlySpan<byte> content, long offset, string problem)
    {
        int line = content[..(int)Math.Min(offset, content.Length)].Count((byte)'\n') + 1;
        return new TokenizerFileException($"{path}:{line}: {problem}.");
    }

    /// <summary>Fails, naming the line, unless <paramref name="content"/> is valid UTF-8 (JSON readers throw a bare
    /// InvalidOperationException on a string with invalid bytes).</summary>
    internal static void EnsureUtf8(string path, ReadOnlySpan<byte> content)
    {
        var chars = new char[Math.Min(content.Length, 1 << 16)];
        int at = 0;
        while (at < content.Length)
        {
            var status = System.Text.Unicode.Utf8.ToUtf16(content[at..], chars, out int read, out _, replaceInvalidSequences: false);
            if (status == System.Buffers.OperationStatus.InvalidData || status == System.Buffers.OperationStatus.NeedMoreData)
                throw At(path, content, at + read, $"invalid UTF-8 at byte {at + read}");
            at += read;
        }
    }

    /// <summary>A JSON syntax error, reported with its 1-based line and column.</summary>
    internal static TokenizerFileException CorruptJson(string path, JsonException error)
    {
        // The reader's message ends with its own 0-based "LineNumber: n | BytePositionInLine: m."; the 1-based
        // line leads our message instead, so drop it to avoid two different line numbers.
        int position = error.Message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        string problem = position >= 0 ? error.Message[..position] : error.Message;
        return new TokenizerFileException(
            $"{path}:{error.LineNumber + 1}: corrupt JSON at byte {error.BytePositionInLine + 1} of the line: {problem}", error);
    }
}
