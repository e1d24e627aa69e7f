using System.Text.Json;
using System.Text.Json.Serialization;
using Nabla.IO;

namespace Nabla.Models.Gpt2;

/// <summary>The hyper-parameters that define a GPT-2 (Hugging Face's config.json names).</summary>
public sealed record Gpt2Config
{
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 50257;
    /// <summary>Longest context (learned position embeddings).</summary>
    [JsonPropertyName("n_positions")] public int MaxSequenceLength { get; init; } = 1024;
    [JsonPropertyName("n_embd")] public int Channels { get; init; } = 768;
    [JsonPropertyName("n_layer")] public int Layers { get; init; } = 12;
    [JsonPropertyName("n_head")] public int Heads { get; init; } = 12;
    [JsonPropertyName("layer_norm_epsilon")] public float LayerNormEps { get; init; } = 1e-5f;

    // Limits far above every published GPT-2 (XL: 48 layers, 1600 channels, 25 heads, 50257 tokens, 1024
    // positions) that keep a corrupt or hostile config from asking for terabytes before anything is checked.
    public const int MaxLayers = 1024;
    public const int MaxChannels = 65536;
    public const int MaxHeads = 4096;
    public const int MaxVocabSize = 1 << 22;
    public const int MaxPositions = 1 << 20;
    /// <summary>Most parameters a config may describe (64 GiB of float32).</summary>
    public const long MaxParameters = 16L << 30;

    public static Gpt2Config Gpt2Small => new();
    public static Gpt2Config Gpt2Medium => new() { Channels = 1024, Layers = 24, Heads = 16 };
    public static Gpt2Config Gpt2Large => new() { Channels = 1280, Layers = 36, Heads = 20 };
    public static Gpt2Config Gpt2XL => new() { Channels = 1600, Layers = 48, Heads = 25 };

    /// <summary>The published sizes by name: gpt2 (124M), gpt2-medium (355M), gpt2-large (774M), gpt2-xl (1558M).</summary>
    public static Gpt2Config Named(string name) => name.ToLowerInvariant() switch
    {
        "gpt2" or "gpt2-small" or "124m" => Gpt2Small,
        "gpt2-medium" or "355m" => Gpt2Medium,
        "gpt2-large" or "774m" => Gpt2Large,
        "gpt2-xl" or "1558m" => Gpt2XL,
        _ => throw new ArgumentException($"Unknown GPT-2 size '{name}' (gpt2, gpt2-medium, gpt2-large, gpt2-xl)."),
    };

    /// <summary>
    /// Parameters of a model of this shape (the head is tied to wte, so it adds none), computed in 128 bits so
    /// that no size a file can state wraps around.
    /// </summary>
    public Int128 ParameterCount(int paddedVocabSize = 0)
    {
        Int128 C = Channels, L = Layers;
        Int128 perLayer = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C);
        return (Int128)Math.Max(VocabSize, paddedVocabSize) * C + (Int128)MaxSequenceLength * C + L * perLayer + 2 * C;
    }

    /// <summary>
    /// Checks every size against its limit and the total against <see cref="MaxParameters"/> and the memory
    /// this process may use, before anything is allocated; the message names the config key.
    /// </summary>
    public void Validate()
    {
        static void InRange(string key, long value, long max)
        {
            if (value < 1 || value > max) throw new ArgumentException($"{key} = {value} is out of range (1 to {max}).");
        }
        InRange("n_layer", Layers, MaxLayers);
        InRange("n_embd", Channels, MaxChannels);
        InRange("n_head", Heads, MaxHeads);
        InRange("vocab_size", VocabSize, MaxVocabSize);
        InRange("n_positions", MaxSequenceLength, MaxPositions);
        if (Channels % Heads != 0) throw new ArgumentException($"n_embd = {Channels} does not split into n_head = {Heads} heads.");
        if (!float.IsFinite(LayerNormEps) || LayerNormEps <= 0 || LayerNormEps >= 1)
            throw new ArgumentException($"layer_norm_epsilon = {LayerNormEps} must be in (0, 1).");
        CheckAffordable(ParameterCount());
    }

    /// <summary>Refuses a model of <paramref name="parameters"/> float32 values that exceeds the limit or the memory available.</summary>
    internal void CheckAffordable(Int128 parameters)
    {
        if (parameters > MaxParameters)
            throw new ArgumentException($"n_layer = {Layers}, n_embd = {Channels}, vocab_size = {VocabSize}, n_positions = {MaxSequenceLength} make {parameters:N0} parameters, more than the limit of {MaxParameters:N0}.");
        // Every tensor is indexed by int: the largest ones are wte (V·C) and the MLP's 4C·C.
        long largest = Math.Max((long)VocabSize * Channels, Math.Max(4L * Channels * Channels, (long)MaxSequenceLength * Channels));
        if (largest > int.MaxValue)
            throw new ArgumentException($"n_embd = {Channels} with vocab_size = {VocabSize} and n_positions = {MaxSequenceLength} makes a tensor of {largest:N0} values, more than one tensor can hold ({int.MaxValue:N0}).");
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (available > 0 && parameters * 4 > available)
            throw new ArgumentException($"n_layer = {Layers}, n_embd = {Channels}, vocab_size = {VocabSize} make {parameters:N0} parameters ({(double)(parameters * 4) / (1 << 30):F1} GiB), more than the {available / (double)(1 << 30):F1} GiB of memory available.");
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    // Settings of transformers' GPT2Config that would make a model compute something else than this GPT-2,
    // with the values that match it: refused rather than silently ignored. ("gelu_pytorch_tanh" is the same
    // tanh approximation as "gelu_new", computed by a fused kernel.)
    private static readonly (string Key, string[] Values)[] TextSettings =
    [
        ("model_type", ["gpt2"]), ("activation_function", ["gelu_new", "gelu_pytorch_tanh"]),
    ];
    private static readonly (string Key, bool Value)[] FlagSettings =
    [
        ("scale_attn_weights", true), ("scale_attn_by_inverse_layer_idx", false), ("add_cross_attention", false),
    ];

    /// <summary>
    /// Reads a Hugging Face config.json (keys that do not change the computation, such as dropout rates, are
    /// ignored); a bad value is reported with the file and key.
    /// </summary>
    public static Gpt2Config FromJson(string json, string source)
    {
        Gpt2Config config;
        try
        {
            config = JsonSerializer.Deserialize<Gpt2Config>(json, Json) ?? throw new CheckpointException($"{source}: empty config (null).");
            CheckFixedSettings(json, source, config);
        }
        catch (JsonException e)
        {
            // e.Path is the key ("$.n_layer") when the value has the wrong type or does not fit an int.
            string where = e.Path is { Length: > 2 } path ? $" at {path[2..]}" : "";
            throw new CheckpointException($"{source}: corrupt config{where} ({ErrorText.Json(e)}).", e);
        }
        try
        {
            config.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CheckpointException($"{source}: {e.Message}", e);
        }
        return config;
    }

    private static void CheckFixedSettings(string json, string source, Gpt2Config config)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        foreach (var (key, values) in TextSettings)
            if (root.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null
                && !(value.ValueKind == JsonValueKind.String && values.Contains(value.GetString())))
                throw new CheckpointException($"{source}: {key} is {value.GetRawText()}; only \"{string.Join("\" or \"", values)}\" (GPT-2's) is supported.");
        foreach (var (key, flag) in FlagSettings)
            if (root.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null && value.ValueKind != (flag ? JsonValueKind.True : JsonValueKind.False))
                throw new CheckpointException($"{source}: {key} is {value.GetRawText()}; only {(flag ? "true" : "false")} (GPT-2's) is supported.");
        if (root.TryGetProperty("n_inner", out var inner) && inner.ValueKind != JsonValueKind.Null
            && !(inner.ValueKind == JsonValueKind.Number && inner.TryGetInt64(out long hidden) && hidden == 4L * config.Channels))
            throw new CheckpointException($"{source}: n_inner is {inner.GetRawText()}; only null or 4 × n_embd (GPT-2's MLP width) is supported.");
    }

    /// <summary>Reads a config.json file, refusing one too large to be a config before reading it.</summary>
    public static Gpt2Config Load(string path)
    {
        const long MaxConfigBytes = 1 << 20;
        if (!File.Exists(path)) throw new CheckpointException($"{path}: file not found.");
        string json;
        try { json = IO.BoundedFile.ReadAllText(path, MaxConfigBytes, "a model config"); }
        catch (IO.InputFileException e) { throw new CheckpointException(e.Message, e); }
        return FromJson(json, path);
    }
}
