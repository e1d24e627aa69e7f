namespace Nabla.NN;

/// <summary>
/// What <see cref="RNNCell"/>, <see cref="LSTMCell"/> and <see cref="GRUCell"/> share: one time step of one layer, for
/// loops the caller writes (decoders, attention over time). PyTorch's parameters <c>weight_ih</c> (gates·hidden, in),
/// <c>weight_hh</c> (gates·hidden, hidden), <c>bias_ih</c>, <c>bias_hh</c>, initialised U(-1/√hidden, 1/√hidden); the
/// step is the layers' fused kernel run for one step (one autograd node).
/// </summary>
public abstract class RecurrentCellBase : Module
{
    public int InputSize { get; }
    public int HiddenSize { get; }
    public bool HasBias { get; }
    private protected Tensor InputWeight { get; }
    private protected Tensor HiddenWeight { get; }
    private protected Tensor? InputBias { get; }
    private protected Tensor? HiddenBias { get; }
    private readonly string _kind;

    private protected RecurrentCellBase(string kind, int gates, int inputSize, int hiddenSize, bool bias, Generator? generator)
    {
        if (inputSize <= 0 || hiddenSize <= 0)
            throw new ArgumentException($"{kind}({inputSize}, {hiddenSize}): sizes must be positive.");
        _kind = kind;
        InputSize = inputSize;
        HiddenSize = hiddenSize;
        HasBias = bias;
        InputWeight = RegisterParameter("weight_ih", Tensor.Zeros(gates * hiddenSize, inputSize));
        HiddenWeight = RegisterParameter("weight_hh", Tensor.Zeros(gates * hiddenSize, hiddenSize));
        InputBias = bias ? RegisterParameter("bias_ih", Tensor.Zeros(gates * hiddenSize)) : null;
        HiddenBias = bias ? RegisterParameter("bias_hh", Tensor.Zeros(gates * hiddenSize)) : null;
        float bound = 1f / MathF.Sqrt(hiddenSize);
        foreach (var parameter in Parameters()) Init.Uniform(parameter, -bound, bound, generator);
    }

    /// <summary>Runs one step on <paramref name="input"/> (batch, in) or (in); <paramref name="states"/> are h (and c),
    /// each (batch, hidden) or (hidden) like the input, null for zeros. Returns the new states in the input's layout.</summary>
    private protected (Tensor Hidden, Tensor? Cell) Step(RecurrentCellKind kind, Tensor input, Tensor?[] states)
    {
        bool unbatched = input.Rank == 1;
        if (input.Rank is not (1 or 2) || input.Size(-1) != InputSize)
            throw new ArgumentException($"{_kind}: input must be (batch, {InputSize}) or ({InputSize}), got {input.ShapeString}.");
        var x = unbatched ? input.Unsqueeze(0) : input;
        int batch = x.Size(0);
        string[] names = ["hx", "cx"];
        var batched = new Tensor[states.Length];
        for (int k = 0; k < states.Length; k++)
        {
            var given = states[k];
            int[] expected = unbatched ? [HiddenSize] : [batch, HiddenSize];
            if (given != null && !given.Shape.SequenceEqual(expected))
                throw new ArgumentException($"{_kind}: {names[k]} must be {Kernels.ShapeMath.Format(expected)} like the input, got {given.ShapeString}.");
            batched[k] = given == null ? Tensor.Zeros([batch, HiddenSize], x.Device) : unbatched ? given.Unsqueeze(0) : given;
        }
        var (_, hidden, cell) = FusedRecurrence.Layer(kind, x.Unsqueeze(0), InputWeight, InputBias, HiddenWeight, HiddenBias, null,
            batched[0], batched.Length > 1 ? batched[1] : null, lengths: null, reverse: false);
        return unbatched ? (hidden.Squeeze(0), cell?.Squeeze(0)) : (hidden, cell);
    }

    protected override string Describe() => $"{InputSize}, {HiddenSize}, bias={HasBias}";
}

/// <summary>One step of an Elman RNN, as torch.nn.RNNCell: h' = tanh or relu(W_ih x + b_ih + W_hh h + b_hh).</summary>
public sealed class RNNCell : RecurrentCellBase
{
    public RnnNonlinearity Nonlinearity { get; }

    public RNNCell(int inputSize, int hiddenSize, bool bias = true, RnnNonlinearity nonlinearity = RnnNonlinearity.Tanh, Generator? generator = null)
        : base("RNNCell", 1, inputSize, hiddenSize, bias, generator) => Nonlinearity = nonlinearity;

    public override Tensor Forward(Tensor input) => Forward(input, null);

    public Tensor Forward(Tensor input, Tensor? hx) =>
        Step(Nonlinearity == RnnNonlinearity.Tanh ? RecurrentCellKind.RnnTanh : RecurrentCellKind.RnnRelu, input, [hx]).Hidden;

    protected override string Describe() => base.Describe() + $", nonlinearity={Nonlinearity}";
}

/// <summary>One step of an LSTM, as torch.nn.LSTMCell (gate order i, f, g, o).</summary>
public sealed class LSTMCell : RecurrentCellBase
{
    public LSTMCell(int inputSize, int hiddenSize, bool bias = true, Generator? generator = null)
        : base("LSTMCell", 4, inputSize, hiddenSize, bias, generator) { }

    public override Tensor Forward(Tensor input) => Forward(input, null, null).Hidden;

    /// <summary>The new hidden and cell states; hx and cx may each be null (zeros).</summary>
    public (Tensor Hidden, Tensor Cell) Forward(Tensor input, Tensor? hx, Tensor? cx)
    {
        var (hidden, cell) = Step(RecurrentCellKind.Lstm, input, [hx, cx]);
        return (hidden, cell!);
    }
}

/// <summary>One step of a GRU, as torch.nn.GRUCell (gate order r, z, n).</summary>
public sealed class GRUCell : RecurrentCellBase
{
    public GRUCell(int inputSize, int hiddenSize, bool bias = true, Generator? generator = null)
        : base("GRUCell", 3, inputSize, hiddenSize, bias, generator) { }

    public override Tensor Forward(Tensor input) => Forward(input, null);

    public Tensor Forward(Tensor input, Tensor? hx) => Step(RecurrentCellKind.Gru, input, [hx]).Hidden;
}
