using System.CommandLine;
using System.Diagnostics;
using Nabla.Models.Gpt2;
using Nabla.Quantization;

namespace Nabla.Cli.Commands;

/// <summary>`nabla quantize`: a GPT-2 with its linear layers and tied embedding in 8 or 4 bits, saved as a directory
/// that `nabla generate` and `nabla eval perplexity` load like any other model.</summary>
public static class QuantizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A Hugging Face GPT-2 directory, a run directory of `nabla train gpt`, or an llm.c .bin.", Required = true };
        var vocab = new Option<string?>("--vocab") { Description = "Directory with the tokenizer files, if they are not beside the model." };
        var bits = new Option<int>("--bits") { Description = "8 (q8_0) or 4 (q4_0, or nf4 with --format).", Required = true };
        var format = new Option<string?>("--format") { Description = "q8_0 (8 bits), q4_0 or nf4 (4 bits); default: q8_0 for 8 bits, q4_0 for 4." };
        var doubleQuant = new Option<bool>("--double-quant") { Description = "nf4: store the block scales in 8 bits too, as bitsandbytes' double quantisation." };
        var output = new Option<string>("--out") { Description = "Directory for the quantised model (config.json, model.safetensors, tokenizer).", Required = true };
        bits.Require(b => b is 8 or 4, b => $"--bits must be 8 or 4, got {b}.");
        var command = new Command("quantize", "Quantise a GPT-2's weights to 8 or 4 bits (ggml's Q8_0/Q4_0 blocks, or bitsandbytes' NF4).")
        {
            model, vocab, bits, format, doubleQuant, output,
        };
        command.SetAction(p =>
        {
            int b = p.GetValue(bits);
            var name = p.GetValue(format) ?? (b == 8 ? "q8_0" : "q4_0");
            if (!QuantizationFormats.TryParse(name, out var chosen))
                throw new CliException($"--format: unknown format '{name}' (q8_0, q4_0, nf4).");
            if ((chosen == QuantizationFormat.Q8_0) != (b == 8))
                throw new CliException($"--format {chosen.Name()} is a {(b == 8 ? 4 : 8)}-bit format, but --bits is {b}.");
            if (p.GetValue(doubleQuant) && chosen != QuantizationFormat.Nf4)
                throw new CliException("--double-quant is an nf4 option.");
            var (gpt, tokenizer) = Gpt2ModelFiles.Load(p.GetValue(model)!, p.GetValue(vocab), dequantizeGguf: true);
            if (Gpt2Quantization.FormatOf(gpt) is { } already)
                throw new CliException($"{p.GetValue(model)}: the model is already quantised ({already.Name()}); quantise the float model.");
            long floatBytes = gpt.ParameterCount * 4;
            var clock = Stopwatch.StartNew();
            try
            {
                Gpt2Quantization.Quantize(gpt, chosen, p.GetValue(doubleQuant));
            }
            catch (ArgumentException e)
            {
                throw new CliException($"{p.GetValue(model)}: {e.Message}");
            }
            var dir = p.GetValue(output)!;
            Gpt2ModelFiles.Save(gpt, tokenizer, dir);
            long bytes = new FileInfo(Path.Combine(dir, Gpt2Checkpoints.WeightsFileName)).Length;
            Console.WriteLine($"{dir}: {chosen.Name()}{(p.GetValue(doubleQuant) ? " (double-quantised scales)" : "")} linear layers, " +
                $"{Gpt2Quantization.EmbeddingFormat.Name()} embedding/head; {Gpt2Checkpoints.WeightsFileName} {bytes / 1e6:F1} MB " +
                $"(float32: {floatBytes / 1e6:F1} MB) in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return command;
    }
}
