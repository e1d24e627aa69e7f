using Nabla.Autograd;

namespace Nabla.NN;

/// <summary>
/// Keys and values of the positions a decoder has already processed, per layer, so that generating the next
/// token costs one position's work instead of the whole prefix's. Layout per layer: (B, H, capacity, D).
/// </summary>
public sealed class KvCache
{
    private readonly Tensor[] _keys, _values;

    /// <summary>An empty cache on <paramref name="device"/> (default: the CPU), which must be the model's.</summary>
    public KvCache(int layers, int batch, int heads, int capacity, int headDim, Device? device = null)
    {
        Capacity = capacity;
        int[] shape = [batch, heads, capacity, headDim];
        _keys = Enumerable.Range(0, layers).Select(_ => Tensor.Zeros(shape, device ?? Device.Cpu)).ToArray();
        _values = Enumerable.Range(0, layers).Select(_ => Tensor.Zeros(shape, device ?? Device.Cpu)).ToArray();
    }

    /// <summary>Positions stored so far (the next token's position).</summary>
    public int Length { get; private set; }
    public int Capacity { get; }

    /// <summary>Stores k, v (B, H, T, D) of <paramref name="layer"/> at positions [Length, Length + T) and returns
    /// views of all keys and values so far, (B, H, Length + T, D). Call <see cref="Advance"/> after the last layer.</summary>
    internal (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        int t = k.Size(2);
        if (Length + t > Capacity)
            throw new InvalidOperationException($"The KV cache holds {Capacity} positions; {Length} are used and {t} more do not fit.");
        using var _ = GradMode.NoGrad();
        _keys[layer].Narrow(2, Length, t).CopyFrom(k);
        _values[layer].Narrow(2, Length, t).CopyFrom(v);
        return (_keys[layer].Narrow(2, 0, Length + t), _values[layer].Narrow(2, 0, Length + t));
    }

    internal void Advance(int t) => Length += t;

    /// <summary>Forgets everything (reuse the buffers for a new prompt).</summary>
    public void Clear() => Length = 0;
}

/// <summary>Multi-head self-attention, GPT-2 style: one projection to q, k, v (c_attn), fused attention, one
/// output projection (c_proj). Causal (each position sees itself and the ones before: a decoder, GPT-2) or not
/// (every position sees every other: an encoder, ViT). The projections run as registered, so either can be
/// replaced (<see cref="Module.SetSubmodule"/>) by any module mapping (B, T, C) to the same shape.</summary>
public sealed class SelfAttention : Module
{
    public int Heads { get; }
    /// <summary>Whether each position attends only to itself and earlier positions.</summary>
    public bool Causal { get; }
    /// <summary>The registered c_attn, while it is a <see cref="Linear"/>.</summary>
    public Linear CAttn => Child<Linear>("c_attn");
    /// <summary>The registered c_proj, while it is a <see cref="Linear"/>.</summary>
    public Linear CProj => Child<Linear>("c_proj");

    public SelfAttention(int channels, int heads, bool bias = true, bool causal = true)
    {
        if (channels % heads != 0) throw new ArgumentException($"{channels} channels do not split into {heads} heads.");
        Heads = heads;
        Causal = causal;
        RegisterModule("c_attn", new Linear(channels, 3 * channels, bias));
        RegisterModule("c_proj", new Linear(channels, channels, bias));
    }

    public override Tensor Forward(Tensor x) => Forward(x, null, 0);

    /// <summary>x: (B, T, C). With a cache (causal attention only), x holds the T new positions that follow the
    /// cached ones.</summary>
    public Tensor Forward(Tensor x, KvCache? cache, int layer)
    {
        if (cache != null && !Causal) throw new InvalidOperationException("A KV cache is for causal (decoder) attention; this attention is not causal.");
        var qkv = ForwardChild("c_attn", x);                                // (B, T, 3C)
        if (cache == null && Causal) return ForwardChild("c_proj", F.CausalSelfAttention(qkv, Heads));
        int B = x.Size(0), T = x.Size(1), C = x.Size(2), D = C / Heads;
        Tensor Part(int i) => qkv.Narrow(2, i * C, C).View(B, T, Heads, D).Transpose(1, 2); // (B, H, T, D) views
        var (keys, values) = cache == null ? (Part(1), Part(2)) : cache.Append(layer, Part(1), Part(2));
        var y = F.ScaledDotProductAttention(Part(0), keys, values, causal: Causal); // (B, H, T, D)
        return ForwardChild("c_proj", y.Transpose(1, 2).Reshape(B, T, C));
    }
}

/// <summary>The transformer's position-wise feed-forward network: Linear(C, hidden) → GELU → Linear(hidden, C)
/// (hidden = 4C in GPT-2 and ViT-Base).</summary>
public sealed class TransformerMlp : Module
{
    /// <summary>The registered c_fc, while it is a <see cref="Linear"/>.</summary>
    public Linear CFc => Child<Linear>("c_fc");
    /// <summary>The registered c_proj, while it is a <see cref="Linear"/>.</summary>
    public Linear CProj => Child<Linear>("c_proj");
    private readonly GeluApproximation _gelu;

    public TransformerMlp(int channels, int hidden, GeluApproximation gelu = GeluApproximation.Tanh, bool bias = true)
    {
        _gelu = gelu;
        RegisterModule("c_fc", new Linear(channels, hidden, bias));
        RegisterModule("c_proj", new Linear(hidden, channels, bias));
    }

    public override Tensor Forward(Tensor x) => ForwardChild("c_proj", ForwardChild("c_fc", x).Gelu(_gelu));
}

/// <summary>A pre-norm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)). GPT-2's defaults (causal
/// attention, an MLP of 4C with tanh-approximated GELU); an encoder such as ViT passes <c>causal: false</c>, its
/// MLP width and exact GELU.</summary>
public sealed class TransformerBlock : Module
{
    public LayerNorm Ln1 => Child<LayerNorm>("ln_1");
    public SelfAttention Attn => Child<SelfAttention>("attn");
    public LayerNorm Ln2 => Child<LayerNorm>("ln_2");
    public TransformerMlp Mlp => Child<TransformerMlp>("mlp");

    public TransformerBlock(int channels, int heads, float layerNormEps = 1e-5f, bool causal = true, int? mlpHidden = null,
        GeluApproximation gelu = GeluApproximation.Tanh)
    {
        RegisterModule("ln_1", new LayerNorm(channels, layerNormEps));
        RegisterModule("attn", new SelfAttention(channels, heads, causal: causal));
        RegisterModule("ln_2", new LayerNorm(channels, layerNormEps));
        RegisterModule("mlp", new TransformerMlp(channels, mlpHidden ?? 4 * channels, gelu));
    }

    public override Tensor Forward(Tensor x) => Forward(x, null, 0);

    public Tensor Forward(Tensor x, KvCache? cache, int layer)
    {
        var normed = ForwardChild("ln_1", x);
        x = x.Add(cache == null
            ? ForwardChild("attn", normed)
            : ForwardChild<SelfAttention, Tensor>("attn", attn => attn.Forward(normed, cache, layer)));
        return x.Add(ForwardChild("mlp", ForwardChild("ln_2", x)));
    }
}
