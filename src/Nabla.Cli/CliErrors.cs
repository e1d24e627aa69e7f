using System.CommandLine;
using Nabla.Data;
using Nabla.IO;
using Nabla.Training;
using Spectre.Console;

namespace Nabla.Cli;

/// <summary>A problem with the user's input the CLI reports in one line (exit code 1).</summary>
public sealed class CliException(string message) : Exception(ErrorText.OneLine(message));

public static class CliErrors
{
    /// <summary>Parses and runs the command; a known failure (bad data, bad checkpoint, bad argument) prints one
    /// clear line instead of a stack trace. NABLA_DEBUG=1 shows the trace.</summary>
    public static int Invoke(Command root, string[] args)
    {
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // One line per problem and a pointer to --help, rather than the whole help text.
            foreach (var error in parse.Errors) Console.Error.WriteLine($"error: {error.Message}");
            Console.Error.WriteLine($"Try '{CommandPath(parse)} --help'.");
            return 2;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("NABLA_DEBUG") != "1")
        {
            AnsiConsole.Console.Profile.Out.Writer.Flush();
            Console.Error.WriteLine($"error: {ErrorText.OneLine(Describe(e))}");
            return 1;
        }
    }

    /// <summary>The words that name the parsed command ("nabla train gpt").</summary>
    public static string CommandPath(ParseResult parse)
    {
        var path = new List<string>();
        for (var r = parse.CommandResult; r != null; r = r.Parent as System.CommandLine.Parsing.CommandResult) path.Insert(0, r.Command.Name);
        return string.Join(' ', path);
    }

    /// <summary>The message for a failure: the user's problem as the code that found it worded it (these
    /// messages name the file, tensor, line or option), or, for anything unexpected, that it is an internal
    /// error, so a bug is never mistaken for bad input.</summary>
    public static string Describe(Exception e)
    {
        var inner = e is AggregateException { InnerExceptions.Count: 1 } agg ? agg.InnerExceptions[0] : e;
        return inner switch
        {
            CliException or DataFormatException or CheckpointException or DownloadException or TrainingDivergedException or Nabla.Distributed.RanksDivergedException => inner.Message,
            // .NET's own file errors name the path; an end of stream names nothing, so it counts as a bug of the reader.
            IOException and not EndOfStreamException or UnauthorizedAccessException => inner.Message,
            // Thrown with a worded message by the library's argument checks (and its "not supported yet" limits, such as
            // a kernel a device lacks); subclasses (out of range, null) come from indexing or framework code and are bugs.
            _ when inner.GetType() == typeof(ArgumentException) || inner.GetType() == typeof(InvalidOperationException)
                || inner.GetType() == typeof(NotSupportedException) => inner.Message,
            OperationCanceledException => "cancelled.",
            _ => $"internal error: {inner.GetType().Name}: {inner.Message} (a bug in nabla; NABLA_DEBUG=1 shows the stack trace)",
        };
    }
}
