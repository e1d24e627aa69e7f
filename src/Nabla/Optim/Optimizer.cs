using System.Numerics.Tensors;
using Nabla.Autograd;

namespace Nabla.Optim;

/// <summary>A set of parameters sharing hyper-parameters (e.g. "decay" and "no decay" groups for AdamW).</summary>
public sealed class ParamGroup
{
    public ParamGroup(IEnumerable<Tensor> parameters, float? learningRate = null, float? weightDecay = null)
    {
        Parameters = parameters.ToList();
        LearningRate = learningRate;
        WeightDecay = weightDecay;
    }

    public IReadOnlyList<Tensor> Parameters { get; }
    /// <summary>Overrides the optimizer's learning rate for this group (null: use the optimizer's).</summary>
    public float? LearningRate { get; set; }
    /// <summary>Overrides the optimizer's weight decay for this group (null: use the optimizer's).</summary>
    public float? WeightDecay { get; set; }
}

/// <summary>
/// Base of the optimizers, in PyTorch's shape: construct with the parameters, then each step
/// <c>optimizer.ZeroGrad(); loss.Backward(); optimizer.Step();</c>. Updates run outside autograd. Per-parameter
/// state (moments, momentum buffers) is created on the first step and can be saved with
/// <see cref="StateDict"/> to resume training exactly.
/// </summary>
public abstract class Optimizer
{
    private readonly Dictionary<Tensor, Dictionary<string, Tensor>> _state = new(ReferenceEqualityComparer.Instance);

    protected Optimizer(IEnumerable<Tensor> parameters, float learningRate, float weightDecay)
        : this([new ParamGroup(parameters)], learningRate, weightDecay) { }

    protected Optimizer(IEnumerable<ParamGroup> groups, float learningRate, float weightDecay)
    {
        Groups = groups.ToList();
        if (Groups.Sum(g => g.Parameters.Count) == 0) throw new ArgumentException("The optimizer got no parameters.");
        if (learningRate < 0) throw new ArgumentOutOfRangeException(nameof(learningRate), "The learning rate must not be negative.");
        LearningRate = learningRate;
        WeightDecay = weightDecay;
    }

    public IReadOnlyList<ParamGroup> Groups { get; }

    /// <summary>The base learning rate (schedulers set it every step).</summary>
    public float LearningRate { get; set; }
    public float WeightDecay { get; }

    /// <summary>Number of steps taken.</summary>
    public int StepCount { get; private set; }

    /// <summary>Clears every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Groups.SelectMany(g => g.Parameters)) p.DropGrad();
    }

    /// <summary>Applies one update to every parameter that requires grad and has a gradient; frozen parameters
    /// (<see cref="NN.Module.RequiresGrad_"/>) and parameters backward did not reach are left as they are, as in
    /// PyTorch.</summary>
    public void Step()
    {
        StepCount++;
        using var _ = GradMode.NoGrad();
        foreach (var group in Groups)
        {
            float lr = group.LearningRate ?? LearningRate;
            float wd = group.WeightDecay ?? WeightDecay;
            foreach (var p in group.Parameters)
            {
                if (!p.RequiresGrad || p.Grad is not { } grad) continue;
                if (!p.IsContiguous) throw new InvalidOperationException($"Parameter {p.Name ?? p.ShapeString} is not contiguous.");
                if (p.Device.IsCpu) Update(p.AsSpan(), grad.Contiguous().AsSpan(), lr, wd, State(p));
                else UpdateOnDevice(p.Reshape(-1), grad.Contiguous().Reshape(-1), lr, wd, State(p));
            }
        }
    }

    /// <summary>The update rule for one parameter: <paramref name="p"/> and its gradient, both contiguous.</summary>
    protected abstract void Update(Span<float> p, ReadOnlySpan<float> grad, float lr, float weightDecay, ParamState state);

    /// <summary>The update rule for a parameter on a device (not the CPU), through that device's kernels: the same
    /// rule as <see cref="Update"/>, on <paramref name="p"/> and its gradient flattened like the state buffers.</summary>
    protected abstract void UpdateOnDevice(Tensor p, Tensor grad, float lr, float weightDecay, ParamState state);

    /// <summary>grad + weightDecay·p on a device (see <see cref="DecayedGradient"/>).</summary>
    protected static Tensor DecayedGradient(Tensor p, Tensor grad, float weightDecay) => weightDecay != 0 ? grad.Add(p.Mul(weightDecay)) : grad;

    /// <summary>The state buffers <see cref="Update"/> keeps for each parameter, with this optimizer's settings;
    /// a parameter loaded with some of them must have them all, so a file that lost a moment tensor is refused.</summary>
    protected abstract IReadOnlyList<string> StateBufferNames { get; }

    /// <summary><see cref="StateBufferNames"/> for the library (ZeRO-1 gathers the buffers of sharded state by name).</summary>
    internal IReadOnlyList<string> BufferNames => StateBufferNames;

    private float[] _scratch = [];

    /// <summary>grad + weightDecay·p, the L2 form of weight decay that SGD, Adam and RMSProp use, in scratch slot 0.</summary>
    protected Span<float> DecayedGradient(ReadOnlySpan<float> p, ReadOnlySpan<float> grad, float weightDecay)
    {
        var g = Scratch(0, p.Length);
        if (weightDecay != 0) TensorPrimitives.MultiplyAdd(p, weightDecay, grad, g);
        else grad.CopyTo(g);
        return g;
    }

    /// <summary>Temporary space for an update rule, reused across parameters and steps (not part of the state).</summary>
    protected Span<float> Scratch(int slot, int length)
    {
        int needed = (slot + 1) * length;
        if (_scratch.Length < needed) _scratch = new float[Math.Max(needed, _scratch.Length * 2)];
        return _scratch.AsSpan(slot * length, length);
    }

    private ParamState State(Tensor p)
    {
        if (!_state.TryGetValue(p, out var buffers)) _state[p] = buffers = new Dictionary<string, Tensor>();
        return new ParamState(buffers, p);
    }

    /// <summary>A parameter's named state buffers, created (zeroed) on first use on the parameter's device, and moved
    /// there on first use after the parameter moved (<see cref="NN.Module.To"/>) or was loaded from a file.</summary>
    protected readonly struct ParamState(Dictionary<string, Tensor> buffers, Tensor parameter)
    {
        public bool Has(string name) => buffers.ContainsKey(name);

        public Span<float> Buffer(string name) => Tensor(name).AsSpan();

        public Tensor Tensor(string name)
        {
            if (!buffers.TryGetValue(name, out var t)) buffers[name] = t = MemoryScope.Keep(Nabla.Tensor.Zeros([parameter.Count], parameter.Device));
            else if (!ReferenceEquals(t.Device, parameter.Device)) buffers[name] = t = MemoryScope.Keep(t.To(parameter.Device));
            return t;
        }
    }

    /// <summary>
    /// Optimizer state by name: "step", and "{i}.{buffer}" where i is the parameter's position across groups.
    /// Save it next to the model's state dict to resume training where it stopped.
    /// </summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var state = new Dictionary<string, Tensor> { ["step"] = Tensor.FromArray(new[] { StepCount }) };
        int i = 0;
        foreach (var p in Groups.SelectMany(g => g.Parameters))
        {
            if (_state.TryGetValue(p, out var buffers))
                foreach (var (name, t) in buffers) state[$"{i}.{name}"] = t;
            i++;
        }
        return state;
    }

    /// <summary>Restores state saved by <see cref="StateDict"/>. Everything is checked before anything changes:
    /// the step counter, each entry's parameter, length and values, and that no parameter lost some of its buffers.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, string? source = null)
    {
        source ??= "optimizer state";
        if (!state.TryGetValue("step", out var step))
            throw new IO.CheckpointException($"{source}: the step counter 'step' is missing.");
        if (step.DType != DType.Int32 || step.Count != 1 || step.ToIntArray()[0] < 0)
            throw new IO.CheckpointException($"{source}: 'step' must be one non-negative Int32, got {step.DType} of shape {step.ShapeString}.");
        int stepCount = step.ToIntArray()[0];
        var parameters = Groups.SelectMany(g => g.Parameters).ToList();
        var loaded = parameters.Select(_ => new Dictionary<string, Tensor>()).ToList();
        foreach (var (key, value) in state)
        {
            if (key == "step") continue;
            int dot = key.IndexOf('.');
            if (dot < 0 || !int.TryParse(key[..dot], out int i) || i < 0 || i >= parameters.Count)
                throw new IO.CheckpointException($"{source}: unexpected entry '{key}' (the optimizer has {parameters.Count} parameters).");
            var p = parameters[i];
            var name = key[(dot + 1)..];
            if (!StateBufferNames.Contains(name))
                throw new IO.CheckpointException($"{source}: unexpected entry '{key}' ({GetType().Name} keeps {(StateBufferNames.Count == 0 ? "no buffers" : string.Join(", ", StateBufferNames))} with these settings).");
            if (value.DType != DType.Float32 || value.Count != p.Count)
                throw new IO.CheckpointException($"{source}: '{key}' is {value.DType} with {value.Count} values but parameter {i} ({p.Name ?? p.ShapeString}) is Float32 with {p.Count}.");
            var copy = MemoryScope.Keep(value.Reshape(-1).Clone());
            if (!AllFinite(copy))
                throw new IO.CheckpointException($"{source}: '{key}' holds NaN or infinite values.");
            loaded[i][name] = copy;
        }
        // A parameter that never received a gradient has no state (as in PyTorch); one with some of its
        // buffers lost the others, and a file with none at all after steps were taken lost them all.
        for (int i = 0; i < parameters.Count; i++)
            if (loaded[i].Count > 0 && StateBufferNames.FirstOrDefault(name => !loaded[i].ContainsKey(name)) is { } missing)
                throw new IO.CheckpointException($"{source}: tensor '{i}.{missing}' is missing (parameter {i}, {parameters[i].Name ?? parameters[i].ShapeString}, has its other state); the file is incomplete.");
        if (stepCount > 0 && StateBufferNames.Count > 0 && loaded.All(b => b.Count == 0))
            throw new IO.CheckpointException($"{source}: no {string.Join(" / ", StateBufferNames)} tensors after {stepCount} steps; the file is incomplete.");
        for (int i = 0; i < parameters.Count; i++)
            if (loaded[i].Count > 0) _state[parameters[i]] = loaded[i];
            else _state.Remove(parameters[i]);
        StepCount = stepCount;
    }

    private static bool AllFinite(Tensor t)
    {
        foreach (float v in t.ToArray())
            if (!float.IsFinite(v)) return false;
        return true;
    }
}

/// <summary>Stochastic gradient descent with optional momentum (PyTorch's formulation), Nesterov momentum and L2 weight decay.</summary>
public sealed class SGD : Optimizer
{
    public float Momentum { get; }
    public float Dampening { get; }
    public bool Nesterov { get; }

    public SGD(IEnumerable<Tensor> parameters, float learningRate, float momentum = 0f, float dampening = 0f, float weightDecay = 0f, bool nesterov = false)
        : this([new ParamGroup(parameters)], learningRate, momentum, dampening, weightDecay, nesterov) { }

    public SGD(IEnumerable<ParamGroup> groups, float learningRate, float momentum = 0f, float dampening = 0f, float weightDecay = 0f, bool nesterov = false)
        : base(groups, learningRate, weightDecay)
    {
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum requires a positive momentum and zero dampening.");
        Momentum = momentum;
        Dampening = dampening;
        Nesterov = nesterov;
    }

    protected override IReadOnlyList<string> StateBufferNames => Momentum != 0 ? ["momentum_buffer"] : [];

    protected override void Update(Span<float> p, ReadOnlySpan<float> grad, float lr, float weightDecay, ParamState state)
    {
        var d = DecayedGradient(p, grad, weightDecay);
        if (Momentum != 0)
        {
            bool first = !state.Has("momentum_buffer");
            var buf = state.Buffer("momentum_buffer");
            if (first) d.CopyTo(buf);
            else
            {
                // buf = momentum·buf + (1 - dampening)·d
                TensorPrimitives.Multiply(buf, Momentum, buf);
                TensorPrimitives.MultiplyAdd(d, 1 - Dampening, buf, buf);
            }
            if (Nesterov) TensorPrimitives.MultiplyAdd(buf, Momentum, d, d);
            else buf.CopyTo(d);
        }
        TensorPrimitives.MultiplyAdd(d, -lr, p, p);
    }

    protected override void UpdateOnDevice(Tensor p, Tensor grad, float lr, float weightDecay, ParamState state)
    {
        var d = DecayedGradient(p, grad, weightDecay);
        if (Momentum != 0)
        {
            bool first = !state.Has("momentum_buffer");
            var buf = state.Tensor("momentum_buffer");
            if (first) buf.CopyFrom(d);
            else buf.MulInPlace(Momentum).AddInPlace(d, 1 - Dampening);
            d = Nesterov ? d.Add(buf.Mul(Momentum)) : buf;
        }
        p.AddInPlace(d, -lr);
    }
}

/// <summary>Adam (Kingma &amp; Ba) with L2 weight decay added to the gradient, as PyTorch's Adam does.</summary>
public class Adam : Optimizer
{
    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }
    private readonly bool _decoupled;

    public Adam(IEnumerable<Tensor> parameters, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0f)
        : this([new ParamGroup(parameters)], learningRate, beta1, beta2, eps, weightDecay, decoupled: false) { }

    protected Adam(IEnumerable<ParamGroup> groups, float learningRate, float beta1, float beta2, float eps, float weightDecay, bool decoupled)
        : base(groups, learningRate, weightDecay)
    {
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        _decoupled = decoupled;
    }

    protected override IReadOnlyList<string> StateBufferNames => ["exp_avg", "exp_avg_sq"];

    protected override unsafe void Update(Span<float> p, ReadOnlySpan<float> grad, float lr, float weightDecay, ParamState state)
    {
        var m = state.Buffer("exp_avg");
        var v = state.Buffer("exp_avg_sq");
        ReadOnlySpan<float> g = _decoupled || weightDecay == 0 ? grad : DecayedGradient(p, grad, weightDecay);
        fixed (float* pp = p, gp = g, mp = m, vp = v)
            Kernels.Backend.Current.AdamW(pp, gp, mp, vp, p.Length, lr, Beta1, Beta2, Eps, _decoupled ? weightDecay : 0f, StepCount);
    }

    protected override unsafe void UpdateOnDevice(Tensor p, Tensor grad, float lr, float weightDecay, ParamState state)
    {
        var m = state.Tensor("exp_avg");
        var v = state.Tensor("exp_avg_sq");
        var g = _decoupled ? grad : DecayedGradient(p, grad, weightDecay);
        Tensor.KernelsFor(GetType().Name, p, g, m, v).AdamW(p.Data, g.Data, m.Data, v.Data, p.Count, lr, Beta1, Beta2, Eps, _decoupled ? weightDecay : 0f, StepCount);
        GC.KeepAlive(g);
    }
}

/// <summary>AdamW (Loshchilov &amp; Hutter): Adam with weight decay applied to the weights directly (decoupled),
/// in one fused pass per parameter.</summary>
public sealed class AdamW : Adam
{
    public AdamW(IEnumerable<Tensor> parameters, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0.01f)
        : base([new ParamGroup(parameters)], learningRate, beta1, beta2, eps, weightDecay, decoupled: true) { }

    public AdamW(IEnumerable<ParamGroup> groups, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0.01f)
        : base(groups, learningRate, beta1, beta2, eps, weightDecay, decoupled: true) { }
}

/// <summary>RMSProp (Hinton), PyTorch's formulation: optional momentum and centring.</summary>
public sealed class RMSProp : Optimizer
{
    public float Alpha { get; }
    public float Eps { get; }
    public float Momentum { get; }
    public bool Centered { get; }

    public RMSProp(IEnumerable<Tensor> parameters, float learningRate = 1e-2f, float alpha = 0.99f, float eps = 1e-8f, float weightDecay = 0f, float momentum = 0f, bool centered = false)
        : base(parameters, learningRate, weightDecay)
    {
        Alpha = alpha;
        Eps = eps;
        Momentum = momentum;
        Centered = centered;
    }

    protected override IReadOnlyList<string> StateBufferNames => ["square_avg", .. (Centered ? (string[])["grad_avg"] : []), .. (Momentum > 0 ? (string[])["momentum_buffer"] : [])];

    protected override void Update(Span<float> p, ReadOnlySpan<float> grad, float lr, float weightDecay, ParamState state)
    {
        var g = DecayedGradient(p, grad, weightDecay);
        var sq = state.Buffer("square_avg");
        // sq = α·sq + (1-α)·g²
        TensorPrimitives.Multiply(sq, Alpha, sq);
        var g2 = Scratch(1, p.Length);
        TensorPrimitives.Multiply(g, g, g2);
        TensorPrimitives.MultiplyAdd(g2, 1 - Alpha, sq, sq);
        var avg = g2; // reuse: avg = sqrt(sq - ḡ²) + eps (centred) or sqrt(sq) + eps
        if (Centered)
        {
            var ga = state.Buffer("grad_avg");
            TensorPrimitives.Multiply(ga, Alpha, ga);
            TensorPrimitives.MultiplyAdd(g, 1 - Alpha, ga, ga);
            TensorPrimitives.Multiply(ga, ga, avg);
            TensorPrimitives.Subtract(sq, avg, avg);
        }
        else sq.CopyTo(avg);
        TensorPrimitives.Sqrt(avg, avg);
        TensorPrimitives.Add(avg, Eps, avg);
        TensorPrimitives.Divide(g, avg, g);
        if (Momentum > 0)
        {
            var buf = state.Buffer("momentum_buffer");
            TensorPrimitives.MultiplyAdd(buf, Momentum, g, buf);
            TensorPrimitives.MultiplyAdd(buf, -lr, p, p);
        }
        else TensorPrimitives.MultiplyAdd(g, -lr, p, p);
    }

    protected override void UpdateOnDevice(Tensor p, Tensor grad, float lr, float weightDecay, ParamState state)
    {
        var g = DecayedGradient(p, grad, weightDecay);
        var sq = state.Tensor("square_avg").MulInPlace(Alpha).AddInPlace(g.Mul(g), 1 - Alpha);
        var variance = sq;
        if (Centered)
        {
            var ga = state.Tensor("grad_avg").MulInPlace(Alpha).AddInPlace(g, 1 - Alpha);
            variance = sq.Sub(ga.Mul(ga));
        }
        var step = g.Div(variance.Sqrt().Add(Eps));
        if (Momentum > 0) step = state.Tensor("momentum_buffer").MulInPlace(Momentum).AddInPlace(step);
        p.AddInPlace(step, -lr);
    }
}
