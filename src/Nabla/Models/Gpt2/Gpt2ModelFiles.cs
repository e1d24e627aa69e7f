using Nabla.IO;
using Nabla.Quantization;
using Nabla.Text;

namespace Nabla.Models.Gpt2;

/// <summary>
/// Finds a GPT-2 and its tokenizer on disk, in any of the layouts people have:
/// <list type="bullet">
/// <item>a Hugging Face directory as the hub serves it (config.json, model.safetensors, and tokenizer.json and/or
/// vocab.json + merges.txt; generation_config.json and tokenizer_config.json are not needed), or with OpenAI's
/// encoder.json + vocab.bpe;</item>
/// <item>a run directory of <c>nabla train gpt</c> (its model/ folder is such a directory);</item>
/// <item>an llm.c .bin file, its tokenizer beside it or in <c>tokenizerDirectory</c>;</item>
/// <item>a GGUF file of architecture gpt2 (llama.cpp's format), which carries its own tokenizer.</item>
/// </list>
/// Errors name the directory or file and what is missing.
/// </summary>
public static class Gpt2ModelFiles
{
    /// <summary>The sub-folder of a training run that holds its final model.</summary>
    public const string RunModelFolder = "model";

    /// <summary>Loads the model at <paramref name="path"/> and its tokenizer (from <paramref name="tokenizerDirectory"/>
    /// when given, else from beside the model). A Q8_0/Q4_0 GGUF file loads quantised unless
    /// <paramref name="dequantizeGguf"/> asks for float32 weights (to train, re-quantise or export them).</summary>
    public static (Gpt2Model Model, ITokenizer Tokenizer) Load(string path, string? tokenizerDirectory = null, bool dequantizeGguf = false)
    {
        Gpt2Model model;
        string directory;
        if (Gpt2Gguf.IsGguf(path))
        {
            var (gguf, embedded) = Gpt2Gguf.Load(path, dequantizeGguf);
            return tokenizerDirectory == null ? (gguf, embedded) : (gguf, CheckedTokenizer(path, gguf, tokenizerDirectory));
        }
        if (File.Exists(path))
        {
            model = path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase) ? Gpt2Checkpoints.LoadLlmc(path) : Gpt2Checkpoints.LoadHuggingFace(path);
            directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        }
        else if (Directory.Exists(path))
        {
            directory = ModelDirectory(path);
            model = Gpt2Quantization.IsQuantizedCheckpoint(Path.Combine(directory, Gpt2Checkpoints.WeightsFileName))
                ? Gpt2Quantization.Load(directory)
                : Gpt2Checkpoints.LoadHuggingFace(directory);
        }
        else
        {
            throw new CheckpointException($"{path}: no such model directory or file (expected a Hugging Face GPT-2 directory, a run directory of `nabla train gpt`, an llm.c .bin or a GGUF file).");
        }
        return (model, CheckedTokenizer(path, model, tokenizerDirectory ?? directory));
    }

    private static ITokenizer CheckedTokenizer(string path, Gpt2Model model, string tokenizerDirectory)
    {
        var tokenizer = TokenizerFiles.Load(tokenizerDirectory);
        if (tokenizer.VocabSize > model.Config.VocabSize)
            throw new CheckpointException($"{path}: the tokenizer in {tokenizerDirectory} has {tokenizer.VocabSize} tokens, but the model only {model.Config.VocabSize}.");
        return tokenizer;
    }

    /// <summary>The directory that holds the weights: <paramref name="directory"/> itself, or a run's model/ folder.</summary>
    private static string ModelDirectory(string directory)
    {
        if (File.Exists(Path.Combine(directory, Gpt2Checkpoints.WeightsFileName))) return directory;
        var runModel = Path.Combine(directory, RunModelFolder);
        if (File.Exists(Path.Combine(runModel, Gpt2Checkpoints.WeightsFileName))) return runModel;
        throw new CheckpointException(Directory.Exists(runModel)
            ? $"{directory}: a run directory whose {RunModelFolder}/ has no {Gpt2Checkpoints.WeightsFileName} (has the run finished?)."
            : $"{directory}: no {Gpt2Checkpoints.WeightsFileName} (a Hugging Face GPT-2 directory holds {Gpt2Checkpoints.ConfigFileName} and {Gpt2Checkpoints.WeightsFileName}; a run directory, {RunModelFolder}/ with them).");
    }

    /// <summary>Writes the model (Hugging Face's layout, or a quantised model's, see <see cref="Gpt2Quantization"/>) and its tokenizer into <paramref name="directory"/>, ready for <see cref="Load"/>.</summary>
    public static void Save(Gpt2Model model, ITokenizer tokenizer, string directory)
    {
        if (Gpt2Quantization.FormatOf(model) != null) Gpt2Quantization.Save(model, directory);
        else Gpt2Checkpoints.SaveHuggingFace(model, directory);
        TokenizerFiles.Save(tokenizer, directory);
    }
}
