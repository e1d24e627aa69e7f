namespace Nabla.Text;

/// <summary>
/// A tokenizer file that is missing, unreadable or malformed. The message starts with the file's path and,
/// where it applies, the line (<c>path:line: problem</c>), like a compiler's.
/// </summary>
public sealed class TokenizerFileException(string message, Exception? inner = null) : IOException(message, inner);
