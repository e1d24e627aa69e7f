using Nabla.Autograd;
using Nabla.NN;

namespace Nabla.Quantization;

/// <summary>
/// A <see cref="Linear"/> whose weight is a <see cref="QuantizedMatrix"/>: y = x·Wᵀ + b computed by
/// <see cref="QuantizedKernels"/> straight from the packed blocks. The weight and bias are frozen (the bias is a
/// buffer, not a parameter), but the input gets its gradient, grad_x = grad_y·W through the dequantised blocks
/// (<see cref="QuantizedGradientKernels"/>), so adapters below and around the layer train (QLoRA).
/// </summary>
public sealed unsafe class QuantizedLinear : Module
{
    public QuantizedMatrix Weight { get; }
    public Tensor? Bias { get; }
    public int InFeatures => Weight.Columns;
    public int OutFeatures => Weight.Rows;

    public QuantizedLinear(QuantizedMatrix weight, Tensor? bias)
    {
        if (bias != null && (bias.Rank != 1 || bias.Size(0) != weight.Rows))
            throw new ArgumentException($"A bias for {weight.Rows} outputs has shape [{weight.Rows}], got {bias.ShapeString}.");
        Weight = weight;
        if (bias != null) Bias = RegisterBuffer("bias", bias.Detach().Contiguous());
    }

    /// <summary>Quantises a linear layer's weight (its bias stays float).</summary>
    public static QuantizedLinear FromLinear(Linear linear, QuantizationFormat format, bool doubleQuantizeScales = false) =>
        new(QuantizedMatrix.Quantize(linear.Weight, format, doubleQuantizeScales), linear.Bias);

    public override Tensor Forward(Tensor input) => Apply(Weight, input, Bias);

    /// <summary>x (..., Columns) → (..., Rows) through the quantised kernels; recorded for autograd when x requires
    /// grad (the gradient goes to x alone).</summary>
    internal static Tensor Apply(QuantizedMatrix weight, Tensor input, Tensor? bias)
    {
        if (input.DType != DType.Float32 || input.Rank == 0 || input.Size(-1) != weight.Columns)
            throw new ArgumentException($"A quantised linear layer of {weight.Columns} inputs takes Float32 (..., {weight.Columns}), got {input.DType} {input.ShapeString}.");
        input.RequireHost("A quantised linear layer (its kernels run on the CPU only)");
        var x = input.Contiguous();
        int m = x.Count / weight.Columns;
        var shape = x.Shape.ToArray();
        shape[^1] = weight.Rows;
        var y = Tensor.Empty(shape);
        if (m > 0) QuantizedKernels.MatMul(weight, x.Data, m, y.Data, bias == null ? null : bias.Data);
        GC.KeepAlive(x);
        GC.KeepAlive(bias);
        return GradMode.Needed(input) ? y.Record("QuantizedLinear", [input], g => [InputGradient(weight, g, input.Shape.ToArray())]) : y;
    }

    private static Tensor InputGradient(QuantizedMatrix weight, Tensor gradOutput, int[] inputShape)
    {
        var g = gradOutput.Contiguous();
        var gradInput = Tensor.Empty(inputShape);
        int m = g.Count / weight.Rows;
        if (m > 0) QuantizedGradientKernels.InputGradient(weight, g.Data, m, gradInput.Data);
        GC.KeepAlive(g);
        return gradInput;
    }

    protected override string Describe() => $"in_features={InFeatures}, out_features={OutFeatures}, bias={Bias != null}, format={Weight.Format.Name()}";
}

/// <summary>
/// An embedding table held quantised. Looking up a token dequantises its one row; <see cref="Unembed"/> runs the
/// table as a tied output head (GPT-2's logits = x·wteᵀ) through the quantised kernels, the one place a tied
/// table is read whole.
/// </summary>
public sealed unsafe class QuantizedEmbedding : Module, ITiedEmbedding
{
    public QuantizedMatrix Weight { get; }
    public int NumEmbeddings => Weight.Rows;
    public int EmbeddingDim => Weight.Columns;

    public QuantizedEmbedding(QuantizedMatrix weight) => Weight = weight;

    public override Tensor Forward(Tensor input)
    {
        if (input.DType != DType.Int32) throw new ArgumentException($"Embedding: indices must be Int32, got {input.DType}.");
        var ids = input.Contiguous().ToIntArray();
        var y = Tensor.Empty(input.Shape.ToArray().Append(EmbeddingDim).ToArray());
        var values = new Span<float>(y.Data, y.Count);
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)NumEmbeddings) throw new ArgumentException($"Embedding: index {ids[i]} is outside the table of {NumEmbeddings} rows.");
            Weight.DequantizeRow(ids[i], values.Slice(i * EmbeddingDim, EmbeddingDim));
        }
        GC.KeepAlive(y);
        return y;
    }

    /// <summary>The tied head: x (..., dim) → logits (..., rows) = x·tableᵀ.</summary>
    public Tensor Unembed(Tensor x) => QuantizedLinear.Apply(Weight, x, null);

    protected override string Describe() => $"{NumEmbeddings}, {EmbeddingDim}, format={Weight.Format.Name()}";
}
