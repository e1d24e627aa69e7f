using Nabla.Autograd;
using Nabla.IO;
using Nabla.NN;
using Nabla.Quantization;
using Nabla.Text;

namespace Nabla.Models.Gpt2;

/// <summary>
/// GPT-2 in GGUF, as llama.cpp's converter (convert_hf_to_gguf.py, GPT2Model) writes it and llama.cpp reads it:
/// architecture "gpt2"; hyper-parameters gpt2.context_length, embedding_length, feed_forward_length, block_count,
/// attention.head_count, attention.layer_norm_epsilon; tensors token_embd, position_embd, blk.N.attn_norm,
/// attn_qkv, attn_output, ffn_norm, ffn_up, ffn_down (.weight and .bias), output_norm, and optionally output.weight
/// (absent: the head is tied to token_embd). Linear weights are stored (out, in), the transpose of Hugging Face's
/// Conv1D and the same as Nabla's. The tokenizer travels in the file: tokenizer.ggml.model = "gpt2", the tokens
/// (in GPT-2's byte-level alphabet), their types, the merges as "left right" strings, and the bos/eos ids.
/// </summary>
public static class Gpt2Gguf
{
    public const string Architecture = "gpt2";
    private const uint QuantizationVersion = 2; // GGML_QUANT_VERSION: the layout of the Q blocks

    // Nabla's state-dict names and GGUF's, per layer and for the whole model.
    private static readonly (string Ours, string Theirs)[] LayerNames =
    [
        ("ln_1", "attn_norm"), ("attn.c_attn", "attn_qkv"), ("attn.c_proj", "attn_output"),
        ("ln_2", "ffn_norm"), ("mlp.c_fc", "ffn_up"), ("mlp.c_proj", "ffn_down"),
    ];
    private static readonly (string Ours, string Theirs)[] ModelNames =
        [("wte.weight", "token_embd.weight"), ("wpe.weight", "position_embd.weight"), ("ln_f.weight", "output_norm.weight"), ("ln_f.bias", "output_norm.bias")];
    private const string OutputWeight = "output.weight";

    /// <summary>GGUF's name of each of Nabla's GPT-2 parameters.</summary>
    public static string GgufName(string ours)
    {
        foreach (var (o, t) in ModelNames)
            if (ours == o) return t;
        var parts = ours.Split('.', 3); // "h", "N", "attn.c_attn.weight"
        if (parts is ["h", var layer, var rest])
            foreach (var (o, t) in LayerNames)
                if (rest.StartsWith(o + ".", StringComparison.Ordinal)) return $"blk.{layer}.{t}{rest[o.Length..]}";
        throw new ArgumentException($"'{ours}' is not a GPT-2 parameter name.");
    }

    /// <summary>Whether <paramref name="path"/> is meant as a GGUF file: named .gguf (its reader then reports any
    /// problem), or a regular file that starts with GGUF's magic bytes.</summary>
    public static bool IsGguf(string path)
    {
        if (path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return true;
        if (!File.Exists(path)) return false;
        try
        {
            using var stream = BoundedFile.OpenRead(path, "a model file");
            Span<byte> magic = stackalloc byte[4];
            return stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("GGUF"u8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // the loader the path is handed to instead reports it
        }
    }

    /// <summary>
    /// Loads a GGUF GPT-2 and the tokenizer stored in it. Q8_0 and Q4_0 matrices stay quantised: ggml's blocks are
    /// the bytes a <see cref="QuantizedMatrix"/> holds, so each becomes a <see cref="QuantizedLinear"/> (or the
    /// <see cref="QuantizedEmbedding"/> of the tied head) straight from the file, as in llama.cpp; with
    /// <paramref name="dequantize"/> they are decoded to float32 instead (to train the model, or to compare with a
    /// float reference). F16 tensors are always decoded. Every tensor's name, type and shape is checked against the
    /// hyper-parameters before the model is allocated; errors name the file and the key or tensor.
    /// </summary>
    public static (Gpt2Model Model, Gpt2Tokenizer Tokenizer) Load(string path, bool dequantize = false)
    {
        var file = GgufFile.Open(path);
        string architecture = Text(file, "general.architecture");
        if (architecture != Architecture)
            throw new CheckpointException($"{path}: GGUF architecture '{architecture}'; only '{Architecture}' (GPT-2) is supported.");
        int channels = Int(file, "gpt2.embedding_length");
        int vocabulary = file.Tensor("token_embd.weight") is { Dimensions: [_, var rows] } ? (int)rows
            : throw new CheckpointException($"{path}: no 2-D tensor 'token_embd.weight' (the token embedding).");
        var config = new Gpt2Config
        {
            VocabSize = vocabulary,
            MaxSequenceLength = Int(file, "gpt2.context_length"),
            Channels = channels,
            Layers = Int(file, "gpt2.block_count"),
            Heads = Int(file, "gpt2.attention.head_count"),
            LayerNormEps = Float(file, "gpt2.attention.layer_norm_epsilon"),
        };
        if (file["gpt2.feed_forward_length"] != null && Int(file, "gpt2.feed_forward_length") != 4 * channels)
            throw new CheckpointException($"{path}: gpt2.feed_forward_length is {Int(file, "gpt2.feed_forward_length")}; GPT-2's MLP is 4 × embedding_length = {4 * channels}.");
        if (file["gpt2.attention.head_count_kv"] is { } kvHeads && Int(file, "gpt2.attention.head_count_kv") != config.Heads)
            throw new CheckpointException($"{path}: gpt2.attention.head_count_kv is {kvHeads.Value}; GPT-2 has as many key/value heads as query heads ({config.Heads}).");
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"{path}: {e.Message}", e);
        }
        var expected = ExpectedShapes(config);
        CheckTensors(file, expected, config);

        var model = new Gpt2Model(config, new Generator(0));
        if (!dequantize) KeepQuantised(file, model);
        using (GradMode.NoGrad())
            foreach (var (name, target) in model.StateDict())
                target.CopyFrom(file.ReadFloat32(file.Tensor(GgufName(name))!));
        if (file.Tensor(OutputWeight) is { } output && !file.ReadFloat32(output).AsSpan().SequenceEqual(file.ReadFloat32(file.Tensor("token_embd.weight")!).AsSpan()))
            throw new CheckpointException($"{path}: tensor '{OutputWeight}' differs from 'token_embd.weight'; GPT-2 ties the two, and an untied head is not supported.");
        return (model, ReadTokenizer(file, config.VocabSize));
    }

    /// <summary>Puts a quantised layer, built from the file's block bytes, in place of every linear layer and of the
    /// token embedding whose GGUF matrix is Q8_0 or Q4_0 (the layer's bias stays float and is read with the rest).</summary>
    private static void KeepQuantised(GgufFile file, Gpt2Model model)
    {
        QuantizedMatrix? Blocks(string ours)
        {
            var info = file.Tensor(GgufName(ours))!;
            QuantizationFormat? format = info.Type switch { GgmlType.Q8_0 => QuantizationFormat.Q8_0, GgmlType.Q4_0 => QuantizationFormat.Q4_0, _ => null };
            if (format == null) return null;
            try { return QuantizedMatrix.FromBlocks(format.Value, info.Shape[0], info.Shape[1], file.ReadRaw(info)); }
            catch (ArgumentException e) { throw new CheckpointException($"{file.Path}: tensor '{info.Name}': {e.Message}", e); }
        }
        foreach (var (name, module) in model.NamedModules().ToList())
            if (module is Linear linear && Blocks(name + ".weight") is { } weight)
                model.SetSubmodule(name, new QuantizedLinear(weight, linear.Bias));
        if (Blocks("wte.weight") is { } table) model.SetSubmodule("wte", new QuantizedEmbedding(table));
    }

    /// <summary>PyTorch-order shapes of every GGUF tensor a GPT-2 of <paramref name="config"/> has.</summary>
    private static Dictionary<string, int[]> ExpectedShapes(Gpt2Config config)
    {
        int C = config.Channels;
        var shapes = new Dictionary<string, int[]>
        {
            ["token_embd.weight"] = [config.VocabSize, C], ["position_embd.weight"] = [config.MaxSequenceLength, C],
            ["output_norm.weight"] = [C], ["output_norm.bias"] = [C],
        };
        for (int l = 0; l < config.Layers; l++)
        {
            string p = $"blk.{l}.";
            shapes[p + "attn_norm.weight"] = [C]; shapes[p + "attn_norm.bias"] = [C];
            shapes[p + "attn_qkv.weight"] = [3 * C, C]; shapes[p + "attn_qkv.bias"] = [3 * C];
            shapes[p + "attn_output.weight"] = [C, C]; shapes[p + "attn_output.bias"] = [C];
            shapes[p + "ffn_norm.weight"] = [C]; shapes[p + "ffn_norm.bias"] = [C];
            shapes[p + "ffn_up.weight"] = [4 * C, C]; shapes[p + "ffn_up.bias"] = [4 * C];
            shapes[p + "ffn_down.weight"] = [C, 4 * C]; shapes[p + "ffn_down.bias"] = [C];
        }
        return shapes;
    }

    private static void CheckTensors(GgufFile file, Dictionary<string, int[]> expected, Gpt2Config config)
    {
        var problems = new List<string>();
        foreach (var (name, shape) in expected)
        {
            if (file.Tensor(name) is not { } info) problems.Add($"missing tensor '{name}'");
            else if (!info.Shape.SequenceEqual(shape)) problems.Add($"tensor '{name}': shape [{string.Join(", ", info.Shape)}], [{string.Join(", ", shape)}] expected");
        }
        foreach (var info in file.Tensors)
        {
            if (info.Name == OutputWeight)
            {
                if (!info.Shape.SequenceEqual(expected["token_embd.weight"]))
                    problems.Add($"tensor '{OutputWeight}': shape [{string.Join(", ", info.Shape)}], but GPT-2 ties it to token_embd, [{config.VocabSize}, {config.Channels}]");
            }
            else if (!expected.ContainsKey(info.Name)) problems.Add($"unexpected tensor '{info.Name}'");
        }
        if (problems.Count > 0)
            throw new CheckpointException($"{file.Path}: does not fit the GPT-2 its metadata describes (block_count {config.Layers}, embedding_length {config.Channels}, context_length {config.MaxSequenceLength}): " +
                $"{string.Join("; ", problems.Take(8))}{(problems.Count > 8 ? $"; and {problems.Count - 8} more" : "")}.");
    }

    private static Gpt2Tokenizer ReadTokenizer(GgufFile file, int vocabularySize)
    {
        string path = file.Path;
        string model = Text(file, "tokenizer.ggml.model");
        if (model != "gpt2")
            throw new CheckpointException($"{path}: tokenizer.ggml.model is '{model}'; only 'gpt2' (byte-level BPE) is supported.");
        var tokens = Array<string>(file, "tokenizer.ggml.tokens");
        var merges = Array<string>(file, "tokenizer.ggml.merges");
        if (tokens.Length != vocabularySize)
            throw new CheckpointException($"{path}: tokenizer.ggml.tokens has {tokens.Length} tokens, but token_embd.weight has {vocabularySize} rows.");
        var vocabulary = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (int id = 0; id < tokens.Length; id++)
            if (!vocabulary.TryAdd(tokens[id], id))
                throw new CheckpointException($"{path}: tokenizer.ggml.tokens[{id}] \"{tokens[id]}\" repeats token {vocabulary[tokens[id]]}.");
        var pairs = new (string, string)[merges.Length];
        for (int i = 0; i < merges.Length; i++)
        {
            int space = merges[i].IndexOf(' ');
            if (space <= 0 || space == merges[i].Length - 1 || merges[i].IndexOf(' ', space + 1) >= 0)
                throw new CheckpointException($"{path}: tokenizer.ggml.merges[{i}] \"{merges[i]}\" is not two tokens separated by one space.");
            pairs[i] = (merges[i][..space], merges[i][(space + 1)..]);
        }
        try
        {
            return new Gpt2Tokenizer(vocabulary, pairs);
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"{path}: tokenizer: {e.Message}", e);
        }
    }

    /// <summary>
    /// Writes <paramref name="model"/> and its GPT-2 tokenizer as GGUF. Matrices (token_embd, attn_qkv, attn_output,
    /// ffn_up, ffn_down) are stored as <paramref name="matrixType"/>; biases, norms and position_embd stay F32, as
    /// llama.cpp's converter and quantiser keep them. A matrix whose rows do not split into 32-value blocks falls
    /// back to F16, as the converter does.
    /// </summary>
    public static void Save(Gpt2Model model, ITokenizer tokenizer, string path, GgmlType matrixType = GgmlType.F32)
    {
        if (tokenizer is not Gpt2Tokenizer bpe)
            throw new ArgumentException($"GGUF export needs a GPT-2 byte-level BPE tokenizer (llama.cpp has no equivalent of {tokenizer.GetType().Name}).");
        if (GgufFile.BlockSize(matrixType) == null) throw new ArgumentException($"GGUF export: type {GgufFile.TypeName(matrixType)} is not supported (F32, F16, Q8_0, Q4_0 are).");
        if (model.Modules().Any(m => m is QuantizedLinear or QuantizedEmbedding))
            throw new ArgumentException("GGUF export needs the float model; this one holds quantised layers (load it with its weights dequantised).");
        var c = model.Config;
        var writer = new GgufWriter()
            .Add("general.architecture", GgufValue.Of(Architecture))
            .Add("general.name", GgufValue.Of(Path.GetFileNameWithoutExtension(path)))
            .Add("general.file_type", GgufValue.Of(FileType(matrixType)))
            .Add("gpt2.block_count", GgufValue.Of((uint)c.Layers))
            .Add("gpt2.context_length", GgufValue.Of((uint)c.MaxSequenceLength))
            .Add("gpt2.embedding_length", GgufValue.Of((uint)c.Channels))
            .Add("gpt2.feed_forward_length", GgufValue.Of((uint)(4 * c.Channels)))
            .Add("gpt2.attention.head_count", GgufValue.Of((uint)c.Heads))
            .Add("gpt2.attention.layer_norm_epsilon", GgufValue.Of(c.LayerNormEps));
        if (matrixType is not (GgmlType.F32 or GgmlType.F16)) writer.Add("general.quantization_version", GgufValue.Of(QuantizationVersion));
        AddTokenizer(writer, bpe, c.VocabSize);
        using (GradMode.NoGrad())
            foreach (var (name, p) in model.NamedParameters())
            {
                string gguf = GgufName(name);
                bool matrix = p.Rank == 2 && gguf != "position_embd.weight";
                var type = !matrix ? GgmlType.F32
                    : p.Size(-1) % GgufFile.BlockSize(matrixType)!.Value.Values == 0 ? matrixType : GgmlType.F16;
                writer.AddTensor(gguf, p.Detach(), type);
            }
        writer.Write(path);
    }

    private static uint FileType(GgmlType type) => type switch
    {
        GgmlType.F32 => 0, GgmlType.F16 => 1, GgmlType.Q4_0 => 2, GgmlType.Q8_0 => 7, // llama_ftype's ALL_F32, MOSTLY_*
        _ => throw new ArgumentException($"no llama.cpp file type for {type}"),
    };

    private static void AddTokenizer(GgufWriter writer, Gpt2Tokenizer tokenizer, int vocabularySize)
    {
        if (tokenizer.VocabSize > vocabularySize)
            throw new ArgumentException($"The tokenizer has {tokenizer.VocabSize} tokens, more than the model's {vocabularySize}.");
        const int Normal = 1, Control = 3, Unused = 5; // llama.cpp's token types
        var special = tokenizer.SpecialTokens.ToHashSet();
        var tokens = new List<string>(vocabularySize);
        var types = new List<int>(vocabularySize);
        for (int id = 0; id < vocabularySize; id++)
        {
            // Rows the model has beyond the tokenizer (a vocabulary padded for speed) get placeholders, as the converter writes them.
            string token = id < tokenizer.VocabSize ? tokenizer.TokenOf(id) : $"[PAD{id}]";
            tokens.Add(token);
            types.Add(id >= tokenizer.VocabSize ? Unused : special.Contains(token) ? Control : Normal);
        }
        writer.Add("tokenizer.ggml.model", GgufValue.Of("gpt2"))
            .Add("tokenizer.ggml.pre", GgufValue.Of("gpt-2"))
            .Add("tokenizer.ggml.tokens", GgufValue.Of(tokens))
            .Add("tokenizer.ggml.token_type", GgufValue.Of(types))
            .Add("tokenizer.ggml.merges", GgufValue.Of(tokenizer.Merges.Select(m => $"{m.Left} {m.Right}").ToList()));
        if (tokenizer.EndOfTextId is int endOfText)
            writer.Add("tokenizer.ggml.bos_token_id", GgufValue.Of((uint)endOfText)).Add("tokenizer.ggml.eos_token_id", GgufValue.Of((uint)endOfText));
    }

    private static GgufValue Required(GgufFile file, string key) =>
        file[key] ?? throw new CheckpointException($"{file.Path}: no metadata '{key}' (a GGUF GPT-2 has it).");

    private static string Text(GgufFile file, string key) =>
        Required(file, key).Value as string ?? throw new CheckpointException($"{file.Path}: metadata '{key}' is {file[key]}, not a string.");

    /// <summary>An integer hyper-parameter, whichever integer type the writer chose.</summary>
    private static int Int(GgufFile file, string key)
    {
        var value = Required(file, key);
        long? number = value.Value switch
        {
            byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v,
            ulong v when v <= int.MaxValue => (long)v, long v => v,
            _ => null,
        };
        if (number is not { } n || n is < 0 or > int.MaxValue)
            throw new CheckpointException($"{file.Path}: metadata '{key}' is {value}, not a non-negative integer.");
        return (int)n;
    }

    private static float Float(GgufFile file, string key) => Required(file, key).Value switch
    {
        float f => f,
        double d => (float)d,
        _ => throw new CheckpointException($"{file.Path}: metadata '{key}' is {file[key]}, not a floating-point number."),
    };

    private static T[] Array<T>(GgufFile file, string key) =>
        Required(file, key).Value is GgufArray { Items: T[] items } ? items
            : throw new CheckpointException($"{file.Path}: metadata '{key}' is {file[key]}, not an array of {typeof(T).Name}.");
}
