using System.Buffers.Binary;
using System.Text.RegularExpressions;
using Nabla.Autograd;
using Nabla.IO;

namespace Nabla.Models.Gpt2;

/// <summary>
/// Reads and writes GPT-2 weights in the formats people have: Hugging Face's model.safetensors (+ config.json),
/// and llm.c's gpt2_*.bin. Weights are matched by their state-dict names ("h.3.attn.c_attn.weight"), never
/// through the model's typed fields, so a model whose modules were rewired still loads.
/// </summary>
public static partial class Gpt2Checkpoints
{
    public const string WeightsFileName = "model.safetensors";
    public const string ConfigFileName = "config.json";

    // Hugging Face's GPT-2 stores these linear layers as Conv1D, whose weight is (in, out): the transpose of ours.
    [GeneratedRegex(@"\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")]
    private static partial Regex Conv1DWeight();

    // Causal-mask buffers older files carry; not parameters.
    [GeneratedRegex(@"\.attn\.(bias|masked_bias)$")]
    private static partial Regex MaskBuffer();

    [GeneratedRegex(@"^h\.(\d+)\.")]
    private static partial Regex LayerIndex();

    /// <summary>GPT2LMHeadModel keeps the body under this name; GPT2Model files have no prefix.</summary>
    private const string LmHeadModelPrefix = "transformer.";
    private const string LmHeadWeight = "lm_head.weight";

    /// <summary>
    /// Loads a Hugging Face GPT-2: <paramref name="path"/> is a directory with config.json and model.safetensors
    /// (as downloaded from the hub), or a .safetensors file (the config is then read beside it, or inferred).
    /// Accepts GPT2LMHeadModel files (names prefixed "transformer.", lm_head.weight absent or equal to wte, as
    /// GPT-2 ties them) and GPT2Model files (no prefix), Conv1D weights stored (in, out), and ignores the
    /// attn.bias / attn.masked_bias mask buffers. Names and shapes are checked against the config from the
    /// file's header before any tensor is read; every missing, unexpected or misshapen tensor is named.
    /// </summary>
    public static Gpt2Model LoadHuggingFace(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, WeightsFileName) : path;
        if (!File.Exists(file))
            throw new CheckpointException(Directory.Exists(path)
                ? $"{path}: no {WeightsFileName} in this directory (a Hugging Face GPT-2 directory holds {ConfigFileName} and {WeightsFileName})."
                : $"{path}: file not found.");
        string configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, ConfigFileName);

        var (infos, _, _) = SafeTensors.ReadHeader(file);
        var stored = OurNames(infos, file);
        var config = File.Exists(configPath) ? Gpt2Config.Load(configPath) : InferConfig(stored, file);
        // A config describing a model far larger than the file is refused before that model is allocated; within
        // twice the file's size, allocating costs no more than reading the file, and the check below names each tensor.
        long storedParameters = stored.Where(t => t.Key != LmHeadWeight).Sum(t => t.Value.Shape.Aggregate(1L, (n, d) => n * d));
        if (config.ParameterCount() > 2 * (Int128)storedParameters + (1 << 20))
            throw new CheckpointException($"{file}: holds {storedParameters:N0} values, but {(File.Exists(configPath) ? configPath : "the sizes inferred from its tensors")} describes a GPT-2 of {config.ParameterCount():N0} parameters " +
                $"(n_layer = {config.Layers}, n_embd = {config.Channels}, vocab_size = {config.VocabSize}, n_positions = {config.MaxSequenceLength}).");
        var model = new Gpt2Model(config, new Generator(0));
        var own = model.StateDict();
        CheckNamesAndShapes(own, stored, file);

        var raw = SafeTensors.Load(file);
        using var _ = GradMode.NoGrad();
        foreach (var (name, target) in own)
        {
            var tensor = raw[stored[name].RawName];
            target.CopyFrom(Conv1DWeight().IsMatch(name) ? tensor.T : tensor);
        }
        if (raw.TryGetValue(LmHeadWeight, out var lmHead) && !lmHead.Contiguous().AsSpan().SequenceEqual(own["wte.weight"].AsSpan()))
            throw new CheckpointException($"{file}: tensor '{LmHeadWeight}' differs from the token embedding; GPT-2 ties the two, and an untied head is not supported.");
        return model;
    }

    /// <summary>Nabla's name of each stored tensor, with the file's own name and shape; mask buffers left out.</summary>
    private static Dictionary<string, (string RawName, int[] Shape, string DType)> OurNames(List<SafeTensorInfo> infos, string file)
    {
        bool prefixed = infos.Any(t => t.Name.StartsWith(LmHeadModelPrefix, StringComparison.Ordinal));
        var names = new Dictionary<string, (string, int[], string)>();
        foreach (var info in infos)
        {
            string name = info.Name;
            if (prefixed && name != LmHeadWeight)
            {
                if (!name.StartsWith(LmHeadModelPrefix, StringComparison.Ordinal))
                    throw new CheckpointException($"{file}: unexpected tensor '{name}': the other names carry GPT2LMHeadModel's '{LmHeadModelPrefix}' prefix.");
                name = name[LmHeadModelPrefix.Length..];
            }
            if (MaskBuffer().IsMatch(name)) continue;
            names[name] = (info.Name, info.Shape, info.DType);
        }
        return names;
    }

    private static void CheckNamesAndShapes(Dictionary<string, Tensor> own, Dictionary<string, (string RawName, int[] Shape, string DType)> stored, string file)
    {
        var problems = new List<string>();
        foreach (var (name, target) in own)
        {
            if (!stored.TryGetValue(name, out var entry))
            {
                problems.Add($"missing tensor '{name}'");
                continue;
            }
            int[] expected = Conv1DWeight().IsMatch(name) ? target.Shape.ToArray().AsEnumerable().Reverse().ToArray() : target.Shape.ToArray();
            if (!IsFloat(entry.DType))
                problems.Add($"tensor '{entry.RawName}': dtype {entry.DType}, not a floating-point type");
            else if (!entry.Shape.SequenceEqual(expected))
                problems.Add($"tensor '{entry.RawName}': shape [{string.Join(", ", entry.Shape)}] in the file, [{string.Join(", ", expected)}] expected{(Conv1DWeight().IsMatch(name) ? " (Conv1D: in, out)" : "")}");
        }
        foreach (var (name, entry) in stored)
        {
            if (name == LmHeadWeight)
            {
                int[] wte = own["wte.weight"].Shape.ToArray();
                if (!entry.Shape.SequenceEqual(wte) || !IsFloat(entry.DType))
                    problems.Add($"tensor '{LmHeadWeight}': {entry.DType} [{string.Join(", ", entry.Shape)}], but GPT-2 ties it to wte, F32 [{string.Join(", ", wte)}]");
            }
            else if (!own.ContainsKey(name)) problems.Add($"unexpected tensor '{entry.RawName}'");
        }
        if (problems.Count > 0)
            throw new CheckpointException($"{file}: does not fit the GPT-2 its config describes: {string.Join("; ", problems.Take(8))}{(problems.Count > 8 ? $"; and {problems.Count - 8} more" : "")}.");
    }

    private static bool IsFloat(string dtype) => dtype is "F32" or "F16" or "BF16" or "F64";

    /// <summary>Sizes from the tensor shapes when there is no config.json (heads: 64 channels each, as in every GPT-2).</summary>
    private static Gpt2Config InferConfig(Dictionary<string, (string RawName, int[] Shape, string DType)> stored, string file)
    {
        if (!stored.TryGetValue("wte.weight", out var wte) || !stored.TryGetValue("wpe.weight", out var wpe) || wte.Shape.Length != 2 || wpe.Shape.Length != 2)
            throw new CheckpointException($"{file}: no 2-D 'wte.weight' / 'wpe.weight' tensors, so this is not a GPT-2 checkpoint (and there is no {ConfigFileName} beside it).");
        int layers = stored.Keys.Select(k => LayerIndex().Match(k)).Where(m => m.Success)
            .Select(m => int.TryParse(m.Groups[1].ValueSpan, out int i) && i < Gpt2Config.MaxLayers ? i + 1 : int.MaxValue).DefaultIfEmpty(0).Max();
        int channels = wte.Shape[1];
        return Validated(new Gpt2Config { VocabSize = wte.Shape[0], MaxSequenceLength = wpe.Shape[0], Channels = channels, Layers = layers, Heads = Math.Max(1, channels / 64) },
            $"{file} (sizes inferred from its tensors, no {ConfigFileName} beside it)");
    }

    private static Gpt2Config Validated(Gpt2Config config, string source)
    {
        try
        {
            config.Validate();
            return config;
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"{source}: {e.Message}", e);
        }
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
        SafeTensors.Save(Path.Combine(directory, WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFileName), model.Config.ToJson());
    }

    // ---------------------------------------------------------------- llm.c

    private const int LlmcMagic = 20240326;
    private const int LlmcHeaderInts = 256;

    /// <summary>The per-layer tensors in llm.c's file order (train_gpt2.py's write_tensors), by state-dict name.</summary>
    private static readonly string[] LlmcLayerTensors =
    [
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
        "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
    ];

    /// <summary>
    /// Imports llm.c's gpt2_124M.bin (and the other sizes): a 256-int32 header (magic 20240326, version 3 for
    /// float32 or 5 for bfloat16, maxT, V, layers, heads, channels, padded V) followed by all parameters,
    /// grouped by kind across layers, weights already (out, in), wte padded with rows up to the padded V.
    /// Every header field is checked against its limit and the file's size before anything is allocated.
    /// </summary>
    public static Gpt2Model LoadLlmc(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"{path}: file not found.");
        using var stream = File.OpenRead(path);
        var header = new byte[LlmcHeaderInts * 4];
        if (stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) != header.Length)
            throw new CheckpointException($"{path}: truncated llm.c checkpoint ({stream.Length} bytes; the 1024-byte header is incomplete).");
        int H(int i) => BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4 * i));
        if (H(0) != LlmcMagic) throw new CheckpointException($"{path}: not an llm.c GPT-2 checkpoint (magic {H(0)}, expected {LlmcMagic}).");
        int version = H(1);
        if (version != 3 && version != 5) throw new CheckpointException($"{path}: llm.c checkpoint version {version} is not supported (3 = float32, 5 = bfloat16).");
        var config = Validated(new Gpt2Config { MaxSequenceLength = H(2), VocabSize = H(3), Layers = H(4), Heads = H(5), Channels = H(6) }, $"{path}: llm.c header");
        int paddedVocab = H(7);
        if (paddedVocab < config.VocabSize || paddedVocab > Gpt2Config.MaxVocabSize)
            throw new CheckpointException($"{path}: llm.c header: padded vocabulary {paddedVocab} is outside {config.VocabSize} (the vocabulary) to {Gpt2Config.MaxVocabSize}.");
        int bytesPer = version == 3 ? 4 : 2;
        Int128 expected = header.Length + config.ParameterCount(paddedVocab) * bytesPer;
        if (stream.Length != expected)
            throw new CheckpointException($"{path}: {stream.Length} bytes, but a {config.Layers}-layer, {config.Channels}-channel llm.c model (version {version}) needs {expected}; the file is truncated or corrupt.");
        try
        {
            config.CheckAffordable(config.ParameterCount(paddedVocab));
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"{path}: llm.c header: {e.Message}", e);
        }

        var model = new Gpt2Model(config, new Generator(0));
        var state = model.StateDict();
        var bytes = new byte[1 << 20];
        void Read(Tensor target)
        {
            var values = target.AsSpan();
            for (int done = 0; done < values.Length;)
            {
                int count = Math.Min(values.Length - done, bytes.Length / bytesPer);
                stream.ReadExactly(bytes, 0, count * bytesPer);
                for (int i = 0; i < count; i++)
                    values[done + i] = bytesPer == 4 ? BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i))
                        : BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i)) << 16);
                done += count;
            }
        }
        using var _ = GradMode.NoGrad();
        Read(state["wte.weight"]);
        stream.Seek((long)(paddedVocab - config.VocabSize) * config.Channels * bytesPer, SeekOrigin.Current); // padding rows
        Read(state["wpe.weight"]);
        foreach (var tensor in LlmcLayerTensors)
            for (int l = 0; l < config.Layers; l++) Read(state[$"h.{l}.{tensor}"]);
        Read(state["ln_f.weight"]);
        Read(state["ln_f.bias"]);
        return model;
    }

    /// <summary>Writes llm.c's float32 format (version 3), vocabulary padded to a multiple of 128 as llm.c does.</summary>
    public static void SaveLlmc(Gpt2Model model, string path)
    {
        var c = model.Config;
        var state = model.StateDict();
        int paddedVocab = (c.VocabSize + 127) / 128 * 128;
        AtomicFile.Write(path, stream =>
        {
            var writer = new BinaryWriter(stream);
            var header = new int[LlmcHeaderInts];
            (header[0], header[1], header[2], header[3], header[4], header[5], header[6], header[7]) =
                (LlmcMagic, 3, c.MaxSequenceLength, c.VocabSize, c.Layers, c.Heads, c.Channels, paddedVocab);
            foreach (var h in header) writer.Write(h);
            void Write(Tensor t) { foreach (var v in t.ToArray()) writer.Write(v); }
            Write(state["wte.weight"]);
            for (long i = (long)c.VocabSize * c.Channels; i < (long)paddedVocab * c.Channels; i++) writer.Write(0f);
            Write(state["wpe.weight"]);
            foreach (var tensor in LlmcLayerTensors)
                for (int l = 0; l < c.Layers; l++) Write(state[$"h.{l}.{tensor}"]);
            Write(state["ln_f.weight"]);
            Write(state["ln_f.bias"]);
            writer.Flush();
        });
    }
}
