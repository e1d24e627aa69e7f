using System.CommandLine;

namespace Nabla.Cli.Commands;

/// <summary>`nabla finetune`: adapts a trained model to new data. Each model family is a subcommand.</summary>
public static class FinetuneCommand
{
    /// <summary>One line per model family.</summary>
    private static IEnumerable<Command> Subcommands() =>
    [
        FinetuneGptCommand.Create(),
        FinetuneResNetCommand.Create(),
    ];

    public static Command Create()
    {
        var command = new Command("finetune", "Fine-tune a trained model on new data (GPT-2: a LoRA adapter or every weight; ResNet: new layers on a frozen body).");
        foreach (var subcommand in Subcommands()) command.Subcommands.Add(subcommand);
        return command;
    }
}
