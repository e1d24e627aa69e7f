using System.CommandLine;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Quantization;

namespace Nabla.Cli.Commands;

/// <summary>`nabla lora merge`: folds a LoRA adapter into its base model's weights.</summary>
public static class LoraCommands
{
    public static Command Create()
    {
        var lora = new Command("lora", "Work with LoRA adapters (PEFT's layout).");
        lora.Subcommands.Add(Merge());
        return lora;
    }

    private static Command Merge()
    {
        var model = new Option<string>("--model") { Description = "The base model the adapter was trained on (Hugging Face GPT-2 directory or run of `nabla train gpt`).", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "The adapter: a directory with adapter_model.safetensors and adapter_config.json (e.g. a `nabla finetune gpt` run).", Required = true };
        var output = new Option<string>("--out") { Description = "New directory for the merged model (a Hugging Face GPT-2 directory with the base's tokenizer).", Required = true };
        var command = new Command("merge", "Fold a LoRA adapter into the base weights (W + B·A·alpha/r) and save a plain model that `nabla generate --model` loads.")
        {
            model, adapter, output,
        };
        command.SetAction(p =>
        {
            var outDir = p.GetValue(output)!;
            if (File.Exists(outDir) || (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any()))
                throw new CliException($"--out {outDir} already exists and is not an empty directory; the merged model needs a new one.");
            var (gpt, tokenizer) = Gpt2ModelFiles.Load(p.GetValue(model)!, dequantizeGguf: true);
            if (Gpt2Quantization.FormatOf(gpt) is { } format)
                throw new CliException($"--model {p.GetValue(model)} is quantised ({format.Name()}); merge the adapter into the float model (then `nabla quantize` the result).");
            var (config, summary) = Lora.LoadAdapter(gpt, p.GetValue(adapter)!);
            Lora.MergeAndUnload(gpt);
            Gpt2ModelFiles.Save(gpt, tokenizer, outDir);
            Console.WriteLine($"merged the adapter (r={config.R}, alpha={config.LoraAlpha}{(config.UseRsLora ? ", rsLoRA" : "")}) into {summary.WrappedModules.Count} layers " +
                $"of {p.GetValue(model)}; the model is in {outDir} (`nabla generate --model {outDir}`)");
            return 0;
        });
        return command;
    }
}
