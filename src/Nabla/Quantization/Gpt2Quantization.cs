using Nabla.Autograd;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.NN;

namespace Nabla.Quantization;

/// <summary>
/// Quantises a GPT-2 and saves and loads the result. Every transformer linear layer (attn.c_attn, attn.c_proj,
/// mlp.c_fc, mlp.c_proj) becomes a <see cref="QuantizedLinear"/> in the chosen format, and the token embedding —
/// which is also the tied output head, a third of GPT-2 124M's weights — a <see cref="QuantizedEmbedding"/>: Q8_0
/// in every format, because the head decides every token and 4 bits there cost the most quality (llama.cpp keeps
/// it at 6 bits in its 4-bit files for the same reason). Position embeddings, layer norms and biases stay float.
/// <para>Checkpoint layout (a directory like a Hugging Face one: config.json, model.safetensors, the tokenizer).
/// model.safetensors holds GPT2Model's state-dict names, with metadata <c>"nabla.quantization": "q8_0" | "q4_0" |
/// "nf4"</c> (the linear layers' format) and, for each quantised weight NAME, <c>"nabla.quantized.NAME"</c> = its
/// format. Quantised weights are stored (out, in) — unlike Hugging Face's Conv1D (in, out) — because the blocks
/// run along the input dimension, as in GGUF:</para>
/// <list type="bullet">
/// <item>q8_0 / q4_0: NAME is U8 [out, in/32·34] or [out, in/32·18]: each row's ggml blocks back to back, the bytes a
/// GGUF file holds (<see cref="GgmlBlocks"/>).</item>
/// <item>nf4: NAME is U8 [out, in/2] (two indices a byte, the even element in the high nibble, as bitsandbytes
/// packs), and NAME.absmax is F32 [out·in/64]; with double quantisation NAME.absmax is U8 instead (codes into
/// bitsandbytes' dynamic map), NAME.nested_absmax F32 [⌈blocks/256⌉] and NAME.nested_offset F32 [1] (<see cref="Nf4"/>).</item>
/// </list>
/// Every other tensor is F32 under its usual name (wpe.weight, h.N.ln_1.weight, h.N.attn.c_attn.bias, ...).
/// </summary>
public static class Gpt2Quantization
{
    public const string FormatKey = "nabla.quantization";
    public const string TensorFormatPrefix = "nabla.quantized.";
    private static readonly string[] LinearLayers = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"];
    /// <summary>The tied embedding and head: Q8_0 whatever the linear layers' format (see the class comment).</summary>
    public const QuantizationFormat EmbeddingFormat = QuantizationFormat.Q8_0;

    /// <summary>Replaces the model's linear layers and token embedding by quantised ones, in place.</summary>
    public static void Quantize(Gpt2Model model, QuantizationFormat format, bool doubleQuantizeScales = false)
    {
        if (doubleQuantizeScales && format != QuantizationFormat.Nf4) throw new ArgumentException("Double quantisation of the scales is an NF4 option.");
        using var _ = GradMode.NoGrad();
        foreach (var path in LinearPaths(model.Config))
        {
            var module = model.GetSubmodule(path);
            if (module is not Linear linear)
                throw new ArgumentException($"{path} is a {module.GetType().Name}, not a Linear: merge adapters (or load the float model) before quantising.");
            model.SetSubmodule(path, Named(path, () => QuantizedLinear.FromLinear(linear, format, doubleQuantizeScales)));
        }
        if (model.GetSubmodule("wte") is Embedding wte)
            model.SetSubmodule("wte", Named("wte", () => new QuantizedEmbedding(QuantizedMatrix.Quantize(wte.Weight, EmbeddingFormat))));
    }

    private static IEnumerable<string> LinearPaths(Gpt2Config config) =>
        Enumerable.Range(0, config.Layers).SelectMany(l => LinearLayers.Select(name => $"h.{l}.{name}"));

    private static T Named<T>(string path, Func<T> make)
    {
        try { return make(); }
        catch (ArgumentException e) { throw new ArgumentException($"{path}: {e.Message}", e); }
    }

    /// <summary>The format of the model's linear layers, or null when it is not quantised.</summary>
    public static QuantizationFormat? FormatOf(Gpt2Model model) =>
        model.Modules().OfType<QuantizedLinear>().Select(q => (QuantizationFormat?)q.Weight.Format).FirstOrDefault();

    /// <summary>Writes config.json and model.safetensors in the layout described on this class.</summary>
    public static void Save(Gpt2Model model, string directory)
    {
        var format = FormatOf(model) ?? throw new ArgumentException("The model is not quantised (Gpt2Quantization.Quantize first).");
        Directory.CreateDirectory(directory);
        var metadata = new Dictionary<string, string> { ["format"] = "pt", [FormatKey] = format.Name() };
        var raw = new List<KeyValuePair<string, RawTensor>>();
        foreach (var (path, module) in model.NamedModules())
        {
            var matrix = module switch { QuantizedLinear q => q.Weight, QuantizedEmbedding e => e.Weight, _ => null };
            if (matrix == null) continue;
            string name = path + ".weight";
            metadata[TensorFormatPrefix + name] = matrix.Format.Name();
            raw.Add(new(name, new RawTensor("U8", [matrix.Rows, matrix.RowBytes], matrix.Data)));
            if (matrix.Format != QuantizationFormat.Nf4) continue;
            if (matrix.QuantizedAbsmax is { } nested)
            {
                raw.Add(new(name + ".absmax", new RawTensor("U8", [nested.Codes.Length], nested.Codes)));
                raw.Add(new(name + ".nested_absmax", Floats(nested.BlockScales)));
                raw.Add(new(name + ".nested_offset", Floats([nested.Offset])));
            }
            else raw.Add(new(name + ".absmax", Floats(matrix.Absmax!)));
        }
        SafeTensors.Save(Path.Combine(directory, Gpt2Checkpoints.WeightsFileName), model.StateDict(), raw, metadata);
        AtomicFile.WriteAllText(Path.Combine(directory, Gpt2Checkpoints.ConfigFileName), model.Config.ToJson());
    }

    private static RawTensor Floats(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length); // little-endian on every platform .NET runs Nabla on
        return new RawTensor("F32", [values.Length], bytes);
    }

    /// <summary>Whether the safetensors file carries this layout's metadata.</summary>
    public static bool IsQuantizedCheckpoint(string weightsFile) =>
        File.Exists(weightsFile) && SafeTensors.ReadHeader(weightsFile).Metadata.ContainsKey(FormatKey);

    /// <summary>Loads a quantised GPT-2: <paramref name="path"/> is its directory (config.json + model.safetensors in
    /// this class's layout) or its model.safetensors. Every tensor's name, dtype and size is checked against the
    /// config; problems name the file and the tensor.</summary>
    public static Gpt2Model Load(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, Gpt2Checkpoints.WeightsFileName) : path;
        var (infos, metadata, dataStart) = SafeTensors.ReadHeader(file);
        string configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, Gpt2Checkpoints.ConfigFileName);
        if (!File.Exists(configPath)) throw new CheckpointException($"{file}: a quantised GPT-2 needs its {Gpt2Checkpoints.ConfigFileName} beside it.");
        var config = Gpt2Config.Load(configPath);
        var byName = infos.ToDictionary(i => i.Name);
        var used = new HashSet<string>();
        SafeTensorInfo Entry(string name, string dtype, params int[] shape)
        {
            if (!byName.TryGetValue(name, out var info)) throw new CheckpointException($"{file}: missing tensor '{name}'.");
            if (info.DType != dtype || !info.Shape.SequenceEqual(shape))
                throw new CheckpointException($"{file}: tensor '{name}': {info.DType} [{string.Join(", ", info.Shape)}], expected {dtype} [{string.Join(", ", shape)}].");
            used.Add(name);
            return info;
        }
        float[] ReadFloats(SafeTensorInfo info)
        {
            var bytes = SafeTensors.ReadBytes(file, info, dataStart);
            var values = new float[bytes.Length / 4];
            Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
            return values;
        }
        QuantizedMatrix Matrix(string name, int rows, int columns)
        {
            string key = TensorFormatPrefix + name;
            if (!metadata.TryGetValue(key, out var formatName) || !QuantizationFormats.TryParse(formatName, out var format))
                throw new CheckpointException($"{file}: tensor '{name}' has no known quantisation format in the metadata ('{key}': {(metadata.TryGetValue(key, out var v) ? $"'{v}'" : "absent")}; q8_0, q4_0 or nf4).");
            try
            {
                var data = SafeTensors.ReadBytes(file, Entry(name, "U8", rows, QuantizedMatrix.RowBytesOf(format, columns)), dataStart);
                if (format != QuantizationFormat.Nf4) return QuantizedMatrix.FromBlocks(format, rows, columns, data);
                int blocks = rows * columns / Nf4.BlockSize;
                if (byName.TryGetValue(name + ".nested_absmax", out _))
                {
                    var codes = SafeTensors.ReadBytes(file, Entry(name + ".absmax", "U8", blocks), dataStart);
                    var scales = ReadFloats(Entry(name + ".nested_absmax", "F32", (blocks + Nf4.ScaleBlockSize - 1) / Nf4.ScaleBlockSize));
                    var offset = ReadFloats(Entry(name + ".nested_offset", "F32", 1))[0];
                    return QuantizedMatrix.FromBlocks(format, rows, columns, data, quantizedAbsmax: new Nf4.QuantizedScales(codes, scales, offset));
                }
                return QuantizedMatrix.FromBlocks(format, rows, columns, data, ReadFloats(Entry(name + ".absmax", "F32", blocks)));
            }
            catch (ArgumentException e)
            {
                throw new CheckpointException($"{file}: tensor '{name}': {e.Message}", e);
            }
        }

        var model = new Gpt2Model(config, new Generator(0));
        foreach (var layer in LinearPaths(config))
        {
            var linear = (Linear)model.GetSubmodule(layer);
            model.SetSubmodule(layer, new QuantizedLinear(Matrix(layer + ".weight", linear.OutFeatures, linear.InFeatures), linear.Bias));
        }
        model.SetSubmodule("wte", new QuantizedEmbedding(Matrix("wte.weight", config.VocabSize, config.Channels)));
        var state = new Dictionary<string, Tensor>();
        foreach (var (name, target) in model.StateDict())
        {
            var values = ReadFloats(Entry(name, "F32", target.Shape.ToArray()));
            state[name] = Tensor.FromArray(values, target.Shape.ToArray());
        }
        var unexpected = infos.Select(i => i.Name).Where(n => !used.Contains(n)).ToList();
        if (unexpected.Count > 0) throw new CheckpointException($"{file}: unexpected tensor(s) {string.Join(", ", unexpected.Take(8).Select(n => $"'{n}'"))} for a quantised GPT-2 of {config.Layers} layers.");
        model.LoadStateDict(state, source: file);
        return model;
    }
}
