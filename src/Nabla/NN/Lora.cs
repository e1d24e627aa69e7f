using System.Numerics.Tensors;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Nabla.Autograd;
using Nabla.IO;
using Nabla.Quantization;

namespace Nabla.NN;

/// <summary>
/// What every adapter layer shares: a frozen base layer, the child "base_layer" as in PEFT, tensors that train and are
/// saved under PEFT's names, and a change to the base weight that <see cref="Merge"/> folds in and <see cref="Unmerge"/>
/// takes out again.
/// </summary>
public abstract class AdapterLayer : Module
{
    /// <summary>True while the adapter is folded into the base weight (<see cref="Merge"/>); the forward pass then runs the base alone.</summary>
    public bool Merged { get; private set; }

    protected AdapterLayer(Module baseLayer)
    {
        ArgumentNullException.ThrowIfNull(baseLayer);
        baseLayer.RequiresGrad_(false);
        RegisterModule("base_layer", baseLayer);
    }

    /// <summary>The frozen layer the adapter wraps, whatever its kind.</summary>
    public Module WrappedLayer => GetSubmodule("base_layer");

    /// <summary>The adapter's trained tensors under PEFT's names relative to the layer ("lora_A.weight", ...).</summary>
    public abstract IEnumerable<(string Name, Tensor Tensor)> AdapterTensors();

    /// <summary>Folds the adapter into the base weight, so inference runs the base layer alone. Training a merged
    /// adapter would not change the output the base now holds, so unmerge before training again.</summary>
    public void Merge()
    {
        if (Merged) throw new InvalidOperationException($"This {GetType().Name} is already merged.");
        using (GradMode.NoGrad()) FoldIn();
        Merged = true;
    }

    /// <summary>Takes the adapter out of the base weight again.</summary>
    public void Unmerge()
    {
        if (!Merged) throw new InvalidOperationException($"This {GetType().Name} is not merged.");
        using (GradMode.NoGrad()) TakeOut();
        Merged = false;
    }

    protected abstract void FoldIn();
    protected abstract void TakeOut();
}

/// <summary>
/// An embedding that is also its model's output layer (a tied head, <see cref="Module.TiedHead"/>) and computes that
/// layer its own way: quantised, or with an adapter that must change both ends alike.
/// </summary>
public interface ITiedEmbedding
{
    /// <summary>The output layer: logits (…, V) of hidden states x (…, C), x·Wᵀ for the table W this embedding reads.</summary>
    Tensor Unembed(Tensor x);
}

/// <summary>
/// What every LoRA layer shares (Hu et al., 2021): a low-rank update ΔW = s·(B·A) of the base weight with s = α/r
/// (or α/√r with rsLoRA, Kalajdzievski, 2023).
/// </summary>
public abstract class LoraLayer : AdapterLayer
{
    public int Rank { get; }
    public float Alpha { get; }
    public float DropoutP { get; }
    public bool UseRsLora { get; }
    /// <summary>The factor of B·A: α/r, or α/√r with rsLoRA.</summary>
    public float Scaling { get; }
    protected readonly Generator? DropoutGenerator;

    protected LoraLayer(Module baseLayer, int rank, float alpha, float dropout, bool useRsLora, Generator? generator) : base(baseLayer)
    {
        if (rank <= 0) throw new ArgumentOutOfRangeException(nameof(rank), $"LoRA rank must be positive, got {rank}.");
        if (!float.IsFinite(alpha) || alpha <= 0) throw new ArgumentOutOfRangeException(nameof(alpha), $"LoRA alpha must be a positive number, got {alpha}.");
        if (dropout is < 0 or >= 1 || float.IsNaN(dropout)) throw new ArgumentOutOfRangeException(nameof(dropout), $"LoRA dropout must be in [0, 1), got {dropout}.");
        Rank = rank;
        Alpha = alpha;
        DropoutP = dropout;
        UseRsLora = useRsLora;
        Scaling = useRsLora ? alpha / MathF.Sqrt(rank) : alpha / rank;
        DropoutGenerator = generator;
    }

    /// <summary>ΔW, shaped like the base weight.</summary>
    public abstract Tensor DeltaWeight();

    /// <summary>The base layer's float weight, which merging changes; null when it is quantised (and cannot be merged).</summary>
    protected abstract Tensor? FloatBaseWeight { get; }

    /// <summary>Adds ΔW to the base weight.</summary>
    protected override void FoldIn()
    {
        if (FloatBaseWeight == null)
            throw new InvalidOperationException("This LoRA layer's base is quantised; folding ΔW into it would re-quantise the weight, so merge the adapter into the float base model instead.");
        FloatBaseWeight.CopyFrom(FloatBaseWeight.Add(DeltaWeight()));
    }

    /// <summary>Subtracts ΔW again (recomputed from the unchanged A and B, so the base comes back to within float rounding).</summary>
    protected override void TakeOut() => FloatBaseWeight!.CopyFrom(FloatBaseWeight.Sub(DeltaWeight()));

    /// <summary>The adapter's input: x, or x with dropout while training.</summary>
    protected Tensor AdapterInput(Tensor x) => DropoutP > 0 ? F.Dropout(x, DropoutP, Training, DropoutGenerator) : x;

    protected override string Describe() => $"r={Rank}, alpha={Alpha}, dropout={DropoutP}, scaling={Scaling}{(Merged ? ", merged" : "")}";
}

/// <summary>
/// A <see cref="Linear"/> with a low-rank update: y = base(x) + dropout(x)·Aᵀ·Bᵀ·s with A: (r, in) and B: (out, r).
/// Laid out as PEFT's lora.Linear, so the state-dict names are PEFT's: A and B are the bias-free linear layers
/// "lora_A" and "lora_B". A starts Kaiming-uniform with a = √5 (U(-1/√in, 1/√in), what <see cref="Linear"/> draws)
/// and B at zero, so a fresh adapter leaves the model's output unchanged.
/// <para>The base may also be a <see cref="QuantizedLinear"/> (QLoRA, Dettmers et al., 2023): its packed weight stays
/// frozen and the gradient reaches the input through it, so only A and B are held in float.</para>
/// <para>With DoRA (Liu et al., 2024; PEFT's use_dora) the adapted weight is split into a direction and a length:
/// W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖, the norm taken over each output's row and m, "lora_magnitude_vector" (out),
/// trained beside A and B and starting at ‖W‖, so a fresh adapter again leaves the output unchanged. As in the paper
/// (section 4.3) and PEFT, the norm is a constant for the gradient; it is recomputed from A and B at every forward.</para>
/// </summary>
public sealed class LoraLinear : LoraLayer
{
    /// <summary>The float base layer (an error when the base is quantised: see <see cref="HasQuantizedBase"/>).</summary>
    public Linear BaseLayer => Child<Linear>("base_layer");
    public bool HasQuantizedBase => GetSubmodule("base_layer") is QuantizedLinear;
    public Linear LoraA => Child<Linear>("lora_A");
    public Linear LoraB => Child<Linear>("lora_B");
    /// <summary>DoRA's magnitude m (out), PEFT's lora_magnitude_vector; null for plain LoRA.</summary>
    public Tensor? Magnitude { get; }
    public bool UseDora => Magnitude != null;
    /// <summary>The row norms ‖W + ΔW‖ a DoRA merge divided by, to unmerge exactly what was merged.</summary>
    private Tensor? _mergedNorm;

    public LoraLinear(Linear baseLayer, int rank, float alpha, float dropout = 0f, bool useRsLora = false, Generator? generator = null, bool useDora = false)
        : this(baseLayer, baseLayer?.InFeatures ?? 0, baseLayer?.OutFeatures ?? 0, rank, alpha, dropout, useRsLora, generator, useDora) { }

    /// <summary>QLoRA: an adapter over a frozen quantised layer.</summary>
    public LoraLinear(QuantizedLinear baseLayer, int rank, float alpha, float dropout = 0f, bool useRsLora = false, Generator? generator = null)
        : this(baseLayer, baseLayer?.InFeatures ?? 0, baseLayer?.OutFeatures ?? 0, rank, alpha, dropout, useRsLora, generator, useDora: false) { }

    private LoraLinear(Module baseLayer, int inFeatures, int outFeatures, int rank, float alpha, float dropout, bool useRsLora, Generator? generator, bool useDora)
        : base(baseLayer, rank, alpha, dropout, useRsLora, generator)
    {
        RegisterModule("lora_A", new Linear(inFeatures, rank, bias: false, generator));
        Init.Zeros(RegisterModule("lora_B", new Linear(rank, outFeatures, bias: false)).Weight);
        if (useDora) Magnitude = RegisterParameter("lora_magnitude_vector", AdaptedRowNorms());
    }

    public override Tensor Forward(Tensor x)
    {
        if (UseDora && !Merged) return DoraForward(x);
        var y = ForwardChild("base_layer", x);
        if (Merged) return y;
        // Added into the base layer's fresh output: y + B(A(x))·s as separate ops would keep two more (…, out)
        // activations per adapted layer until the step ends, more than full fine-tuning's whole step in small models.
        return Tensor.AddLowRank(y, AdapterInput(x), LoraA.Weight, LoraB.Weight, Scaling);
    }

    /// <summary>DoRA: y = b + (m / ‖W + ΔW‖) ⊙ (x·Wᵀ + s·x·Aᵀ·Bᵀ), the norm held constant. With dropout while training,
    /// PEFT's form: base(x) + (m/‖·‖ − 1) ⊙ x'·Wᵀ + (m/‖·‖) ⊙ s·x'·Aᵀ·Bᵀ for the dropped-out x'.</summary>
    private Tensor DoraForward(Tensor x)
    {
        var scale = Magnitude!.Div(AdaptedRowNorms());
        var input = AdapterInput(x);
        var adapted = Tensor.AddLowRank(F.Linear(input, BaseLayer.Weight), input, LoraA.Weight, LoraB.Weight, Scaling);
        if (ReferenceEquals(input, x)) return Tensor.ScaleColumnsAddBias(adapted, scale, BaseLayer.Bias);
        return ForwardChild("base_layer", x).Add(Tensor.ScaleColumnsAddBias(adapted, scale, null)).Sub(F.Linear(input, BaseLayer.Weight));
    }

    /// <summary>‖W + ΔW‖ over each output's row (out), outside autograd. On the CPU one row at a time: the (out, in)
    /// matrices W + ΔW and its square would otherwise live until the training step ends, for every adapted layer.</summary>
    private Tensor AdaptedRowNorms()
    {
        using var _ = GradMode.NoGrad();
        var weight = BaseLayer.Weight;
        if (!weight.Device.IsCpu) return weight.Add(DeltaWeight()).Square().Sum(1).Sqrt();
        ReadOnlySpan<float> w = weight.Contiguous().AsSpan(), a = LoraA.Weight.Contiguous().AsSpan(), b = LoraB.Weight.Contiguous().AsSpan();
        int outF = weight.Shape[0], inF = weight.Shape[1];
        var norms = new float[outF];
        var row = new float[inF];
        for (int o = 0; o < outF; o++)
        {
            w.Slice(o * inF, inF).CopyTo(row);
            for (int k = 0; k < Rank; k++)
                TensorPrimitives.MultiplyAdd(a.Slice(k * inF, inF), Scaling * b[o * Rank + k], row, row);
            norms[o] = TensorPrimitives.Norm<float>(row);
        }
        return Tensor.FromArray(norms);
    }

    /// <summary>LoRA: W + ΔW. DoRA: m ⊙ (W + ΔW) / ‖W + ΔW‖ row by row (the norm kept for <see cref="TakeOut"/>).</summary>
    protected override void FoldIn()
    {
        if (!UseDora) { base.FoldIn(); return; }
        _mergedNorm = AdaptedRowNorms();
        var weight = BaseLayer.Weight;
        weight.CopyFrom(weight.Add(DeltaWeight()).Mul(Magnitude!.Div(_mergedNorm).Unsqueeze(1)));
    }

    protected override void TakeOut()
    {
        if (!UseDora) { base.TakeOut(); return; }
        var weight = BaseLayer.Weight;
        weight.CopyFrom(weight.Mul(_mergedNorm!.Div(Magnitude!).Unsqueeze(1)).Sub(DeltaWeight()));
        _mergedNorm = null;
    }

    /// <summary>ΔW = B·A·s, shaped like the base weight (out, in).</summary>
    public override Tensor DeltaWeight()
    {
        using var _ = GradMode.NoGrad();
        return LoraB.Weight.MatMul(LoraA.Weight).Mul(Scaling);
    }

    protected override Tensor? FloatBaseWeight => HasQuantizedBase ? null : BaseLayer.Weight;

    public override IEnumerable<(string Name, Tensor Tensor)> AdapterTensors() => UseDora
        ? [("lora_A.weight", LoraA.Weight), ("lora_B.weight", LoraB.Weight), ("lora_magnitude_vector", Magnitude!)]
        : [("lora_A.weight", LoraA.Weight), ("lora_B.weight", LoraB.Weight)];

    protected override string Describe() => base.Describe() + (UseDora ? ", DoRA" : "");
}

/// <summary>
/// An <see cref="Embedding"/> with a low-rank update, laid out as PEFT's lora.Embedding: row t of the table becomes
/// W[t] + s·(Aᵀ)[t]·Bᵀ, with A = "lora_embedding_A": (r, V) and B = "lora_embedding_B": (C, r), so ΔW = s·(B·A)ᵀ,
/// (V, C). The initialisation is the reverse of <see cref="LoraLinear"/>'s, as in PEFT (and Microsoft's loralib):
/// A starts at zero and B is drawn N(0, 1), so a fresh adapter again leaves the output unchanged.
/// <para>When the model's output layer is this table transposed (GPT-2's tied head, see <see cref="Module.TiedHead"/>),
/// the model calls <see cref="Unembed"/>, which applies the same update there: logits = x·Wᵀ + s·(x·B)·A. That is
/// PEFT's ensure_weight_tying, whose lm_head adapter is lora_A = Bᵀ and lora_B = Aᵀ, the same tensors; it is also
/// what the merged model computes, since merging changes the one table both ends read. Dropout applies to the
/// head's input only, as PEFT's embedding adapter has none.</para>
/// </summary>
public sealed class LoraEmbedding : LoraLayer, ITiedEmbedding
{
    public Embedding BaseLayer => Child<Embedding>("base_layer");
    /// <summary>A: (r, V), zeros at first.</summary>
    public Tensor LoraEmbeddingA { get; }
    /// <summary>B: (C, r), N(0, 1) at first.</summary>
    public Tensor LoraEmbeddingB { get; }

    public LoraEmbedding(Embedding baseLayer, int rank, float alpha, float dropout = 0f, bool useRsLora = false, Generator? generator = null)
        : base(baseLayer, rank, alpha, dropout, useRsLora, generator)
    {
        LoraEmbeddingA = RegisterParameter("lora_embedding_A", Tensor.Zeros(rank, baseLayer.NumEmbeddings));
        LoraEmbeddingB = Init.Normal(RegisterParameter("lora_embedding_B", Tensor.Zeros(baseLayer.EmbeddingDim, rank)), 0, 1, generator);
    }

    public override Tensor Forward(Tensor tokens)
    {
        var y = ForwardChild("base_layer", tokens);
        if (Merged) return y;
        return y.Add(F.Embedding(tokens, LoraEmbeddingA.T).MatMul(LoraEmbeddingB.T).Mul(Scaling));   // (…, r)·(r, C)
    }

    /// <summary>The tied output layer: x·(W + ΔW)ᵀ for x: (…, C), without forming W + ΔW (the head's adapter is A' = Bᵀ,
    /// B' = Aᵀ, added into the base logits as <see cref="LoraLinear"/> adds its own).</summary>
    public Tensor Unembed(Tensor x)
    {
        var logits = F.Linear(x, BaseLayer.Weight);
        if (Merged) return logits;
        return Tensor.AddLowRank(logits, AdapterInput(x), LoraEmbeddingB.T, LoraEmbeddingA.T, Scaling);
    }

    /// <summary>ΔW = s·(B·A)ᵀ = s·Aᵀ·Bᵀ, shaped like the table (V, C).</summary>
    public override Tensor DeltaWeight()
    {
        using var _ = GradMode.NoGrad();
        return LoraEmbeddingA.T.MatMul(LoraEmbeddingB.T).Mul(Scaling);
    }

    protected override Tensor? FloatBaseWeight => BaseLayer.Weight;

    public override IEnumerable<(string Name, Tensor Tensor)> AdapterTensors() => [("lora_embedding_A", LoraEmbeddingA), ("lora_embedding_B", LoraEmbeddingB)];
}

/// <summary>
/// Trainable tokens (PEFT's TrainableTokensLayer): an <see cref="Embedding"/> whose rows <see cref="TokenIndices"/>
/// train whole and all others stay frozen. The trained rows are one tensor, "trainable_tokens_delta" (n, C), starting
/// as the base's rows (held too, as PEFT's trainable_tokens_original, to unmerge exactly); the table the model reads is
/// the base's with those rows replaced. A change of vocabulary (a corpus that says "you" where the base's says "thou")
/// is a change of a few rows, which a low-rank update of the whole table captures badly, at n·C parameters instead of
/// V·C. On a tied embedding both ends read the replaced table (<see cref="Unembed"/>), as PEFT ties them.
/// </summary>
public sealed class TrainableTokens : AdapterLayer, ITiedEmbedding
{
    public Embedding BaseLayer => Child<Embedding>("base_layer");
    /// <summary>The token ids whose rows train, in the order of the rows of <see cref="Delta"/>.</summary>
    public IReadOnlyList<int> TokenIndices { get; }
    /// <summary>The trained rows (n, C), PEFT's trainable_tokens_delta (values, not differences, despite the name).</summary>
    public Tensor Delta { get; }
    private readonly Tensor _index, _original;

    public TrainableTokens(Embedding baseLayer, IReadOnlyList<int> tokenIndices) : base(baseLayer)
    {
        if (tokenIndices.Count == 0) throw new ArgumentException("Trainable tokens need at least one token index.");
        if (tokenIndices.FirstOrDefault(t => (uint)t >= (uint)baseLayer.NumEmbeddings, -1) is var bad and >= 0)
            throw new ArgumentException($"trainable token {bad} is not below the vocabulary size {baseLayer.NumEmbeddings}.");
        if (tokenIndices.Distinct().Count() != tokenIndices.Count) throw new ArgumentException("Trainable token indices repeat a token.");
        TokenIndices = tokenIndices.ToArray();
        _index = Tensor.FromArray(TokenIndices.ToArray());
        using (GradMode.NoGrad()) _original = baseLayer.Weight.IndexSelect(0, _index);
        Delta = RegisterParameter("trainable_tokens_delta", _original.Clone());
    }

    /// <summary>The table both ends read: the base's, rows <see cref="TokenIndices"/> replaced by <see cref="Delta"/>.</summary>
    private Tensor Table() => Merged ? BaseLayer.Weight : BaseLayer.Weight.IndexCopy(_index, Delta);

    public override Tensor Forward(Tensor tokens) => F.Embedding(tokens, Table());

    public Tensor Unembed(Tensor x) => F.Linear(x, Table());

    protected override void FoldIn() => BaseLayer.Weight.CopyFrom(BaseLayer.Weight.IndexCopy(_index, Delta));
    protected override void TakeOut() => BaseLayer.Weight.CopyFrom(BaseLayer.Weight.IndexCopy(_index, _original));

    public override IEnumerable<(string Name, Tensor Tensor)> AdapterTensors() => [("token_adapter.trainable_tokens_delta", Delta)];

    protected override string Describe() => $"{TokenIndices.Count} trainable tokens{(Merged ? ", merged" : "")}";
}

/// <summary>A LoRA adapter's settings, with the meaning and JSON names of PEFT's LoraConfig.</summary>
public sealed record LoraConfig
{
    public int R { get; init; } = 8;
    public float LoraAlpha { get; init; } = 8;
    public float LoraDropout { get; init; }
    /// <summary>Module names or name suffixes (PEFT's list form: a module matches a target it equals or ends with
    /// "." + target); "*" matches within one name part ("mlp.*").</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = [];
    public bool UseRsLora { get; init; }
    /// <summary>PEFT's use_dora: each adapted linear layer also learns the length of each output's weight row
    /// (<see cref="LoraLinear.Magnitude"/>).</summary>
    public bool UseDora { get; init; }
    /// <summary>True when the base model stores these layers' weights (in, out), as GPT-2's Conv1D does.</summary>
    public bool FanInFanOut { get; init; }
    public string? BaseModelNameOrPath { get; init; }
    public string TaskType { get; init; } = "CAUSAL_LM";
    /// <summary>PEFT's bias: "none", or "all" (every bias of the model, layer norms' included, trains with the adapter
    /// and is saved in its file). See <see cref="Lora.BiasAll"/>.</summary>
    public string Bias { get; init; } = Lora.BiasNone;
    /// <summary>PEFT's modules_to_save: modules (names matched as <see cref="TargetModules"/> are) whose every
    /// parameter trains and is saved in the adapter's file, e.g. "ln_f".</summary>
    public IReadOnlyList<string> ModulesToSave { get; init; } = [];
    /// <summary>PEFT's ensure_weight_tying: an adapter on a tied embedding or head adapts both ends with the same A
    /// and B (<see cref="LoraEmbedding"/>). Written as true whenever the adapter holds one; required to read one.</summary>
    public bool EnsureWeightTying { get; init; }
    /// <summary>PEFT's trainable_token_indices: token ids whose rows of the token embedding train whole
    /// (<see cref="TrainableTokens"/>); empty for none.</summary>
    public IReadOnlyList<int> TrainableTokenIndices { get; init; } = [];
}

/// <summary>What <see cref="Lora.Apply"/> wrapped, and the parameter counts after it.</summary>
public sealed record LoraSummary(IReadOnlyList<string> WrappedModules, long TrainableParameters, long TotalParameters)
{
    public double TrainablePercent => 100.0 * TrainableParameters / Math.Max(1, TotalParameters);
    /// <summary>PEFT's print_trainable_parameters line.</summary>
    public override string ToString() =>
        $"trainable params: {TrainableParameters:N0} || all params: {TotalParameters:N0} || trainable%: {TrainablePercent:0.####}";
}

/// <summary>
/// Adds LoRA adapters to a model and reads and writes them as PEFT does (adapter_model.safetensors +
/// adapter_config.json), so an adapter trained here loads in PEFT and one trained with PEFT loads here.
/// </summary>
public static partial class Lora
{
    public const string WeightsFile = "adapter_model.safetensors";
    public const string ConfigFile = "adapter_config.json";
    /// <summary>PEFT's bias settings this library implements. PEFT's third, "lora_only", trains the adapted layers'
    /// biases but its save_pretrained then writes none of them (it looks for "layer.bias"; a wrapped layer's bias is
    /// "layer.base_layer.bias"), so such an adapter does not survive its own file; it is refused.</summary>
    public const string BiasNone = "none", BiasAll = "all";
    private const long MaxConfigBytes = 1 << 20;

    /// <summary>Freezes the whole model, then wraps every <see cref="Linear"/> (or <see cref="QuantizedLinear"/>: QLoRA)
    /// whose name matches a target in a <see cref="LoraLinear"/> and every <see cref="Embedding"/> in a
    /// <see cref="LoraEmbedding"/> (only A and B train). A model with a tied head (<see cref="Module.TiedHead"/>) also
    /// takes the head's Hugging Face name, "lm_head" for GPT-2, as a target: it means the tied embedding, adapted at
    /// both ends. A target that matches no module, or matches a module that cannot take an adapter, is an error, as in PEFT. As PEFT's bias="all" and
    /// modules_to_save, <paramref name="bias"/> = <see cref="BiasAll"/> lets every bias of the model train too, and
    /// <paramref name="modulesToSave"/> names modules that train whole (<see cref="TrainedBaseParameters"/>).</summary>
    /// <para><paramref name="trainableTokens"/> (PEFT's trainable_token_indices) lets those rows of the model's token
    /// embedding train whole (<see cref="TrainableTokens"/>). <paramref name="useDora"/> makes every adapted linear layer
    /// a DoRA layer (<see cref="LoraLinear.Magnitude"/>); it needs float linear layers and no embedding target.</para></summary>
    public static LoraSummary Apply(Module model, IReadOnlyList<string> targets, int rank, float alpha, float dropout = 0f,
        bool useRsLora = false, Generator? generator = null, string bias = BiasNone, IReadOnlyList<string>? modulesToSave = null,
        IReadOnlyList<int>? trainableTokens = null, bool useDora = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (targets.Count == 0) throw new ArgumentException("LoRA needs at least one target module name.");
        if (bias is not (BiasNone or BiasAll))
            throw new ArgumentException(bias == "lora_only"
                ? "LoRA bias \"lora_only\" is not supported: PEFT trains those biases but saves none of them (it looks for \"layer.bias\", not \"layer.base_layer.bias\"); use \"all\"."
                : $"LoRA bias \"{bias}\" is not one of \"none\", \"all\".");
        targets = targets.Select(t => OwnName(model, t)).Distinct().ToList();
        var selected = Match(model, targets, "LoRA target", m => m is Linear or QuantizedLinear or Embedding,
            "only Linear (or QuantizedLinear) layers and float embeddings can take an adapter");
        var saved = Match(model, modulesToSave ?? [], "module to save", m => m.Parameters().Any(), "it has no parameters to train");
        foreach (var (name, _) in saved)
            if (selected.FirstOrDefault(s => s.Name == name || s.Name.StartsWith(name + ".", StringComparison.Ordinal)) is { Name: { } wrapped })
                throw new ArgumentException($"module to save '{name}' is or holds the LoRA target '{wrapped}': a layer trains whole or through an adapter, not both.");
        if (bias == BiasAll && model.Modules().OfType<QuantizedLinear>().Any())
            throw new ArgumentException("LoRA bias \"all\" trains the linear layers' biases, which a quantised base holds frozen; use \"none\" with a quantised base.");
        if (useDora && selected.FirstOrDefault(s => s.Module is not Linear) is { Name: { } notLinear })
            throw new ArgumentException($"DoRA target '{notLinear}' (type {model.GetSubmodule(notLinear).GetType().Name}): DoRA is implemented for float linear layers " +
                "(its magnitude needs the float weight's row norms), so leave quantised layers and the token embedding out of its targets.");
        (string Name, Embedding Table)? tokenTable = trainableTokens is { Count: > 0 } ? TokenEmbedding(model, selected, saved) : null;

        model.RequiresGrad_(false);
        foreach (var (name, layer) in selected)
            model.SetSubmodule(name, layer switch
            {
                QuantizedLinear quantized => new LoraLinear(quantized, rank, alpha, dropout, useRsLora, generator),
                Embedding embedding => new LoraEmbedding(embedding, rank, alpha, dropout, useRsLora, generator),
                _ => new LoraLinear((Linear)layer, rank, alpha, dropout, useRsLora, generator, useDora),
            });
        if (tokenTable is var (tableName, table)) model.SetSubmodule(tableName, new TrainableTokens(table, trainableTokens!));
        foreach (var (_, module) in saved) module.RequiresGrad_(true);
        if (bias == BiasAll)
            foreach (var (name, p) in model.NamedParameters())
                if (name == "bias" || name.EndsWith(".bias", StringComparison.Ordinal)) p.RequiresGrad_(true);
        return new LoraSummary(selected.Select(s => s.Name).ToList(), model.TrainableParameterCount, model.ParameterCount + QuantizedWeightCount(model));
    }

    /// <summary>
    /// The <paramref name="count"/> tokens whose frequency in <paramref name="tokens"/> (the new text) a language model
    /// mispredicts most, best first: the ones to train as <see cref="TrainableTokens"/>. The model's average next-token
    /// distribution q, over <paramref name="windows"/> windows of <paramref name="window"/> tokens spread evenly over the
    /// text, is set against the text's unigram frequencies p, and each token scores (p − q)·ln(p/q), its share of the
    /// symmetric (Jeffreys) divergence between the two: a token the text uses and the model seldom predicts scores high,
    /// and so does one the model expects and the text dropped ("thou" in a modern translation).
    /// </summary>
    /// <param name="logits">The model: token ids (1, T) to next-token logits (1, T, V).</param>
    public static int[] MostMispredictedTokens(Func<Tensor, Tensor> logits, ReadOnlySpan<int> tokens, int vocabSize, int count, int windows = 32, int window = 128)
    {
        if (count < 1 || count > vocabSize) throw new ArgumentOutOfRangeException(nameof(count), $"{count} tokens cannot be chosen from a vocabulary of {vocabSize}.");
        window = Math.Min(window, tokens.Length);
        if (window < 1) throw new ArgumentException("There is no text to choose trainable tokens from.");
        var predicted = new double[vocabSize];
        using (GradMode.NoGrad())
            for (int w = 0; w < windows; w++)
            {
                using var scope = MemoryScope.Begin(); // each window's activations back to the pool now, not at the next GC
                int start = (int)((long)(tokens.Length - window) * w / Math.Max(1, windows - 1));
                var probabilities = logits(Tensor.FromArray(tokens.Slice(start, window).ToArray(), 1, window)).Softmax(-1).Sum(1).ToArray();
                for (int t = 0; t < vocabSize; t++) predicted[t] += probabilities[t];
            }
        var seen = new double[vocabSize];
        foreach (var t in tokens) seen[t]++;
        // A floor far below any frequency a window can show, so an absent token scores finitely.
        const double floor = 1e-7;
        double predictedTotal = predicted.Sum(), seenTotal = tokens.Length;
        var score = Enumerable.Range(0, vocabSize).Select(t =>
        {
            double p = Math.Max(seen[t] / seenTotal, floor), q = Math.Max(predicted[t] / predictedTotal, floor);
            return (p - q) * Math.Log(p / q);
        }).ToArray();
        return Enumerable.Range(0, vocabSize).OrderByDescending(t => score[t]).ThenBy(t => t).Take(count).ToArray();
    }

    /// <summary>The token embedding that trainable tokens adapt: the model's tied one, float, and not already a LoRA
    /// target or a module to save.</summary>
    private static (string Name, Embedding Table) TokenEmbedding(Module model, List<(string Name, Module Module)> selected, List<(string Name, Module Module)> saved)
    {
        if (model.TiedHead is not var (name, _))
            throw new ArgumentException($"trainable tokens adapt the token embedding, and the {model.GetType().Name} names none (it has no tied head).");
        if (selected.Any(s => s.Name == name)) throw new ArgumentException($"trainable tokens and a LoRA target both adapt '{name}': give one or the other.");
        if (saved.FirstOrDefault(s => s.Name == name || name.StartsWith(s.Name + ".", StringComparison.Ordinal)) is { Name: { } whole })
            throw new ArgumentException($"module to save '{whole}' trains all of '{name}', trainable tokens only some of its rows: give one or the other.");
        return model.GetSubmodule(name) is Embedding table ? (name, table)
            : throw new ArgumentException($"trainable tokens need a float embedding; '{name}' is a {model.GetSubmodule(name).GetType().Name}.");
    }

    /// <summary>A target as this model names it: the tied head's Hugging Face name ("lm_head") means the tied embedding,
    /// and a Hugging Face name ("transformer.wte", what PEFT writes for GPT-2's tied pair) the module of the same name here.</summary>
    private static string OwnName(Module model, string target) =>
        model.TiedHead is var (embedding, head) && target == head ? embedding
        : model.HubNamePrefix is { Length: > 0 } hub && target.StartsWith(hub, StringComparison.Ordinal) ? target[hub.Length..]
        : target;

    /// <summary>The modules outside adapters whose names match <paramref name="names"/>, each required to match one
    /// (<paramref name="what"/> names them in errors) and to be <paramref name="fits"/> (else <paramref name="why"/>).</summary>
    private static List<(string Name, Module Module)> Match(Module model, IReadOnlyList<string> names, string what, Func<Module, bool> fits, string why)
    {
        var matchers = names.Select(t => (Target: t, Pattern: TargetPattern(t))).ToList();
        var selected = new List<(string Name, Module Module)>();
        var used = new HashSet<string>();
        if (matchers.Count == 0) return selected;
        foreach (var (name, module) in ModulesOutsideAdapters(model))
        {
            var hits = matchers.Where(m => m.Pattern.IsMatch(name)).Select(m => m.Target).ToList();
            if (hits.Count == 0) continue;
            if (!fits(module))
                throw new ArgumentException($"{what} '{hits[0]}' matches '{name}', a {module.GetType().Name}; {why}.");
            used.UnionWith(hits);
            selected.Add((name, module));
        }
        var unused = names.Where(t => !used.Contains(t)).ToList();
        if (unused.Count > 0)
            throw new ArgumentException($"{what}{(unused.Count > 1 ? "s" : "")} {string.Join(", ", unused.Select(t => $"'{t}'"))} match no module of the {model.GetType().Name}.");
        return selected;
    }

    /// <summary>The parameters that train besides the adapters' A and B (bias "all", modules to save), by name. An
    /// adapter file holds them under these names, as PEFT's does: a wrapped layer's bias is "layer.base_layer.bias",
    /// a module to save's weight "module.weight".</summary>
    public static IEnumerable<(string Name, Tensor Parameter)> TrainedBaseParameters(Module model)
    {
        var adapterMatrices = AllLayers(model).SelectMany(l => l.Layer.AdapterTensors().Select(t => t.Tensor)).ToHashSet(ReferenceEqualityComparer.Instance);
        return model.NamedParameters().Where(p => p.Parameter.RequiresGrad && !adapterMatrices.Contains(p.Parameter));
    }

    // Quantised weights are packed arrays and their biases buffers, not parameters, but they are the model's weights
    // all the same (PEFT counts a 4-bit base's weights too), so the total and the trainable share match the float model's.
    private static long QuantizedWeightCount(Module model) => model.Modules().Sum(m => m switch
    {
        QuantizedLinear q => (long)q.Weight.Rows * q.Weight.Columns + (q.Bias?.Count ?? 0),
        QuantizedEmbedding e => (long)e.Weight.Rows * e.Weight.Columns,
        _ => 0,
    });

    /// <summary>The model's adapted linear layers by name.</summary>
    public static IEnumerable<(string Name, LoraLinear Layer)> Layers(Module model) =>
        AllLayers(model).Where(l => l.Layer is LoraLinear).Select(l => (l.Name, (LoraLinear)l.Layer));

    /// <summary>The model's adapter layers of every kind (LoRA on linear layers and embeddings, trainable tokens) by name.</summary>
    public static IEnumerable<(string Name, AdapterLayer Layer)> AllLayers(Module model) =>
        model.NamedModules().Where(m => m.Module is AdapterLayer).Select(m => (m.Name, (AdapterLayer)m.Module));

    /// <summary>Folds every adapter into its base weight (<see cref="AdapterLayer.Merge"/>).</summary>
    public static void Merge(Module model) { foreach (var (_, layer) in AllLayers(model)) layer.Merge(); }

    /// <summary>Takes every adapter out of its base weight again (<see cref="AdapterLayer.Unmerge"/>).</summary>
    public static void Unmerge(Module model) { foreach (var (_, layer) in AllLayers(model)) layer.Unmerge(); }

    /// <summary>Folds every adapter into its base weight and puts the base layer back in the adapter's place (PEFT's
    /// merge_and_unload): the model has its original layers and parameter names again, so it saves as a plain model.</summary>
    public static void MergeAndUnload(Module model)
    {
        foreach (var (name, layer) in AllLayers(model).ToList())
        {
            if (!layer.Merged) layer.Merge();
            model.SetSubmodule(name, layer.WrappedLayer);
        }
    }

    // PEFT's list-form target semantics (tuners_utils.check_target_module_exists): the full name equals the
    // target or ends with "." + target. "*" is a convenience here and matches inside one name part.
    private static Regex TargetPattern(string target)
    {
        if (string.IsNullOrWhiteSpace(target)) throw new ArgumentException("A LoRA target module name is empty.");
        var body = string.Join("[^.]*", target.Split('*').Select(Regex.Escape));
        return new Regex($"^(?:.*\\.)?{body}$", RegexOptions.CultureInvariant);
    }

    private static IEnumerable<(string Name, Module Module)> ModulesOutsideAdapters(Module model)
    {
        var adapters = new List<string>();
        foreach (var (name, module) in model.NamedModules())
        {
            if (name.Length == 0 || adapters.Any(a => name.StartsWith(a + ".", StringComparison.Ordinal))) continue;
            if (module is AdapterLayer) { adapters.Add(name); continue; }
            yield return (name, module);
        }
    }

    /// <summary>The prefix PEFT puts before a parameter name of this model: "base_model.model." + the prefix of the
    /// Hugging Face class PEFT wraps (for GPT-2, GPT2LMHeadModel's "transformer.": see <see cref="Module.HubNamePrefix"/>).</summary>
    public static string PeftPrefix(Module model) => "base_model.model." + model.HubNamePrefix;

    /// <summary>What an adapter file holds, by name without PEFT's prefix: each adapted layer's A and B, then the other
    /// parameters that train (<see cref="TrainedBaseParameters"/>).</summary>
    private static List<(string Name, Tensor Tensor)> AdapterTensors(Module model) =>
        AllLayers(model).SelectMany(l => l.Layer.AdapterTensors().Select(t => ($"{l.Name}.{t.Name}", t.Tensor)))
            .Concat(TrainedBaseParameters(model)).ToList();

    /// <summary>The adapted tied embedding (<see cref="Module.TiedHead"/>) with the head's name, if the model has one.</summary>
    private static (LoraEmbedding Adapter, string Head)? TiedAdapter(Module model) =>
        model.TiedHead is var (embedding, head) && model.GetSubmodule(embedding) is LoraEmbedding adapter ? (adapter, head) : null;

    /// <summary>The tied head's adapter, which PEFT's save_pretrained writes beside the embedding's under the head's
    /// full name (outside <see cref="Module.HubNamePrefix"/>): lm_head.lora_A.weight = Bᵀ (r, C) and
    /// lm_head.lora_B.weight = Aᵀ (V, r), the embedding's own tensors transposed.</summary>
    private static List<(string Name, Tensor Tensor)> TiedHeadTensors(Module model) => TiedAdapter(model) is var (adapter, head)
        ? [($"base_model.model.{head}.lora_A.weight", adapter.LoraEmbeddingB.T), ($"base_model.model.{head}.lora_B.weight", adapter.LoraEmbeddingA.T)]
        : [];

    /// <summary>Writes the model's adapters as PEFT's save_pretrained does: adapter_model.safetensors with only the
    /// A and B weights (A stored (r, in), B (out, r): PEFT's lora_A and lora_B are Linear layers whatever the base
    /// layer, and fan_in_fan_out only transposes B·A when it is merged into a Conv1D weight), the parameters that train
    /// besides them under their own names (bias "all", modules_to_save), and adapter_config.json.</summary>
    public static void SaveAdapter(Module model, string directory, LoraConfig config)
    {
        var layers = AllLayers(model).ToList();
        if (layers.Count == 0) throw new ArgumentException($"The {model.GetType().Name} has no LoRA layers to save.");
        if (layers.Any(l => l.Layer.Merged))
            throw new InvalidOperationException("Unmerge the adapters before saving them (merged, the base weights hold them).");
        var prefix = PeftPrefix(model);
        var tensors = AdapterTensors(model).Select(t => new KeyValuePair<string, Tensor>(prefix + t.Name, t.Tensor))
            .Concat(TiedHeadTensors(model).Select(t => new KeyValuePair<string, Tensor>(t.Name, t.Tensor.Contiguous())));
        // PEFT ties the two ends only when asked and when the head is a target by its own name ("lm_head": its list of
        // embedding names has "embed_tokens" and "lm_head", not GPT-2's "wte"), so that is how such an adapter is written.
        if (model.TiedHead is var (embedding, head) && TiedAdapter(model) != null)
            config = config with { EnsureWeightTying = true, TargetModules = config.TargetModules.Select(t => OwnName(model, t) == embedding ? head : t).Distinct().ToList() };
        Directory.CreateDirectory(directory);
        SafeTensors.Save(Path.Combine(directory, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), ConfigJson(config).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    // The keys PEFT 0.10 and 0.11's LoraConfig writes (as in published adapter_config.json files of those
    // versions; newer versions add keys and read files without them); those this library has no use for keep
    // PEFT's defaults, so PEFT reads the file as the adapter it is.
    private static JsonObject ConfigJson(LoraConfig c)
    {
        var json = ConfigJsonOfPeft010(c);
        // Keys of newer PEFT versions (0.18, 0.15), written only when the adapter needs them.
        if (c.EnsureWeightTying) json["ensure_weight_tying"] = true;
        if (c.TrainableTokenIndices.Count > 0) json["trainable_token_indices"] = new JsonArray(c.TrainableTokenIndices.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray());
        return json;
    }

    private static JsonObject ConfigJsonOfPeft010(LoraConfig c) => new()
    {
        ["alpha_pattern"] = new JsonObject(),
        ["auto_mapping"] = null,
        ["base_model_name_or_path"] = c.BaseModelNameOrPath,
        ["bias"] = c.Bias,
        ["fan_in_fan_out"] = c.FanInFanOut,
        ["inference_mode"] = true,
        ["init_lora_weights"] = true,
        ["layer_replication"] = null,
        ["layers_pattern"] = null,
        ["layers_to_transform"] = null,
        ["loftq_config"] = new JsonObject(),
        ["lora_alpha"] = c.LoraAlpha,
        ["lora_dropout"] = c.LoraDropout,
        ["megatron_config"] = null,
        ["megatron_core"] = "megatron.core",
        ["modules_to_save"] = c.ModulesToSave.Count == 0 ? null : new JsonArray(c.ModulesToSave.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
        ["peft_type"] = "LORA",
        ["r"] = c.R,
        ["rank_pattern"] = new JsonObject(),
        ["revision"] = null,
        ["target_modules"] = new JsonArray(c.TargetModules.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
        ["task_type"] = c.TaskType,
        ["use_dora"] = c.UseDora,
        ["use_rslora"] = c.UseRsLora,
    };

    /// <summary>Reads adapter_config.json, refusing settings that change what the adapter computes and that this
    /// library does not implement (bias "lora_only", per-layer ranks, a regex target string).</summary>
    public static LoraConfig LoadConfig(string directory)
    {
        var path = Path.Combine(directory, ConfigFile);
        if (!File.Exists(path)) throw new CheckpointException($"{path}: file not found (a PEFT adapter directory holds {ConfigFile} and {WeightsFile}).");
        JsonObject json;
        try { json = JsonNode.Parse(BoundedFile.ReadAllText(path, MaxConfigBytes, "an adapter config")) as JsonObject ?? throw new CheckpointException($"{path}: not a JSON object."); }
        catch (InputFileException e) { throw new CheckpointException(e.Message, e); }
        catch (JsonException e) { throw new CheckpointException($"{path}: not valid JSON ({ErrorText.Json(e)}).", e); }

        T Get<T>(string key, T fallback)
        {
            if (!json.TryGetPropertyValue(key, out var node) || node == null) return fallback;
            try { return node.GetValue<T>(); }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            { throw new CheckpointException($"{path}: \"{key}\" is {node.ToJsonString()}, not a {typeof(T).Name}.", e); }
        }
        bool IsEmpty(string key) => !json.TryGetPropertyValue(key, out var node) || node == null || node is JsonObject { Count: 0 } or JsonArray { Count: 0 };

        var peftType = Get("peft_type", "");
        if (peftType != "LORA") throw new CheckpointException($"{path}: peft_type is \"{peftType}\"; only LORA adapters are supported.");
        var bias = Get("bias", BiasNone);
        if (bias is not (BiasNone or BiasAll)) throw new CheckpointException($"{path}: bias is \"{bias}\"; only \"none\" and \"all\" are supported.");
        foreach (var key in new[] { "rank_pattern", "alpha_pattern" })
            if (!IsEmpty(key)) throw new CheckpointException($"{path}: \"{key}\" is set; per-layer ranks and alphas are not supported.");
        if (Get("lora_bias", false)) throw new CheckpointException($"{path}: lora_bias is true; adapters with a trained lora_B bias are not supported.");
        // Keys of newer PEFT versions too: each, when set, changes which weights the adapter holds or touches.
        foreach (var key in new[] { "layers_to_transform", "layer_replication", "exclude_modules", "target_parameters" })
            if (!IsEmpty(key)) throw new CheckpointException($"{path}: \"{key}\" is set; it is not supported.");
        if (!json.TryGetPropertyValue("target_modules", out var targetNode) || targetNode is not JsonArray targetArray)
            throw new CheckpointException($"{path}: target_modules must be a list of module names{(targetNode is JsonValue ? " (a regex string is not supported)" : "")}.");
        List<string> Names(string key, JsonArray array) => array.Select(t => t is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new CheckpointException($"{path}: {key} holds {t?.ToJsonString() ?? "null"}, not a name.")).ToList();
        var targets = Names("target_modules", targetArray);
        // A list (the model's token embedding), or PEFT's dictionary form with one embedding: GPT-2 has one table.
        List<int> TokenIndices() => json["trainable_token_indices"] switch
        {
            null => [],
            JsonArray list => Ints(list),
            JsonObject { Count: 1 } one when one.First().Value is JsonArray list => Ints(list),
            var other => throw new CheckpointException($"{path}: trainable_token_indices is {other.ToJsonString()}; expected a list of token ids (or one embedding's list)."),
        };
        List<int> Ints(JsonArray list) => list.Select(t => t is JsonValue v && v.TryGetValue<int>(out var id) ? id
            : throw new CheckpointException($"{path}: trainable_token_indices holds {t?.ToJsonString() ?? "null"}, not a token id.")).ToList();
        json.TryGetPropertyValue("modules_to_save", out var savedNode);
        var modulesToSave = savedNode switch
        {
            null => [],
            JsonArray array => Names("modules_to_save", array),
            _ => throw new CheckpointException($"{path}: modules_to_save must be a list of module names or null."),
        };

        var config = new LoraConfig
        {
            R = Get("r", 0),
            LoraAlpha = Get("lora_alpha", 0f),
            LoraDropout = Get("lora_dropout", 0f),
            TargetModules = targets,
            UseRsLora = Get("use_rslora", false),
            UseDora = Get("use_dora", false),
            FanInFanOut = Get("fan_in_fan_out", false),
            BaseModelNameOrPath = Get<string?>("base_model_name_or_path", null),
            TaskType = Get("task_type", "CAUSAL_LM"),
            Bias = bias,
            ModulesToSave = modulesToSave,
            EnsureWeightTying = Get("ensure_weight_tying", false),
            TrainableTokenIndices = TokenIndices(),
        };
        if (config.R <= 0) throw new CheckpointException($"{path}: r is {config.R}; it must be a positive integer.");
        if (!(config.LoraAlpha > 0) || !float.IsFinite(config.LoraAlpha)) throw new CheckpointException($"{path}: lora_alpha is {config.LoraAlpha}; it must be positive.");
        if (config.LoraDropout is < 0 or >= 1 || float.IsNaN(config.LoraDropout)) throw new CheckpointException($"{path}: lora_dropout is {config.LoraDropout}; it must be in [0, 1).");
        return config;
    }

    /// <summary>Reads a PEFT adapter directory, wraps the model's target layers as its config says and loads A and
    /// B (and the biases or modules the config trains) strictly: every adapter tensor of the model must be in the file
    /// with its shape, and nothing else.</summary>
    public static (LoraConfig Config, LoraSummary Summary) LoadAdapter(Module model, string directory, Generator? generator = null)
    {
        var config = LoadConfig(directory);
        var path = Path.Combine(directory, WeightsFile);
        if (!File.Exists(path)) throw new CheckpointException($"{path}: file not found.");
        var tensors = SafeTensors.Load(path);
        LoraSummary summary;
        try { summary = Apply(model, config.TargetModules, config.R, config.LoraAlpha, config.LoraDropout, config.UseRsLora, generator, config.Bias, config.ModulesToSave, config.TrainableTokenIndices, config.UseDora); }
        catch (ArgumentException e) { throw new CheckpointException($"{Path.Combine(directory, ConfigFile)}: {e.Message}", e); }

        var tiedHead = TiedHeadTensors(model);
        if (tiedHead.Count > 0 && !config.EnsureWeightTying)
            throw new CheckpointException($"{Path.Combine(directory, ConfigFile)}: the adapter targets the {model.GetType().Name}'s tied embedding and head " +
                "without \"ensure_weight_tying\": true; PEFT then adapts one end of the tied pair only, which is not supported here (with it, both ends share one adapter).");
        var prefix = PeftPrefix(model);
        var state = new Dictionary<string, Tensor>();
        var headInFile = new List<(string Name, Tensor Expected, Tensor Value)>();
        var problems = new List<string>();
        var loads = new List<(Tensor Target, Tensor Value)>();
        foreach (var (name, tensor) in tensors)
        {
            // PEFT drops the adapter name when saving; files from older versions may still hold ".default".
            var key = AdapterNameSuffix().Replace(name, ".$1");
            if (tiedHead.FirstOrDefault(h => h.Name == key) is { Name: not null } head) headInFile.Add((key, head.Tensor, tensor));
            else if (!key.StartsWith(prefix, StringComparison.Ordinal)) problems.Add($"tensor '{name}' does not start with '{prefix}'");
            else state[key[prefix.Length..]] = tensor;
        }
        foreach (var (name, target) in AdapterTensors(model))
        {
            if (!state.Remove(name, out var value)) problems.Add($"missing tensor '{prefix}{name}' (expected shape {target.ShapeString})");
            else if (!value.Shape.SequenceEqual(target.Shape)) problems.Add($"tensor '{prefix}{name}': shape {value.ShapeString} in the file, {target.ShapeString} expected");
            else if (value.DType != DType.Float32) problems.Add($"tensor '{prefix}{name}' is {value.DType}, not a float tensor");
            else loads.Add((target, value));
        }
        problems.AddRange(state.Keys.Select(k => $"unexpected tensor '{prefix}{k}'"));
        if (problems.Count > 0) throw new CheckpointException($"{path} does not match the adapter its config describes: {string.Join("; ", problems)}.");
        using var noGrad = GradMode.NoGrad();
        foreach (var (target, value) in loads) target.CopyFrom(value);
        // The head's copy (PEFT writes one) must be the embedding's adapter transposed, or the file holds two adapters.
        foreach (var (name, expected, value) in headInFile)
            if (!value.Shape.SequenceEqual(expected.Shape) || value.DType != DType.Float32 || !value.Contiguous().AsSpan().SequenceEqual(expected.Contiguous().AsSpan()))
                throw new CheckpointException($"{path}: tensor '{name}' ({value.DType} {value.ShapeString}) is not the tied embedding's adapter transposed ({expected.ShapeString}); with ensure_weight_tying the head and the embedding share one adapter.");
        return (config, summary);
    }

    [GeneratedRegex(@"\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B|lora_magnitude_vector)\.default(?=\.|$)")]
    private static partial Regex AdapterNameSuffix();
}
