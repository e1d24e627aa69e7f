using System.Text.Json;

namespace Nabla.IO;

/// <summary>Wording shared by the readers' error messages, which must stay on one line.</summary>
public static class ErrorText
{
    /// <summary>The message on one line: line breaks and other control characters (which a parser may quote
    /// from the damaged input) are dropped, line breaks become spaces.</summary>
    public static string OneLine(string message)
    {
        var joined = string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return string.Concat(joined.Where(c => !char.IsControl(c)));
    }

    /// <summary>A JSON parser's complaint, on one line, with the 1-based line where it stopped.</summary>
    public static string Json(JsonException e)
    {
        string message = e.Message;
        int position = message.IndexOf(" Path: ", StringComparison.Ordinal);
        if (position < 0) position = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (position >= 0) message = message[..position];
        return OneLine(e.LineNumber is { } line ? $"line {line + 1}: {message.TrimEnd('.', ' ')}" : message.TrimEnd('.', ' '));
    }
}
