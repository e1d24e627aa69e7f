using System.CommandLine;

namespace Nabla.Cli.Commands;

/// <summary>`nabla finetune`: adapts a trained model to new data. Each model family is a subcommand.</summary>
public static class FinetuneCommand
{
    /// <summary>One line per model family.</summary>
    private static IEnumerable<Command> Subcommands() =>
    [
        FinetuneGptCommand.Create(),
    ];

    public static Command Create()
    {
        var command = new Command("finetune", "Fine-tune a trained model on new data (a LoRA adapter or every weight).");
        foreach (var subcommand in Subcommands()) command.Subcommands.Add(subcommand);
        return command;
    }
}
