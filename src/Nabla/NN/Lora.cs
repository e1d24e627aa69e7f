using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Nabla.Autograd;
using Nabla.IO;
using Nabla.Quantization;

namespace Nabla.NN;

/// <summary>
/// A <see cref="Linear"/> with a low-rank update (LoRA, Hu et al., 2021): y = base(x) + dropout(x)·Aᵀ·Bᵀ·s with
/// A: (r, in) and B: (out, r), s = α/r (or α/√r with rsLoRA, Kalajdzievski, 2023). Laid out as PEFT's lora.Linear,
/// so the state-dict names are PEFT's: the wrapped layer is the child "base_layer" (frozen), A and B are the
/// bias-free linear layers "lora_A" and "lora_B". A starts Kaiming-uniform with a = √5 (U(-1/√in, 1/√in), what
/// <see cref="Linear"/> draws) and B at zero, so a fresh adapter leaves the model's output unchanged.
/// <para>The base may also be a <see cref="QuantizedLinear"/> (QLoRA, Dettmers et al., 2023): its packed weight stays
/// frozen and the gradient reaches the input through it, so only A and B are held in float.</para>
/// </summary>
public sealed class LoraLinear : Module
{
    public int Rank { get; }
    public float Alpha { get; }
    public float DropoutP { get; }
    public bool UseRsLora { get; }
    /// <summary>The factor of B·A: α/r, or α/√r with rsLoRA.</summary>
    public float Scaling { get; }
    /// <summary>True while B·A·s is folded into the base weight (<see cref="Merge"/>); the forward pass then runs the base alone.</summary>
    public bool Merged { get; private set; }

    /// <summary>The float base layer (an error when the base is quantised: see <see cref="HasQuantizedBase"/>).</summary>
    public Linear BaseLayer => Child<Linear>("base_layer");
    public bool HasQuantizedBase => GetSubmodule("base_layer") is QuantizedLinear;
    public Linear LoraA => Child<Linear>("lora_A");
    public Linear LoraB => Child<Linear>("lora_B");
    private readonly Generator? _generator;

    public LoraLinear(Linear baseLayer, int rank, float alpha, float dropout = 0f, bool useRsLora = false, Generator? generator = null)
        : this(baseLayer, baseLayer?.InFeatures ?? 0, baseLayer?.OutFeatures ?? 0, rank, alpha, dropout, useRsLora, generator) { }

    /// <summary>QLoRA: an adapter over a frozen quantised layer.</summary>
    public LoraLinear(QuantizedLinear baseLayer, int rank, float alpha, float dropout = 0f, bool useRsLora = false, Generator? generator = null)
        : this(baseLayer, baseLayer?.InFeatures ?? 0, baseLayer?.OutFeatures ?? 0, rank, alpha, dropout, useRsLora, generator) { }

    private LoraLinear(Module baseLayer, int inFeatures, int outFeatures, int rank, float alpha, float dropout, bool useRsLora, Generator? generator)
    {
        ArgumentNullException.ThrowIfNull(baseLayer);
        if (rank <= 0) throw new ArgumentOutOfRangeException(nameof(rank), $"LoRA rank must be positive, got {rank}.");
        if (!float.IsFinite(alpha) || alpha <= 0) throw new ArgumentOutOfRangeException(nameof(alpha), $"LoRA alpha must be a positive number, got {alpha}.");
        if (dropout is < 0 or >= 1 || float.IsNaN(dropout)) throw new ArgumentOutOfRangeException(nameof(dropout), $"LoRA dropout must be in [0, 1), got {dropout}.");
        Rank = rank;
        Alpha = alpha;
        DropoutP = dropout;
        UseRsLora = useRsLora;
        Scaling = useRsLora ? alpha / MathF.Sqrt(rank) : alpha / rank;
        _generator = generator;
        baseLayer.RequiresGrad_(false);
        RegisterModule("base_layer", baseLayer);
        RegisterModule("lora_A", new Linear(inFeatures, rank, bias: false, generator));
        Init.Zeros(RegisterModule("lora_B", new Linear(rank, outFeatures, bias: false)).Weight);
    }

    public override Tensor Forward(Tensor x)
    {
        var y = ForwardChild("base_layer", x);
        if (Merged) return y;
        var adapterInput = DropoutP > 0 ? F.Dropout(x, DropoutP, Training, _generator) : x;
        // Added into the base layer's fresh output: y + B(A(x))·s as separate ops would keep two more (…, out)
        // activations per adapted layer until the step ends, more than full fine-tuning's whole step in small models.
        return Tensor.AddLowRank(y, adapterInput, LoraA.Weight, LoraB.Weight, Scaling);
    }

    /// <summary>ΔW = B·A·s, shaped like the base weight (out, in).</summary>
    public Tensor DeltaWeight()
    {
        using var _ = GradMode.NoGrad();
        return LoraB.Weight.MatMul(LoraA.Weight).Mul(Scaling);
    }

    /// <summary>Folds ΔW into the base weight, so inference runs one matmul per layer. Training a merged adapter
    /// would not change the output the base now holds, so unmerge before training again.</summary>
    public void Merge()
    {
        if (Merged) throw new InvalidOperationException("This LoRA layer is already merged.");
        if (HasQuantizedBase)
            throw new InvalidOperationException("This LoRA layer's base is quantised; folding ΔW into it would re-quantise the weight, so merge the adapter into the float base model instead.");
        ApplyDelta(+1);
        Merged = true;
    }

    /// <summary>Subtracts ΔW from the base weight again (recomputed from the unchanged A and B, so the base comes
    /// back to within float rounding).</summary>
    public void Unmerge()
    {
        if (!Merged) throw new InvalidOperationException("This LoRA layer is not merged.");
        ApplyDelta(-1);
        Merged = false;
    }

    private void ApplyDelta(float sign)
    {
        using var _ = GradMode.NoGrad();
        var weight = BaseLayer.Weight;
        weight.CopyFrom(weight.Add(DeltaWeight().Mul(sign)));
    }

    protected override string Describe() => $"r={Rank}, alpha={Alpha}, dropout={DropoutP}, scaling={Scaling}{(Merged ? ", merged" : "")}";
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
public static class Lora
{
    public const string WeightsFile = "adapter_model.safetensors";
    public const string ConfigFile = "adapter_config.json";
    /// <summary>PEFT's bias settings this library implements. PEFT's third, "lora_only", trains the adapted layers'
    /// biases but its save_pretrained then writes none of them (it looks for "layer.bias"; a wrapped layer's bias is
    /// "layer.base_layer.bias"), so such an adapter does not survive its own file; it is refused.</summary>
    public const string BiasNone = "none", BiasAll = "all";
    private const long MaxConfigBytes = 1 << 20;

    /// <summary>Freezes the whole model, then wraps every <see cref="Linear"/> (or <see cref="QuantizedLinear"/>: QLoRA)
    /// whose name matches a target in a <see cref="LoraLinear"/> (only A and B train). A target that matches no module,
    /// or matches a module that is not a linear layer, is an error, as in PEFT. As PEFT's bias="all" and
    /// modules_to_save, <paramref name="bias"/> = <see cref="BiasAll"/> lets every bias of the model train too, and
    /// <paramref name="modulesToSave"/> names modules that train whole (<see cref="TrainedBaseParameters"/>).</summary>
    public static LoraSummary Apply(Module model, IReadOnlyList<string> targets, int rank, float alpha, float dropout = 0f,
        bool useRsLora = false, Generator? generator = null, string bias = BiasNone, IReadOnlyList<string>? modulesToSave = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (targets.Count == 0) throw new ArgumentException("LoRA needs at least one target module name.");
        if (bias is not (BiasNone or BiasAll))
            throw new ArgumentException(bias == "lora_only"
                ? "LoRA bias \"lora_only\" is not supported: PEFT trains those biases but saves none of them (it looks for \"layer.bias\", not \"layer.base_layer.bias\"); use \"all\"."
                : $"LoRA bias \"{bias}\" is not one of \"none\", \"all\".");
        var selected = Match(model, targets, "LoRA target", m => m is Linear or QuantizedLinear, "only Linear (or QuantizedLinear) layers can take an adapter");
        var saved = Match(model, modulesToSave ?? [], "module to save", m => m.Parameters().Any(), "it has no parameters to train");
        foreach (var (name, _) in saved)
            if (selected.FirstOrDefault(s => s.Name == name || s.Name.StartsWith(name + ".", StringComparison.Ordinal)) is { Name: { } wrapped })
                throw new ArgumentException($"module to save '{name}' is or holds the LoRA target '{wrapped}': a layer trains whole or through an adapter, not both.");
        if (bias == BiasAll && model.Modules().OfType<QuantizedLinear>().Any())
            throw new ArgumentException("LoRA bias \"all\" trains the linear layers' biases, which a quantised base holds frozen; use \"none\" with a quantised base.");

        model.RequiresGrad_(false);
        foreach (var (name, layer) in selected)
            model.SetSubmodule(name, layer is QuantizedLinear quantized
                ? new LoraLinear(quantized, rank, alpha, dropout, useRsLora, generator)
                : new LoraLinear((Linear)layer, rank, alpha, dropout, useRsLora, generator));
        foreach (var (_, module) in saved) module.RequiresGrad_(true);
        if (bias == BiasAll)
            foreach (var (name, p) in model.NamedParameters())
                if (name == "bias" || name.EndsWith(".bias", StringComparison.Ordinal)) p.RequiresGrad_(true);
        return new LoraSummary(selected.Select(s => s.Name).ToList(), model.TrainableParameterCount, model.ParameterCount + QuantizedWeightCount(model));
    }

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
        var adapterMatrices = Layers(model).SelectMany(l => new[] { l.Layer.LoraA.Weight, l.Layer.LoraB.Weight }).ToHashSet(ReferenceEqualityComparer.Instance);
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

    /// <summary>The model's LoRA layers by name.</summary>
    public static IEnumerable<(string Name, LoraLinear Layer)> Layers(Module model) =>
        model.NamedModules().Where(m => m.Module is LoraLinear).Select(m => (m.Name, (LoraLinear)m.Module));

    /// <summary>Folds every adapter into its base weight (<see cref="LoraLinear.Merge"/>).</summary>
    public static void Merge(Module model) { foreach (var (_, layer) in Layers(model)) layer.Merge(); }

    /// <summary>Takes every adapter out of its base weight again (<see cref="LoraLinear.Unmerge"/>).</summary>
    public static void Unmerge(Module model) { foreach (var (_, layer) in Layers(model)) layer.Unmerge(); }

    /// <summary>Folds every adapter into its base weight and puts the base layer back in the adapter's place (PEFT's
    /// merge_and_unload): the model has its original layers and parameter names again, so it saves as a plain model.</summary>
    public static void MergeAndUnload(Module model)
    {
        foreach (var (name, layer) in Layers(model).ToList())
        {
            if (!layer.Merged) layer.Merge();
            model.SetSubmodule(name, layer.BaseLayer);
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
            if (module is LoraLinear) { adapters.Add(name); continue; }
            yield return (name, module);
        }
    }

    /// <summary>The prefix PEFT puts before a parameter name of this model: "base_model.model." + the prefix of the
    /// Hugging Face class PEFT wraps (for GPT-2, GPT2LMHeadModel's "transformer.": see <see cref="Module.HubNamePrefix"/>).</summary>
    public static string PeftPrefix(Module model) => "base_model.model." + model.HubNamePrefix;

    /// <summary>What an adapter file holds, by name without PEFT's prefix: each adapted layer's A and B, then the other
    /// parameters that train (<see cref="TrainedBaseParameters"/>).</summary>
    private static List<(string Name, Tensor Tensor)> AdapterTensors(Module model) =>
        Layers(model).SelectMany(l => new[] { ($"{l.Name}.lora_A.weight", l.Layer.LoraA.Weight), ($"{l.Name}.lora_B.weight", l.Layer.LoraB.Weight) })
            .Concat(TrainedBaseParameters(model)).ToList();

    /// <summary>Writes the model's adapters as PEFT's save_pretrained does: adapter_model.safetensors with only the
    /// A and B weights (A stored (r, in), B (out, r): PEFT's lora_A and lora_B are Linear layers whatever the base
    /// layer, and fan_in_fan_out only transposes B·A when it is merged into a Conv1D weight), the parameters that train
    /// besides them under their own names (bias "all", modules_to_save), and adapter_config.json.</summary>
    public static void SaveAdapter(Module model, string directory, LoraConfig config)
    {
        var layers = Layers(model).ToList();
        if (layers.Count == 0) throw new ArgumentException($"The {model.GetType().Name} has no LoRA layers to save.");
        if (layers.Any(l => l.Layer.Merged))
            throw new InvalidOperationException("Unmerge the adapters before saving them (merged, the base weights hold them).");
        var prefix = PeftPrefix(model);
        var tensors = AdapterTensors(model).Select(t => new KeyValuePair<string, Tensor>(prefix + t.Name, t.Tensor));
        Directory.CreateDirectory(directory);
        SafeTensors.Save(Path.Combine(directory, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), ConfigJson(config).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    // The keys PEFT 0.10 and 0.11's LoraConfig writes (as in published adapter_config.json files of those
    // versions; newer versions add keys and read files without them); those this library has no use for keep
    // PEFT's defaults, so PEFT reads the file as the adapter it is.
    private static JsonObject ConfigJson(LoraConfig c) => new()
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
        ["use_dora"] = false,
        ["use_rslora"] = c.UseRsLora,
    };

    /// <summary>Reads adapter_config.json, refusing settings that change what the adapter computes and that this
    /// library does not implement (DoRA, bias "lora_only", per-layer ranks, a regex target string).</summary>
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
        if (Get("use_dora", false)) throw new CheckpointException($"{path}: use_dora is true; DoRA adapters are not supported.");
        var bias = Get("bias", BiasNone);
        if (bias is not (BiasNone or BiasAll)) throw new CheckpointException($"{path}: bias is \"{bias}\"; only \"none\" and \"all\" are supported.");
        foreach (var key in new[] { "rank_pattern", "alpha_pattern" })
            if (!IsEmpty(key)) throw new CheckpointException($"{path}: \"{key}\" is set; per-layer ranks and alphas are not supported.");
        if (Get("lora_bias", false)) throw new CheckpointException($"{path}: lora_bias is true; adapters with a trained lora_B bias are not supported.");
        // Keys of newer PEFT versions too: each, when set, changes which weights the adapter holds or touches.
        foreach (var key in new[] { "layers_to_transform", "layer_replication", "exclude_modules", "trainable_token_indices", "target_parameters" })
            if (!IsEmpty(key)) throw new CheckpointException($"{path}: \"{key}\" is set; it is not supported.");
        if (!json.TryGetPropertyValue("target_modules", out var targetNode) || targetNode is not JsonArray targetArray)
            throw new CheckpointException($"{path}: target_modules must be a list of module names{(targetNode is JsonValue ? " (a regex string is not supported)" : "")}.");
        List<string> Names(string key, JsonArray array) => array.Select(t => t is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new CheckpointException($"{path}: {key} holds {t?.ToJsonString() ?? "null"}, not a name.")).ToList();
        var targets = Names("target_modules", targetArray);
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
            FanInFanOut = Get("fan_in_fan_out", false),
            BaseModelNameOrPath = Get<string?>("base_model_name_or_path", null),
            TaskType = Get("task_type", "CAUSAL_LM"),
            Bias = bias,
            ModulesToSave = modulesToSave,
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
        try { summary = Apply(model, config.TargetModules, config.R, config.LoraAlpha, config.LoraDropout, config.UseRsLora, generator, config.Bias, config.ModulesToSave); }
        catch (ArgumentException e) { throw new CheckpointException($"{Path.Combine(directory, ConfigFile)}: {e.Message}", e); }

        var prefix = PeftPrefix(model);
        var state = new Dictionary<string, Tensor>();
        var problems = new List<string>();
        var loads = new List<(Tensor Target, Tensor Value)>();
        foreach (var (name, tensor) in tensors)
        {
            // PEFT drops the adapter name when saving; files from older versions may still hold ".default".
            var key = name.Replace(".lora_A.default.", ".lora_A.").Replace(".lora_B.default.", ".lora_B.");
            if (!key.StartsWith(prefix, StringComparison.Ordinal)) problems.Add($"tensor '{name}' does not start with '{prefix}'");
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
        return (config, summary);
    }
}
