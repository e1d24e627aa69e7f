using System.CommandLine;
using Nabla.IO;
using Nabla.Models.Gpt2;

namespace Nabla.Cli.Commands;

/// <summary>`nabla export gguf`: a GPT-2 (any form <see cref="Gpt2ModelFiles"/> reads) written for llama.cpp.</summary>
public static class ExportCommands
{
    private static readonly Dictionary<string, GgmlType> Types = new()
    {
        ["f32"] = GgmlType.F32, ["f16"] = GgmlType.F16, ["q8_0"] = GgmlType.Q8_0, ["q4_0"] = GgmlType.Q4_0,
    };

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A Hugging Face GPT-2 directory, a run directory of `nabla train gpt`, an llm.c .bin, or a GGUF file.", Required = true };
        var vocab = new Option<string?>("--vocab") { Description = "Directory with the tokenizer files, if they are not beside the model." };
        var quant = new Option<string>("--quant") { Description = "Type of the weight matrices: f32, f16, q8_0 or q4_0 (biases, norms and position embeddings stay f32).", DefaultValueFactory = _ => "f32" };
        var output = new Option<string>("--out") { Description = "The .gguf file to write.", Required = true };
        quant.Require(q => Types.ContainsKey(q), q => $"--quant must be one of {string.Join(", ", Types.Keys)}, got '{q}'.");
        var gguf = new Command("gguf", "Write a GPT-2 and its tokenizer as GGUF (llama.cpp's format; architecture gpt2).") { model, vocab, quant, output };
        gguf.SetAction(p =>
        {
            var (gpt, tokenizer) = Gpt2ModelFiles.Load(p.GetValue(model)!, p.GetValue(vocab), dequantizeGguf: true);
            var path = p.GetValue(output)!;
            if (Directory.Exists(path)) throw new CliException($"--out {path} is a directory; give the .gguf file to write.");
            try
            {
                Gpt2Gguf.Save(gpt, tokenizer, path, Types[p.GetValue(quant)!]);
            }
            catch (ArgumentException e)
            {
                throw new CliException($"{path}: {e.Message}");
            }
            Console.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1e6:F1} MB, {p.GetValue(quant)}); run it with: nabla generate --model {path} --prompt \"Hello\"");
        });
        return new Command("export", "Write a model in another framework's format.") { gguf };
    }
}
