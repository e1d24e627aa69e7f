using Nabla.Autograd;
using Nabla.IO;

namespace Nabla.NN;

/// <summary>
/// Base class of layers and models, shaped like PyTorch's <c>nn.Module</c>: a module registers its parameters,
/// buffers and sub-modules by name in its constructor, and gets <see cref="Parameters"/>,
/// <see cref="NamedParameters"/>, <see cref="Train"/>/<see cref="Eval"/>, <see cref="StateDict"/> and
/// <see cref="LoadStateDict"/> for free. Names are dotted paths ("layers.0.weight"), as in PyTorch, so state
/// dicts map one to one onto checkpoints written by either. A module's Forward runs its children with
/// <see cref="ForwardChild(string, Tensor)"/>, which looks them up in the registry, so sub-modules can be
/// replaced by path (<see cref="SetSubmodule"/>) and <see cref="AnomalyMode"/> can name the one running.
/// </summary>
public abstract class Module
{
    private readonly List<(string Name, Tensor Tensor)> _parameters = new();
    private readonly List<(string Name, Tensor Tensor)> _buffers = new();
    private readonly HashSet<string> _optionalBuffers = new(); // may be absent from a checkpoint, even a strict one
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

    /// <summary>Registers non-trainable state that belongs in the state dict (running statistics, masks).
    /// An <paramref name="optional"/> buffer may be absent from a checkpoint, even in a strict load, and is then
    /// zeroed: state added to a layer after checkpoints without it were written, such as PyTorch's
    /// num_batches_tracked, which PyTorch treats the same way.</summary>
    protected Tensor RegisterBuffer(string name, Tensor value, bool optional = false)
    {
        CheckName(name);
        MemoryScope.Keep(value);
        _buffers.Add((name, value));
        if (optional) _optionalBuffers.Add(name);
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

    /// <summary>The direct sub-modules with the names they are registered under.</summary>
    public IEnumerable<(string Name, Module Module)> NamedChildren() => _children;

    /// <summary>The direct sub-modules.</summary>
    public IEnumerable<Module> Children() => _children.Select(c => c.Module);

    /// <summary>This module and every sub-module, depth first, with dotted names ("" for this one).</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        yield return (prefix, this);
        foreach (var (name, child) in _children)
            foreach (var item in child.NamedModules(prefix.Length == 0 ? name : prefix + "." + name))
                yield return item;
    }

    /// <summary>This module and every sub-module, depth first.</summary>
    public IEnumerable<Module> Modules() => NamedModules().Select(m => m.Module);

    /// <summary>The sub-module at a dotted path ("h.3.attn.c_attn"; "" is this module), like PyTorch's
    /// <c>get_submodule</c>.</summary>
    public Module GetSubmodule(string target) => Resolve(target, target.AsSpan());

    /// <summary>Replaces the registered sub-module at a dotted path by <paramref name="module"/>, like PyTorch's
    /// <c>set_submodule</c>. The parent runs whatever is registered, so the replacement takes effect in the next
    /// forward pass (wrap a <see cref="Linear"/> to add a low-rank update, quantise it, ...).</summary>
    public void SetSubmodule(string target, Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        int dot = target.LastIndexOf('.');
        var parent = dot < 0 ? this : GetSubmodule(target[..dot]);
        var name = target[(dot + 1)..];
        int i = parent._children.FindIndex(c => c.Name == name);
        if (i < 0)
            throw new ArgumentException($"{GetType().Name} has no sub-module '{target}': {DescribeAt(parent, target[..Math.Max(dot, 0)])} has no child '{name}'{ChildList(parent)}.");
        parent._children[i] = (name, module);
    }

    /// <summary>Turns gradients on (or off: freezing) for every parameter of this module and its sub-modules,
    /// like PyTorch's <c>module.requires_grad_(False)</c>. Optimizers skip frozen parameters.</summary>
    public Module RequiresGrad_(bool requiresGrad = true)
    {
        foreach (var p in Parameters()) p.RequiresGrad = requiresGrad;
        return this;
    }

    /// <summary>The registered sub-module at <paramref name="name"/> (a child's name or a dotted path) as a
    /// <typeparamref name="T"/>, looked up on every call so that a replaced child is the one used; the error names
    /// the path and both types if it was replaced by a module of another kind.</summary>
    protected T Child<T>(string name) where T : Module
    {
        var child = Resolve(name, name.AsSpan());
        if (child is T typed) return typed;
        // While a model runs, name the child by its full path from the model the caller ran.
        var path = ModuleContext.CurrentPath is { } running ? running + "." + name : name;
        throw new InvalidOperationException($"Sub-module '{path}' is a {child.GetType().Name}, but {GetType().Name} needs a {typeof(T).Name} there.");
    }

    /// <summary>Runs the registered sub-module at <paramref name="name"/> (a child's name, or a dotted path such as
    /// "h.3") on <paramref name="input"/>. Models call their children this way: the child is looked up in the
    /// registry (so <see cref="SetSubmodule"/> takes effect) and is known to be running (so
    /// <see cref="AnomalyMode"/> can name it).</summary>
    protected Tensor ForwardChild(string name, Tensor input) => RunChild(name, Resolve(name, name.AsSpan()), input);

    /// <summary>Runs the registered sub-module at <paramref name="name"/> through one of its own Forward
    /// overloads (e.g. with a KV cache).</summary>
    protected TResult ForwardChild<TChild, TResult>(string name, Func<TChild, TResult> forward) where TChild : Module
    {
        var child = Child<TChild>(name);
        ModuleContext.Push(name);
        try { return forward(child); }
        finally { ModuleContext.Pop(); }
    }

    /// <summary>Runs <paramref name="child"/>, registered under <paramref name="name"/>, marking it as running.</summary>
    private protected static Tensor RunChild(string name, Module child, Tensor input)
    {
        ModuleContext.Push(name);
        try { return child.Forward(input); }
        finally { ModuleContext.Pop(); }
    }

    /// <summary>Walks a dotted path through the registered children without allocating.</summary>
    private Module Resolve(string target, ReadOnlySpan<char> path)
    {
        var module = this;
        int walked = 0;
        while (!path.IsEmpty)
        {
            int dot = path.IndexOf('.');
            var name = dot < 0 ? path : path[..dot];
            Module? next = null;
            foreach (var (childName, child) in module._children)
                if (name.SequenceEqual(childName)) { next = child; break; }
            if (next == null)
                throw new ArgumentException($"{GetType().Name} has no sub-module '{target}': {DescribeAt(module, target[..Math.Max(walked - 1, 0)])} has no child '{name}'{ChildList(module)}.");
            module = next;
            walked += name.Length + 1;
            path = dot < 0 ? default : path[(dot + 1)..];
        }
        return module;
    }

    private static string DescribeAt(Module module, string path) =>
        path.Length == 0 ? $"the {module.GetType().Name} itself" : $"'{path}' ({module.GetType().Name})";

    private static string ChildList(Module module) =>
        module._children.Count == 0 ? " (it has no sub-modules)" : $" (its children: {string.Join(", ", module._children.Select(c => c.Name))})";

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

    /// <summary>Number of parameter scalars, frozen or not (tied weights counted once).</summary>
    public long ParameterCount => Parameters().Sum(p => (long)p.Count);

    /// <summary>Number of parameter scalars that require grad (what an optimizer updates).</summary>
    public long TrainableParameterCount => Parameters().Where(p => p.RequiresGrad).Sum(p => (long)p.Count);

    /// <summary>Training mode on (or off) for this module and all sub-modules. Virtual, as PyTorch's train(), so a
    /// model can keep part of itself in evaluation mode (a frozen body's batch norm).</summary>
    public virtual Module Train(bool on = true)
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

    /// <summary>
    /// Moves every parameter, buffer and gradient of this module and its sub-modules to <paramref name="device"/> and
    /// returns the module, as PyTorch's <c>module.to(device)</c>. The tensors keep their identity, so an optimizer
    /// built on <see cref="Parameters"/> goes on working (its state follows the parameters on its next step); tied
    /// weights stay tied.
    /// </summary>
    public Module To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var moved = new Dictionary<Storage, Storage>(ReferenceEqualityComparer.Instance);
        foreach (var (_, module) in NamedModules())
        {
            foreach (var (_, p) in module._parameters)
            {
                p.MoveStorageTo(device, moved);
                p.Grad?.MoveStorageTo(device, moved);
            }
            foreach (var (_, b) in module._buffers) b.MoveStorageTo(device, moved);
        }
        return this;
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
        var optional = NamedModules().SelectMany(m => m.Module._optionalBuffers.Select(b => Join(m.Name, b))).ToHashSet();
        var problems = new List<string>();
        foreach (var (name, target) in own)
        {
            if (!state.TryGetValue(name, out var value))
            {
                if (strict && !optional.Contains(name)) problems.Add($"missing tensor '{name}' (expected shape {target.ShapeString})");
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
            else if (optional.Contains(name)) target.Zero(); // all bits zero: 0 in every dtype
    }

    /// <summary>Saves the state dict as safetensors (atomically).</summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? metadata = null) => SafeTensors.Save(path, StateDict(), metadata);

    /// <summary>Loads a safetensors state dict written by <see cref="Save"/> (or by PyTorch with the same names).</summary>
    public void Load(string path, bool strict = true) => LoadStateDict(SafeTensors.Load(path), strict, path);

    /// <summary>What the Hugging Face class that adapters and hub checkpoints wrap puts before this model's
    /// parameter names ("" when the names are the same; GPT-2: GPT2LMHeadModel's "transformer.").</summary>
    public virtual string HubNamePrefix => "";

    /// <summary>When the model's output layer is one of its embeddings transposed (GPT-2's head, tied to "wte"): that
    /// embedding's name, and the full Hugging Face name of the output layer it stands for ("lm_head"), which adapters
    /// name. Null when the model has no tied head.</summary>
    public virtual (string Embedding, string HubHead)? TiedHead => null;

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
