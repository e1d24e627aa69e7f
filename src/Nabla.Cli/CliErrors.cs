using System.CommandLine;
using Nabla.Data;
using Nabla.IO;
using Nabla.Training;
using Spectre.Console;

namespace Nabla.Cli;

/// <summary>A problem with the user's input the CLI reports in one line (exit code 1).</summary>
public sealed class CliException(string message) : Exception(message);

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
            var path = new List<string>();
            for (var r = parse.CommandResult; r != null; r = r.Parent as System.CommandLine.Parsing.CommandResult) path.Insert(0, r.Command.Name);
            Console.Error.WriteLine($"Try '{string.Join(' ', path)} --help'.");
            return 2;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("NABLA_DEBUG") != "1")
        {
            var inner = e is AggregateException { InnerExceptions.Count: 1 } agg ? agg.InnerExceptions[0] : e;
            string message = inner switch
            {
                CliException or DataFormatException or CheckpointException or TrainingDivergedException => inner.Message,
                ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException => inner.Message,
                _ => $"{inner.GetType().Name}: {inner.Message} (set NABLA_DEBUG=1 for the stack trace)",
            };
            AnsiConsole.Console.Profile.Out.Writer.Flush();
            Console.Error.WriteLine($"error: {message}");
            return 1;
        }
    }
}
