using System.CommandLine;
using System.CommandLine.Help;
using Nabla.Cli.Commands;

namespace Nabla.Cli;

/// <summary>The `nabla` command tree. Program.cs runs it; tests call <see cref="Run"/> in-process.</summary>
public static class NablaCli
{
    public static Command Build()
    {
        // A plain Command named "nabla" (not RootCommand, which takes the assembly's name for help and errors).
        var root = new Command("nabla", "Nabla (∇): a deep-learning engine written from scratch in C#.")
        {
            new HelpOption(),
            new VersionOption(),
        };
        var train = new Command("train", "Train a model.");
        train.Subcommands.Add(MlpCommands.Train());
        train.Subcommands.Add(GptTrainCommand.Create());
        foreach (var vision in VisionCommands.TrainCommands()) train.Subcommands.Add(vision);
        train.Subcommands.Add(TextClassifierCommand.Create());
        train.Subcommands.Add(CharLstmCommand.Create());
        root.Subcommands.Add(train);
        root.Subcommands.Add(FinetuneCommand.Create());
        root.Subcommands.Add(LoraCommands.Create());
        root.Subcommands.Add(SweepCommand.Create());
        root.Subcommands.Add(CompareCommand.Create());
        var eval = MlpCommands.Eval();
        eval.Subcommands.Add(LanguageModelCommands.Perplexity());
        root.Subcommands.Add(eval);
        root.Subcommands.Add(MlpCommands.Predict());
        root.Subcommands.Add(LanguageModelCommands.Generate());
        root.Subcommands.Add(QuantizeCommand.Create());
        root.Subcommands.Add(LanguageModelCommands.Tokenize());
        root.Subcommands.Add(LanguageModelCommands.DataPrepare());
        root.Subcommands.Add(LanguageModelCommands.ModelFetch());
        root.Subcommands.Add(ClassifyCommand.Create());
        root.Subcommands.Add(ExportCommands.Create());
        root.Subcommands.Add(new Command("demo", "Demonstrations that tell a story with charts.") { AddingProblemCommand.Create() });
        root.Subcommands.Add(Bench());
        root.Subcommands.Add(DistributedCommands.Create());
        return root;
    }

    public static int Run(string[] args) => CliErrors.Invoke(Build(), args);

    /// <summary>`nabla bench ...`: the benchmark harness of bench/Nabla.Bench, arguments passed through.</summary>
    private static Command Bench()
    {
        var command = new Command("bench", "Benchmarks against PyTorch (and llama.cpp, ONNX Runtime) in the same run: gemm, gemm-steps, peak, gpt2, kernels, conv, vision, rnn, tokenizer, generate (`nabla bench help`).")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        command.SetAction(p => Nabla.Bench.BenchMain.Run(p.UnmatchedTokens.ToArray()));
        return command;
    }
}
