using System.Text.Json;
using System.Text.Json.Serialization;

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

    public void Validate()
    {
        if (VocabSize <= 0 || MaxSequenceLength <= 0 || Channels <= 0 || Layers <= 0 || Heads <= 0)
            throw new ArgumentException($"Invalid GPT-2 config: every size must be positive ({this}).");
        if (Channels % Heads != 0) throw new ArgumentException($"Invalid GPT-2 config: {Channels} channels do not split into {Heads} heads.");
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a Hugging Face config.json (unknown keys are ignored).</summary>
    public static Gpt2Config FromJson(string json, string source)
    {
        try
        {
            var config = JsonSerializer.Deserialize<Gpt2Config>(json, Json) ?? throw new IO.CheckpointException($"{source}: empty config.");
            config.Validate();
            return config;
        }
        catch (JsonException e)
        {
            throw new IO.CheckpointException($"{source}: corrupt config.json ({e.Message}).", e);
        }
    }
}
