using Nabla.Autograd;
using Nabla.IO;

namespace Nabla.NN;

/// <summary>
/// Base class of layers and models, shaped like PyTorch's <c>nn.Module</c>: a module registers its parameters,
/// buffers and sub-modules by name in its constructor, and gets <see cref="Parameters"/>,
/// <see cref="NamedParameters"/>, <see cref="Train"/>/<see cref="Eval"/>, <see cref="StateDict"/> and
/// <see cref="LoadStateDict"/> for free. Names are dotted paths ("layers.0.weight"), as in PyTorch, so state
/// dicts map one to one onto checkpoints written by either.
/// </summary>
public abstract class Module
{
    private readonly List<(string Name, Tensor Tensor)> _parameters = new();
    private readonly List<(string Name, Tensor Tensor)> _buffers = new();
    private readonly List<(string Name, Module Module)> _children = new();

    /// <summary>True in training mode (dropout active), false after <see cref="Eval"/>.</summary>
    public bool Training { get; private set; } = true;

    /// <summary>The module's computation. Modules with other inputs add their own Forward overloads.</summary>
    public virtual Tensor Forward(Tensor input) =>
        throw new NotSupportedException($"{GetType().Name} does not take a single tensor; call its specific Forward overload.");

    /// <summary>Registers a trainable parameter (requires grad) under <paramref name="name"/> and returns it.</summary>
    protected Tensor RegisterParameter(string name, Tensor value)
    {
        CheckName(name);
        value.RequiresGrad = true;
        value.Name = name;
        _parameters.Add((name, value));
        return value;
    }

    /// <summary>Registers non-trainable state that belongs in the state dict (running statistics, masks).</summary>
    protected Tensor RegisterBuffer(string name, Tensor value)
    {
        CheckName(name);
        MemoryScope.Keep(value);
        _buffers.Add((name, value));
        return value;
    }

    /// <summary>Registers a sub-module under <paramref name="name"/> and returns it.</summary>
    protected T RegisterModule<T>(string name, T module) where T : Module
    {
        CheckName(name);
        _children.Add((name, module));
        return module;
    }

    private void CheckName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('.'))
            throw new ArgumentException($"Invalid name '{name}': names are non-empty and have no dots.");
        if (_parameters.Any(p => p.Name == name) || _buffers.Any(b => b.Name == name) || _children.Any(c => c.Name == name))
            throw new ArgumentException($"{GetType().Name} already has a member named '{name}'.");
    }

    /// <summary>Replaces a registered parameter's tensor (used when loading or tying weights).</summary>
    protected void ReplaceParameter(string name, Tensor value)
    {
        int i = _parameters.FindIndex(p => p.Name == name);
        if (i < 0) throw new ArgumentException($"{GetType().Name} has no parameter '{name}'.");
        value.RequiresGrad = true;
        _parameters[i] = (name, value);
    }

    public IEnumerable<(string Name, Module Module)> NamedChildren() => _children;

    /// <summary>This module and every sub-module, depth first, with dotted names ("" for this one).</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        yield return (prefix, this);
        foreach (var (name, child) in _children)
            foreach (var item in child.NamedModules(prefix.Length == 0 ? name : prefix + "." + name))
                yield return item;
    }

    /// <summary>Every parameter with its dotted name. A tensor shared by two modules (tied weights) is listed once.</summary>
    public IEnumerable<(string Name, Tensor Parameter)> NamedParameters()
    {
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var (prefix, module) in NamedModules())
            foreach (var (name, p) in module._parameters)
                if (seen.Add(p)) yield return (Join(prefix, name), p);
    }

    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(p => p.Parameter);

    public IEnumerable<(string Name, Tensor Buffer)> NamedBuffers()
    {
        foreach (var (prefix, module) in NamedModules())
            foreach (var (name, b) in module._buffers)
                yield return (Join(prefix, name), b);
    }

    private static string Join(string prefix, string name) => prefix.Length == 0 ? name : prefix + "." + name;

    /// <summary>Total number of trainable scalars.</summary>
    public long ParameterCount => Parameters().Sum(p => (long)p.Count);

    /// <summary>Training mode on (or off) for this module and all sub-modules.</summary>
    public Module Train(bool on = true)
    {
        foreach (var (_, m) in NamedModules()) m.Training = on;
        return this;
    }

    /// <summary>Evaluation mode: dropout off.</summary>
    public Module Eval() => Train(false);

    /// <summary>Clears the gradient of every parameter.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters()) p.DropGrad();
    }

    /// <summary>Parameters and buffers by dotted name (the tensors themselves, not copies).</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var state = new Dictionary<string, Tensor>();
        foreach (var (name, p) in NamedParameters()) state[name] = p;
        foreach (var (name, b) in NamedBuffers()) state[name] = b;
        return state;
    }

    /// <summary>
    /// Copies values into the parameters and buffers. Strict (the default) requires the keys to match exactly;
    /// every problem — a missing or unexpected key, a shape mismatch — is reported by name in one error.
    /// </summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, bool strict = true, string? source = null)
    {
        var own = StateDict();
        var problems = new List<string>();
        foreach (var (name, target) in own)
        {
            if (!state.TryGetValue(name, out var value))
            {
                if (strict) problems.Add($"missing tensor '{name}' (expected shape {target.ShapeString})");
                continue;
            }
            if (!value.Shape.SequenceEqual(target.Shape))
                problems.Add($"tensor '{name}': shape {value.ShapeString} in the checkpoint, {target.ShapeString} in the model");
            else if (value.DType != target.DType)
                problems.Add($"tensor '{name}': dtype {value.DType} in the checkpoint, {target.DType} in the model");
        }
        if (strict)
            foreach (var name in state.Keys)
                if (!own.ContainsKey(name)) problems.Add($"unexpected tensor '{name}'");
        if (problems.Count > 0)
            throw new CheckpointException($"{source ?? "state dict"} does not match {GetType().Name}: " + string.Join("; ", problems) + ".");
        using var _ = GradMode.NoGrad();
        foreach (var (name, target) in own)
            if (state.TryGetValue(name, out var value)) target.CopyFrom(value);
    }

    /// <summary>Saves the state dict as safetensors (atomically).</summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? metadata = null) => SafeTensors.Save(path, StateDict(), metadata);

    /// <summary>Loads a safetensors state dict written by <see cref="Save"/> (or by PyTorch with the same names).</summary>
    public void Load(string path, bool strict = true) => LoadStateDict(SafeTensors.Load(path), strict, path);

    public override string ToString() => ToString(0);

    private string ToString(int indent)
    {
        var own = Describe();
        if (_children.Count == 0) return $"{GetType().Name}({own})";
        var pad = new string(' ', indent + 2);
        var lines = _children.Select(c => $"{pad}({c.Name}): {c.Module.ToString(indent + 2)}");
        return $"{GetType().Name}({own}\n{string.Join("\n", lines)}\n{new string(' ', indent)})";
    }

    /// <summary>The module's own settings for ToString, e.g. "in=4, out=8".</summary>
    protected virtual string Describe() => "";
}
