using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.Text;

namespace Nabla.Cli.Runs;

/// <summary>
/// Finds a language model and its tokenizer on disk. A model is a Hugging Face directory (config.json,
/// model.safetensors, and vocab.json + merges.txt or encoder.json + vocab.bpe), a Nabla run directory (its
/// model/ folder is such a directory; character-level runs keep their vocabulary in tokenizer.json), or an
/// llm.c .bin file (tokenizer from --vocab).
/// </summary>
public static class LanguageModelFiles
{
    public const string CharVocabularyFile = "tokenizer.json";

    public static (Gpt2Model Model, ITokenizer Tokenizer) Load(string path, string? vocabDir)
    {
        if (File.Exists(path) && path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            var llmc = Gpt2Checkpoints.LoadLlmc(path);
            return (llmc, LoadTokenizer(vocabDir ?? Path.GetDirectoryName(Path.GetFullPath(path))!, path));
        }
        if (Directory.Exists(Path.Combine(path, "model")) && !File.Exists(Path.Combine(path, "model.safetensors"))) path = Path.Combine(path, "model");
        if (!Directory.Exists(path) && !File.Exists(path))
            throw new CliException($"{path}: no such model directory or file (expected a Hugging Face GPT-2 directory, a run directory, or an llm.c .bin).");
        var model = Gpt2Checkpoints.LoadHuggingFace(path);
        var dir = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
        var tokenizer = LoadTokenizer(vocabDir ?? dir, path);
        if (tokenizer.VocabSize > model.Config.VocabSize)
            throw new CliException($"The tokenizer has {tokenizer.VocabSize} tokens but the model {path} only {model.Config.VocabSize}.");
        return (model, tokenizer);
    }

    /// <summary>A char vocabulary (tokenizer.json) or GPT-2 BPE files in <paramref name="dir"/>.</summary>
    public static ITokenizer LoadTokenizer(string dir, string forWhat)
    {
        var charFile = Path.Combine(dir, CharVocabularyFile);
        if (File.Exists(charFile)) return CharTokenizer.Load(charFile);
        try
        {
            return Gpt2Tokenizer.FromDirectory(dir);
        }
        catch (TokenizerFileException e)
        {
            throw new CliException($"No tokenizer for {forWhat}: {e.Message} (pass --vocab DIR with encoder.json + vocab.bpe or vocab.json + merges.txt).");
        }
    }

    /// <summary>Writes the model (Hugging Face layout) and its tokenizer into <paramref name="dir"/>, ready for `nabla generate --model`.</summary>
    public static void Save(Gpt2Model model, ITokenizer tokenizer, string dir)
    {
        Gpt2Checkpoints.SaveHuggingFace(model, dir);
        SaveTokenizer(tokenizer, dir);
    }

    public static void SaveTokenizer(ITokenizer tokenizer, string dir)
    {
        switch (tokenizer)
        {
            case CharTokenizer chars: chars.Save(Path.Combine(dir, CharVocabularyFile)); break;
            case Gpt2Tokenizer bpe: bpe.Save(dir); break;
        }
    }
}
