using Nabla.Autograd;
using Nabla.NN;

namespace Nabla.Models.Gpt2;

/// <summary>
/// GPT-2 (Radford et al., 2019): token and learned position embeddings, a stack of pre-norm transformer
/// blocks with causal self-attention and a GELU (tanh) MLP, a final layer norm, and a language-model head
/// tied to the token embedding. Parameter names follow Hugging Face's GPT2Model ("wte.weight",
/// "h.0.attn.c_attn.weight", ...), except that linear weights are stored (out, in) as everywhere in Nabla.
/// </summary>
public sealed class Gpt2Model : Module
{
    public Gpt2Config Config { get; }

    /// <summary>Nabla's names are GPT2Model's; GPT2LMHeadModel (what the hub's checkpoints and PEFT adapters name)
    /// puts its body under "transformer.".</summary>
    public override string HubNamePrefix => "transformer.";
    public override (string Embedding, string HubHead)? TiedHead => ("wte", "lm_head");
    public Embedding Wte => Child<Embedding>("wte");
    public Embedding Wpe => Child<Embedding>("wpe");
    /// <summary>The registered blocks h.0, h.1, ... (read from the registry on each access).</summary>
    public IReadOnlyList<TransformerBlock> Blocks => _blockNames.Select(Child<TransformerBlock>).ToList();
    public LayerNorm LnF => Child<LayerNorm>("ln_f");
    private readonly string[] _blockNames; // "h.0", "h.1", ...: the paths the forward pass runs

    public Gpt2Model(Gpt2Config config, Generator? generator = null)
    {
        config.Validate();
        Config = config;
        RegisterModule("wte", new Embedding(config.VocabSize, config.Channels));
        RegisterModule("wpe", new Embedding(config.MaxSequenceLength, config.Channels));
        var h = RegisterModule("h", new Sequential());
        for (int i = 0; i < config.Layers; i++) h.Add(new TransformerBlock(config.Channels, config.Heads, config.LayerNormEps));
        _blockNames = Enumerable.Range(0, config.Layers).Select(i => $"h.{i}").ToArray();
        RegisterModule("ln_f", new LayerNorm(config.Channels, config.LayerNormEps));
        InitializeWeights(generator ?? Generator.Default);
    }

    /// <summary>GPT-2's initialisation: N(0, 0.02) for embeddings and linear weights, with the projections
    /// that feed the residual stream (attn.c_proj, mlp.c_proj) scaled by 1/√(2·layers); zero biases.</summary>
    private void InitializeWeights(Generator g)
    {
        float residualStd = 0.02f / MathF.Sqrt(2f * Config.Layers);
        foreach (var (name, p) in NamedParameters())
        {
            if (name.EndsWith(".bias")) Init.Zeros(p);
            else if (name.Contains("ln_")) Init.Ones(p);
            else Init.Normal(p, 0, name.EndsWith("c_proj.weight") ? residualStd : 0.02f, g);
        }
    }

    /// <summary>Logits (B, T, V) for token ids (B, T). With a cache, the ids are the T positions that follow
    /// the cached ones, and the cache advances by T. With <paramref name="lastPositionOnly"/>, the logits of the last
    /// position alone, (B, 1, V): generation needs no others, and the head (V·C per position) is otherwise ~30 % of
    /// a 512-token prefill.</summary>
    public Tensor Forward(Tensor tokens, KvCache? cache, bool lastPositionOnly = false)
    {
        if (tokens.DType != DType.Int32 || tokens.Rank != 2)
            throw new ArgumentException($"GPT-2 takes token ids as an Int32 (batch, time) tensor, got {tokens.DType} {tokens.ShapeString}.");
        int T = tokens.Size(1), start = cache?.Length ?? 0;
        if (start + T > Config.MaxSequenceLength)
            throw new ArgumentException($"The sequence ({start + T} positions) is longer than the model's context of {Config.MaxSequenceLength}.");
        var positions = Tensor.FromArray(Enumerable.Range(start, T).ToArray()).To(tokens.Device);
        var x = ForwardChild("wte", tokens).Add(ForwardChild("wpe", positions)); // (B, T, C)
        for (int i = 0; i < _blockNames.Length; i++)
        {
            int layer = i;
            x = cache == null
                ? ForwardChild(_blockNames[i], x)
                : ForwardChild<TransformerBlock, Tensor>(_blockNames[i], block => block.Forward(x, cache, layer));
        }
        cache?.Advance(T);
        if (lastPositionOnly) x = x.Narrow(1, T - 1, 1);                         // (B, 1, C)
        x = ForwardChild("ln_f", x);
        // (B, T, V), head tied to wte (read in place when the table is quantised; with its adapter when it has one)
        return GetSubmodule("wte") is ITiedEmbedding tied ? tied.Unembed(x) : F.Linear(x, Wte.Weight);
    }

    public override Tensor Forward(Tensor tokens) => Forward(tokens, null);

    /// <summary>Mean cross-entropy of next-token prediction: logits (B, T, V) against targets (B, T).</summary>
    public static Tensor Loss(Tensor logits, Tensor targets, int ignoreIndex = -100) =>
        F.CrossEntropy(logits.Reshape(-1, logits.Size(-1)), targets.Reshape(-1), ignoreIndex: ignoreIndex);

    /// <summary>A cache sized for this model, on the device of its parameters.</summary>
    public KvCache NewCache(int batch, int capacity) =>
        new(Config.Layers, batch, Config.Heads, Math.Min(capacity, Config.MaxSequenceLength), Config.Channels / Config.Heads, Device);

    /// <summary>Where the model's parameters are (<see cref="Module.To"/> moves them): its inputs go there.</summary>
    public Device Device => Wpe.Weight.Device; // wpe: quantisation replaces wte, never wpe

    /// <summary>Parameters split for AdamW: matrices (and embeddings) decay, biases and layer-norm gains do not.</summary>
    public (List<Tensor> Decay, List<Tensor> NoDecay) WeightDecayGroups()
    {
        var decay = new List<Tensor>();
        var noDecay = new List<Tensor>();
        foreach (var (_, p) in NamedParameters()) (p.Rank >= 2 ? decay : noDecay).Add(p);
        return (decay, noDecay);
    }
}
