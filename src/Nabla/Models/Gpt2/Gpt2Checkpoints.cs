using System.Buffers.Binary;
using System.Text.RegularExpressions;
using Nabla.Autograd;
using Nabla.IO;

namespace Nabla.Models.Gpt2;

/// <summary>
/// Reads and writes GPT-2 weights in the formats people have: Hugging Face's model.safetensors (+ config.json),
/// and llm.c's gpt2_*.bin.
/// </summary>
public static partial class Gpt2Checkpoints
{
    // Hugging Face's GPT-2 stores these linear layers as Conv1D, whose weight is (in, out): the transpose of ours.
    [GeneratedRegex(@"\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")]
    private static partial Regex Conv1DWeight();

    // Causal-mask buffers older files carry; not parameters.
    [GeneratedRegex(@"\.attn\.(bias|masked_bias)$")]
    private static partial Regex MaskBuffer();

    /// <summary>
    /// Loads a Hugging Face GPT-2: <paramref name="path"/> is a directory with config.json and model.safetensors
    /// (as downloaded from the hub), or a .safetensors file (the config is then read beside it, or inferred).
    /// Accepts names with or without the "transformer." prefix of GPT2LMHeadModel files, an lm_head.weight tied
    /// to wte, and ignores the attn.bias / attn.masked_bias mask buffers.
    /// </summary>
    public static Gpt2Model LoadHuggingFace(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "model.safetensors") : path;
        string configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "config.json");
        var raw = SafeTensors.Load(file);
        var state = new Dictionary<string, Tensor>();
        Tensor? lmHead = null;
        foreach (var (rawName, tensor) in raw)
        {
            var name = rawName.StartsWith("transformer.") ? rawName["transformer.".Length..] : rawName;
            if (name == "lm_head.weight") { lmHead = tensor; continue; }
            if (MaskBuffer().IsMatch(name)) continue;
            state[name] = Conv1DWeight().IsMatch(name) ? Transposed(tensor, file, rawName) : tensor;
        }
        var config = File.Exists(configPath) ? Gpt2Config.FromJson(File.ReadAllText(configPath), configPath) : InferConfig(state, file);
        var model = new Gpt2Model(config, new Generator(0));
        model.LoadStateDict(state, strict: true, source: file);
        if (lmHead != null && !lmHead.Shape.SequenceEqual(model.Wte.Weight.Shape))
            throw new CheckpointException($"{file}: tensor 'lm_head.weight' has shape {lmHead.ShapeString}, but GPT-2 ties it to wte {model.Wte.Weight.ShapeString}.");
        return model;
    }

    private static Tensor Transposed(Tensor t, string file, string name)
    {
        if (t.Rank != 2) throw new CheckpointException($"{file}: tensor '{name}' should be a matrix, got shape {t.ShapeString}.");
        using var _ = GradMode.NoGrad();
        return t.T.Contiguous();
    }

    /// <summary>Sizes from the tensors when there is no config.json (heads: 64 channels each, as in every GPT-2).</summary>
    private static Gpt2Config InferConfig(Dictionary<string, Tensor> state, string file)
    {
        if (!state.TryGetValue("wte.weight", out var wte) || !state.TryGetValue("wpe.weight", out var wpe))
            throw new CheckpointException($"{file}: no 'wte.weight' / 'wpe.weight' tensors, so this is not a GPT-2 checkpoint (and there is no config.json beside it).");
        int layers = state.Keys.Select(k => Regex.Match(k, @"^h\.(\d+)\.")).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value) + 1).DefaultIfEmpty(0).Max();
        int channels = wte.Size(1);
        return new Gpt2Config { VocabSize = wte.Size(0), MaxSequenceLength = wpe.Size(0), Channels = channels, Layers = layers, Heads = Math.Max(1, channels / 64) };
    }

    /// <summary>Writes config.json and model.safetensors in Hugging Face's layout (GPT2Model names, Conv1D
    /// weights transposed), so transformers' GPT2LMHeadModel.from_pretrained(dir) loads them.</summary>
    public static void SaveHuggingFace(Gpt2Model model, string directory)
    {
        Directory.CreateDirectory(directory);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (GradMode.NoGrad())
            foreach (var (name, p) in model.NamedParameters())
                tensors.Add(new(name, Conv1DWeight().IsMatch(name) ? p.T.Contiguous() : p));
        SafeTensors.Save(Path.Combine(directory, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), model.Config.ToJson());
    }

    // ---------------------------------------------------------------- llm.c

    private const int LlmcMagic = 20240326;

    /// <summary>
    /// Imports llm.c's gpt2_124M.bin (and the other sizes): a 256-int32 header (magic 20240326, version 3 for
    /// float32 or 5 for bfloat16, maxT, V, layers, heads, channels, padded V) followed by all parameters,
    /// grouped by kind across layers, weights already (out, in).
    /// </summary>
    public static Gpt2Model LoadLlmc(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"{path}: file not found.");
        using var stream = File.OpenRead(path);
        var header = new byte[256 * 4];
        if (stream.Read(header, 0, header.Length) != header.Length)
            throw new CheckpointException($"{path}: truncated llm.c checkpoint (the 1024-byte header is incomplete).");
        int H(int i) => BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4 * i));
        if (H(0) != LlmcMagic) throw new CheckpointException($"{path}: not an llm.c GPT-2 checkpoint (magic {H(0)}, expected {LlmcMagic}).");
        int version = H(1);
        if (version != 3 && version != 5) throw new CheckpointException($"{path}: llm.c checkpoint version {version} is not supported (3 = float32, 5 = bfloat16).");
        var config = new Gpt2Config { MaxSequenceLength = H(2), VocabSize = H(3), Layers = H(4), Heads = H(5), Channels = H(6) };
        config.Validate();
        int paddedVocab = H(7);
        if (paddedVocab < config.VocabSize) throw new CheckpointException($"{path}: padded vocabulary {paddedVocab} is smaller than the vocabulary {config.VocabSize}.");
        int bytesPer = version == 3 ? 4 : 2;
        long expected = header.Length + (long)LlmcParameterCount(config, paddedVocab) * bytesPer;
        if (stream.Length != expected)
            throw new CheckpointException($"{path}: {stream.Length} bytes, but a {config.Layers}-layer, {config.Channels}-channel llm.c model (version {version}) needs {expected}; the file is truncated or corrupt.");

        var model = new Gpt2Model(config, new Generator(0));
        var reader = new BinaryReader(stream);
        float[] Read(int count)
        {
            var values = new float[count];
            var bytes = reader.ReadBytes(count * bytesPer);
            for (int i = 0; i < count; i++)
                values[i] = bytesPer == 4 ? BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i))
                    : BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i)) << 16);
            return values;
        }
        using var _ = GradMode.NoGrad();
        int C = config.Channels;
        var wte = Read(paddedVocab * C);
        model.Wte.Weight.CopyFrom(Tensor.FromArray(wte[..(config.VocabSize * C)], config.VocabSize, C));
        model.Wpe.Weight.CopyFrom(Tensor.FromArray(Read(config.MaxSequenceLength * C), config.MaxSequenceLength, C));
        foreach (var (_, select) in LlmcLayerTensors(model))
            for (int l = 0; l < config.Layers; l++)
            {
                var t = select(l);
                t.CopyFrom(Tensor.FromArray(Read(t.Count), t.Shape.ToArray()));
            }
        model.LnF.Weight!.CopyFrom(Tensor.FromArray(Read(C), C));
        model.LnF.Bias!.CopyFrom(Tensor.FromArray(Read(C), C));
        return model;
    }

    /// <summary>Writes llm.c's float32 format (version 3), vocabulary padded to a multiple of 128 as llm.c does.</summary>
    public static void SaveLlmc(Gpt2Model model, string path)
    {
        var c = model.Config;
        int paddedVocab = (c.VocabSize + 127) / 128 * 128;
        AtomicFile.Write(path, stream =>
        {
            var writer = new BinaryWriter(stream);
            var header = new int[256];
            (header[0], header[1], header[2], header[3], header[4], header[5], header[6], header[7]) =
                (LlmcMagic, 3, c.MaxSequenceLength, c.VocabSize, c.Layers, c.Heads, c.Channels, paddedVocab);
            foreach (var h in header) writer.Write(h);
            void Write(Tensor t) { foreach (var v in t.ToArray()) writer.Write(v); }
            Write(model.Wte.Weight);
            for (long i = (long)c.VocabSize * c.Channels; i < (long)paddedVocab * c.Channels; i++) writer.Write(0f);
            Write(model.Wpe.Weight);
            foreach (var (_, select) in LlmcLayerTensors(model))
                for (int l = 0; l < c.Layers; l++) Write(select(l));
            Write(model.LnF.Weight!);
            Write(model.LnF.Bias!);
            writer.Flush();
        });
    }

    /// <summary>The per-layer tensors in llm.c's file order.</summary>
    private static IEnumerable<(string Name, Func<int, Tensor> Select)> LlmcLayerTensors(Gpt2Model m) =>
    [
        ("ln1w", l => m.Blocks[l].Ln1.Weight!), ("ln1b", l => m.Blocks[l].Ln1.Bias!),
        ("qkvw", l => m.Blocks[l].Attn.CAttn.Weight), ("qkvb", l => m.Blocks[l].Attn.CAttn.Bias!),
        ("attprojw", l => m.Blocks[l].Attn.CProj.Weight), ("attprojb", l => m.Blocks[l].Attn.CProj.Bias!),
        ("ln2w", l => m.Blocks[l].Ln2.Weight!), ("ln2b", l => m.Blocks[l].Ln2.Bias!),
        ("fcw", l => m.Blocks[l].Mlp.CFc.Weight), ("fcb", l => m.Blocks[l].Mlp.CFc.Bias!),
        ("fcprojw", l => m.Blocks[l].Mlp.CProj.Weight), ("fcprojb", l => m.Blocks[l].Mlp.CProj.Bias!),
    ];

    private static long LlmcParameterCount(Gpt2Config c, int paddedVocab)
    {
        long C = c.Channels, L = c.Layers;
        return paddedVocab * C + c.MaxSequenceLength * C + L * (2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C + 4 * C + 4 * C * C + C) + 2 * C;
    }
}
