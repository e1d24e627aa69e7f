namespace Nabla.NN;

/// <summary>The activation of a plain <see cref="RNN"/>: h' = act(W_ih x + b_ih + W_hh h + b_hh).</summary>
public enum RnnNonlinearity { Tanh, Relu }

/// <summary>
/// What <see cref="RNN"/>, <see cref="LSTM"/> and <see cref="GRU"/> share: PyTorch's parameters (named
/// <c>weight_ih_l{k}</c>, <c>weight_hh_l{k}</c>, <c>bias_ih_l{k}</c>, <c>bias_hh_l{k}</c>, plus <c>_reverse</c> for the
/// backward direction, each (gates·hidden, in) or (gates·hidden), registered on the module itself so a PyTorch state
/// dict loads strictly), their U(-1/√hidden, 1/√hidden) initialisation, and the unrolling over time, layers and
/// directions with dropout between layers and PyTorch's packed-sequence semantics for variable lengths.
/// <para>Each layer and direction runs as one autograd node with fused per-step kernels (<see cref="FusedRecurrence"/>);
/// with <see cref="UseFusedKernels"/> off it runs the plain version composed from autograd ops (one GEMM for the input
/// projection of all steps, then per step a GEMM and the gate math as separate nodes), which is the fused path's
/// test oracle.</para>
/// </summary>
public abstract class RecurrentBase : Module
{
    public int InputSize { get; }
    public int HiddenSize { get; }
    public int NumLayers { get; }
    public bool HasBias { get; }
    public bool BatchFirst { get; }
    public float Dropout { get; }
    public bool Bidirectional { get; }
    /// <summary>The size of h: <see cref="HiddenSize"/>, or an LSTM's projection size when it has one.</summary>
    protected int StateSize { get; }
    private int Directions => Bidirectional ? 2 : 1;
    /// <summary>Whether each layer and direction runs as one fused node (the default) or as the per-step graph of
    /// autograd ops (the reference the fused path is tested against; slower, same results within rounding).</summary>
    public bool UseFusedKernels { get; set; } = true;
    private protected abstract RecurrentCellKind CellKind { get; }

    /// <summary>The weights of one layer in one direction.</summary>
    protected readonly record struct Cell(Tensor InputWeight, Tensor HiddenWeight, Tensor? InputBias, Tensor? HiddenBias, Tensor? ProjectionWeight)
    {
        public Tensor ProjectHidden(Tensor hidden) => F.Linear(hidden, HiddenWeight, HiddenBias);
    }

    private readonly Cell[] _cells; // [layer * directions + direction]
    private readonly Generator? _dropoutGenerator;
    private readonly string _kind;

    protected RecurrentBase(string kind, int gates, int inputSize, int hiddenSize, int numLayers, bool bias, bool batchFirst,
        float dropout, bool bidirectional, Generator? generator, int projectionSize = 0)
    {
        if (inputSize <= 0 || hiddenSize <= 0 || numLayers <= 0)
            throw new ArgumentException($"{kind}({inputSize}, {hiddenSize}, num_layers={numLayers}): sizes and the number of layers must be positive.");
        if (dropout is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(dropout), $"{kind}: dropout must be in [0, 1], got {dropout}.");
        if (projectionSize < 0 || (projectionSize > 0 && projectionSize >= hiddenSize))
            throw new ArgumentException($"{kind}: proj_size must be in 0..{hiddenSize - 1} (below hidden_size), got {projectionSize}.");
        _kind = kind;
        StateSize = projectionSize > 0 ? projectionSize : hiddenSize;
        InputSize = inputSize;
        HiddenSize = hiddenSize;
        NumLayers = numLayers;
        HasBias = bias;
        BatchFirst = batchFirst;
        Dropout = dropout;
        Bidirectional = bidirectional;
        _dropoutGenerator = generator;
        _cells = new Cell[numLayers * Directions];
        for (int layer = 0; layer < numLayers; layer++)
            for (int direction = 0; direction < Directions; direction++)
            {
                string suffix = $"_l{layer}" + (direction == 1 ? "_reverse" : "");
                int layerInput = layer == 0 ? inputSize : StateSize * Directions;
                // Registered in PyTorch's order, so Parameters() lines up with torch's parameters().
                var inputWeight = RegisterParameter("weight_ih" + suffix, Tensor.Zeros(gates * hiddenSize, layerInput));
                var hiddenWeight = RegisterParameter("weight_hh" + suffix, Tensor.Zeros(gates * hiddenSize, StateSize));
                var inputBias = bias ? RegisterParameter("bias_ih" + suffix, Tensor.Zeros(gates * hiddenSize)) : null;
                var hiddenBias = bias ? RegisterParameter("bias_hh" + suffix, Tensor.Zeros(gates * hiddenSize)) : null;
                var projectionWeight = projectionSize > 0 ? RegisterParameter("weight_hr" + suffix, Tensor.Zeros(projectionSize, hiddenSize)) : null;
                _cells[layer * Directions + direction] = new Cell(inputWeight, hiddenWeight, inputBias, hiddenBias, projectionWeight);
            }
        float bound = 1f / MathF.Sqrt(hiddenSize);
        foreach (var parameter in Parameters()) Init.Uniform(parameter, -bound, bound, generator);
    }

    /// <summary>One time step of one cell: <paramref name="inputGates"/> is W_ih x + b_ih for this step (batch, gates·hidden);
    /// returns the new state (h, or h and c).</summary>
    protected abstract Tensor[] Step(Tensor inputGates, Tensor[] state, Cell cell);

    /// <summary>Unrolls every layer and direction. <paramref name="initialStates"/>: one (layers·directions, batch, hidden)
    /// tensor per state (h, c), or null for zeros. <paramref name="lengths"/>: each sequence's real length (1..T) for a
    /// padded batch, or null when all are T; or instead <paramref name="mask"/>, (batch, time) with 1 at each sequence's
    /// steps and 0 at its padding. Returns the last layer's output (both directions concatenated) and the final states
    /// in PyTorch's layout.</summary>
    protected (Tensor Output, Tensor[] FinalStates) Run(Tensor input, Tensor?[] initialStates, int[]? lengths, Tensor? mask = null)
    {
        string layout = BatchFirst ? "(batch, time, features)" : "(time, batch, features)";
        if (input.Rank != 3 || input.Size(2) != InputSize)
            throw new ArgumentException($"{_kind}: input must be {layout} with {InputSize} features, got {Kernels.ShapeMath.Format(input.Shape)}.");
        var sequence = BatchFirst ? input.Transpose(0, 1) : input; // (T, B, in)
        int steps = sequence.Size(0), batch = sequence.Size(1);
        var initial = new Tensor[initialStates.Length];
        string[] stateNames = initialStates.Length == 2 ? ["h0", "c0"] : ["h0"];
        for (int k = 0; k < initial.Length; k++)
        {
            var given = initialStates[k];
            int[] expected = [NumLayers * Directions, batch, k == 0 ? StateSize : HiddenSize];
            if (given != null && !given.Shape.SequenceEqual(expected))
                throw new ArgumentException($"{_kind}: {stateNames[k]} must be (layers·directions, batch, {(k == 0 ? "hidden or projection" : "hidden")}) = {Kernels.ShapeMath.Format(expected)}, got {Kernels.ShapeMath.Format(given.Shape)}.");
            initial[k] = given ?? Tensor.Zeros(expected, sequence.Device);
        }
        if (steps == 0) throw new ArgumentException($"{_kind}: the input has no time steps.");
        if (mask != null)
        {
            if (lengths != null) throw new ArgumentException($"{_kind}: give the lengths or a mask, not both.");
            lengths = LengthsOf(mask, steps, batch);
        }
        if (lengths != null) CheckLengths(lengths, steps, batch);
        bool fused = UseFusedKernels;
        var masks = lengths == null || fused ? null : StepMasks(lengths, steps, sequence.Device);

        var finals = new List<Tensor>[initial.Length];
        for (int k = 0; k < finals.Length; k++) finals[k] = new List<Tensor>();
        var layerInput = sequence;
        for (int layer = 0; layer < NumLayers; layer++)
        {
            var directionOutputs = new Tensor[Directions];
            for (int direction = 0; direction < Directions; direction++)
            {
                int index = layer * Directions + direction;
                var cell = _cells[index];
                if (fused)
                {
                    var (fusedOutput, hidden, cellState) = FusedRecurrence.Layer(CellKind, layerInput, cell.InputWeight, cell.InputBias, cell.HiddenWeight,
                        cell.HiddenBias, cell.ProjectionWeight, initial[0].Select(0, index), initial.Length > 1 ? initial[1].Select(0, index) : null,
                        lengths, reverse: direction == 1);
                    directionOutputs[direction] = fusedOutput;
                    finals[0].Add(hidden);
                    if (cellState != null) finals[1].Add(cellState);
                    continue;
                }
                var inputGates = F.Linear(layerInput, cell.InputWeight, cell.InputBias); // all steps in one GEMM
                var state = initial.Select(s => s.Select(0, index)).ToArray();
                var outputs = new Tensor[steps];
                for (int s = 0; s < steps; s++)
                {
                    int t = direction == 0 ? s : steps - 1 - s;
                    var next = Step(inputGates.Select(0, t), state, cell);
                    if (masks != null)
                    {
                        // Padded steps keep the state (and so pass no gradient to this step's gates) and output zero;
                        // the reverse direction, walking from T-1, thus starts at each sequence's own last step.
                        for (int k = 0; k < next.Length; k++) next[k] = state[k].Add(next[k].Sub(state[k]).Mul(masks[t]));
                        outputs[t] = next[0].Mul(masks[t]);
                    }
                    else outputs[t] = next[0];
                    state = next;
                }
                directionOutputs[direction] = Tensor.Stack(outputs, 0);
                for (int k = 0; k < state.Length; k++) finals[k].Add(state[k]);
            }
            var layerOutput = Directions == 2 ? Tensor.Concat(directionOutputs, 2) : directionOutputs[0];
            layerInput = layer < NumLayers - 1 ? F.Dropout(layerOutput, Dropout, Training, _dropoutGenerator) : layerOutput;
        }
        var output = BatchFirst ? layerInput.Transpose(0, 1) : layerInput;
        return (output, finals.Select(f => Tensor.Stack(f, 0)).ToArray());
    }

    /// <summary>Each row's length from a (batch, time) mask, which must be ones then zeros (packed sequences have no holes).</summary>
    private int[] LengthsOf(Tensor mask, int steps, int batch)
    {
        if (mask.Rank != 2 || mask.Size(0) != batch || mask.Size(1) != steps)
            throw new ArgumentException($"{_kind}: mask must be (batch, time) = [{batch}, {steps}], got {mask.ShapeString}.");
        var values = mask.ToArray();
        var lengths = new int[batch];
        for (int b = 0; b < batch; b++)
        {
            var row = values.AsSpan(b * steps, steps);
            if (row.ContainsAnyExcept(0f, 1f))
                throw new ArgumentException($"{_kind}: mask row {b} holds a value other than 0 and 1.");
            lengths[b] = row.IndexOf(0f) is var firstPad and >= 0 ? firstPad : steps;
            if (row[lengths[b]..].Contains(1f))
                throw new ArgumentException($"{_kind}: mask row {b} has a step after padding; padding must come after each sequence's last step.");
        }
        return lengths;
    }

    private void CheckLengths(int[] lengths, int steps, int batch)
    {
        if (lengths.Length != batch)
            throw new ArgumentException($"{_kind}: {lengths.Length} lengths given for a batch of {batch} sequences.");
        foreach (int length in lengths)
            if (length < 1 || length > steps)
                throw new ArgumentException($"{_kind}: every length must be in 1..{steps} (the padded length), got {length}.");
    }

    /// <summary>Per time step a (batch, 1) tensor: 1 where the step is inside the sequence, 0 where it is padding.</summary>
    private static Tensor[] StepMasks(int[] lengths, int steps, Device device)
    {
        var masks = new Tensor[steps];
        for (int t = 0; t < steps; t++)
            masks[t] = Tensor.FromArray(lengths.Select(length => t < length ? 1f : 0f).ToArray(), lengths.Length, 1).To(device);
        return masks;
    }

    protected override string Describe() =>
        $"{InputSize}, {HiddenSize}, num_layers={NumLayers}, bias={HasBias}, batch_first={BatchFirst}, dropout={Dropout}, bidirectional={Bidirectional}";
}

/// <summary>Elman RNN, as torch.nn.RNN: h' = tanh or relu(W_ih x + b_ih + W_hh h + b_hh).</summary>
public sealed class RNN : RecurrentBase
{
    public RnnNonlinearity Nonlinearity { get; }

    public RNN(int inputSize, int hiddenSize, int numLayers = 1, RnnNonlinearity nonlinearity = RnnNonlinearity.Tanh, bool bias = true,
        bool batchFirst = false, float dropout = 0f, bool bidirectional = false, Generator? generator = null)
        : base("RNN", 1, inputSize, hiddenSize, numLayers, bias, batchFirst, dropout, bidirectional, generator) =>
        Nonlinearity = nonlinearity;

    private protected override RecurrentCellKind CellKind => Nonlinearity == RnnNonlinearity.Tanh ? RecurrentCellKind.RnnTanh : RecurrentCellKind.RnnRelu;

    /// <summary>The output of every step (the last layer's, directions concatenated).</summary>
    public override Tensor Forward(Tensor input) => Forward(input, null).Output;

    /// <summary>Output (T, B, directions·H) or (B, T, ...) and the final hidden state (layers·directions, B, H).
    /// Variable lengths: <paramref name="lengths"/> or a (B, T) <paramref name="mask"/> of ones then zeros.</summary>
    public (Tensor Output, Tensor HiddenState) Forward(Tensor input, Tensor? h0, int[]? lengths = null, Tensor? mask = null)
    {
        var (output, finals) = Run(input, [h0], lengths, mask);
        return (output, finals[0]);
    }

    protected override Tensor[] Step(Tensor inputGates, Tensor[] state, Cell cell)
    {
        var preActivation = inputGates.Add(cell.ProjectHidden(state[0]));
        return [Nonlinearity == RnnNonlinearity.Tanh ? preActivation.Tanh() : preActivation.Relu()];
    }

    protected override string Describe() => base.Describe() + $", nonlinearity={Nonlinearity}";
}

/// <summary>Long short-term memory, as torch.nn.LSTM (gate order i, f, g, o): c' = f∘c + i∘g, h' = o∘tanh(c'),
/// or with <c>projSize</c> > 0, h' = W_hr (o∘tanh(c')) (h then has projSize features).</summary>
public sealed class LSTM : RecurrentBase
{
    public int ProjSize { get; }

    public LSTM(int inputSize, int hiddenSize, int numLayers = 1, bool bias = true, bool batchFirst = false, float dropout = 0f,
        bool bidirectional = false, int projSize = 0, Generator? generator = null)
        : base("LSTM", 4, inputSize, hiddenSize, numLayers, bias, batchFirst, dropout, bidirectional, generator, projSize) =>
        ProjSize = projSize;

    private protected override RecurrentCellKind CellKind => RecurrentCellKind.Lstm;

    public override Tensor Forward(Tensor input) => Forward(input, null, null).Output;

    /// <summary>Output and the final hidden (layers·directions, B, H or projSize) and cell (layers·directions, B, H) states. h0 and c0 may each be null (zeros).</summary>
    public (Tensor Output, Tensor HiddenState, Tensor CellState) Forward(Tensor input, Tensor? h0, Tensor? c0, int[]? lengths = null, Tensor? mask = null)
    {
        var (output, finals) = Run(input, [h0, c0], lengths, mask);
        return (output, finals[0], finals[1]);
    }

    protected override string Describe() => base.Describe() + (ProjSize > 0 ? $", proj_size={ProjSize}" : "");

    protected override Tensor[] Step(Tensor inputGates, Tensor[] state, Cell cell)
    {
        int h = HiddenSize;
        var gates = inputGates.Add(cell.ProjectHidden(state[0]));
        var inputGate = gates.Narrow(1, 0, h).Sigmoid();
        var forgetGate = gates.Narrow(1, h, h).Sigmoid();
        var candidate = gates.Narrow(1, 2 * h, h).Tanh();
        var outputGate = gates.Narrow(1, 3 * h, h).Sigmoid();
        var cellState = forgetGate.Mul(state[1]).Add(inputGate.Mul(candidate));
        var hidden = outputGate.Mul(cellState.Tanh());
        return [cell.ProjectionWeight == null ? hidden : F.Linear(hidden, cell.ProjectionWeight), cellState];
    }
}

/// <summary>Gated recurrent unit, as torch.nn.GRU (gate order r, z, n): n = tanh(W_in x + b_in + r∘(W_hn h + b_hn)),
/// h' = (1 - z)∘n + z∘h.</summary>
public sealed class GRU : RecurrentBase
{
    public GRU(int inputSize, int hiddenSize, int numLayers = 1, bool bias = true, bool batchFirst = false, float dropout = 0f,
        bool bidirectional = false, Generator? generator = null)
        : base("GRU", 3, inputSize, hiddenSize, numLayers, bias, batchFirst, dropout, bidirectional, generator) { }

    private protected override RecurrentCellKind CellKind => RecurrentCellKind.Gru;

    public override Tensor Forward(Tensor input) => Forward(input, null).Output;

    public (Tensor Output, Tensor HiddenState) Forward(Tensor input, Tensor? h0, int[]? lengths = null, Tensor? mask = null)
    {
        var (output, finals) = Run(input, [h0], lengths, mask);
        return (output, finals[0]);
    }

    protected override Tensor[] Step(Tensor inputGates, Tensor[] state, Cell cell)
    {
        int h = HiddenSize;
        var hiddenGates = cell.ProjectHidden(state[0]);
        var reset = inputGates.Narrow(1, 0, h).Add(hiddenGates.Narrow(1, 0, h)).Sigmoid();
        var update = inputGates.Narrow(1, h, h).Add(hiddenGates.Narrow(1, h, h)).Sigmoid();
        var candidate = inputGates.Narrow(1, 2 * h, h).Add(reset.Mul(hiddenGates.Narrow(1, 2 * h, h))).Tanh();
        return [candidate.Add(update.Mul(state[0].Sub(candidate)))]; // (1 - z)∘n + z∘h
    }
}
