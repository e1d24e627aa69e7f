namespace Nabla.NN;

/// <summary>Fully connected layer y = x·Wᵀ + b, W: (out, in). Initialised as PyTorch does:
/// W and b ~ U(-1/√in, 1/√in). Not sealed: a subclass or a wrapper module holding a Linear can replace one in a
/// model (<see cref="Module.SetSubmodule"/>).</summary>
public class Linear : Module
{
    public int InFeatures { get; }
    public int OutFeatures { get; }
    public Tensor Weight { get; }
    public Tensor? Bias { get; }

    public Linear(int inFeatures, int outFeatures, bool bias = true, Generator? generator = null)
    {
        if (inFeatures <= 0 || outFeatures <= 0) throw new ArgumentException($"Linear({inFeatures}, {outFeatures}): sizes must be positive.");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = RegisterParameter("weight", Tensor.Zeros(outFeatures, inFeatures));
        // kaiming_uniform(a=√5) as in PyTorch reduces to U(-1/√in, 1/√in)
        float bound = 1f / MathF.Sqrt(inFeatures);
        Init.Uniform(Weight, -bound, bound, generator);
        if (bias) Bias = Init.Uniform(RegisterParameter("bias", Tensor.Zeros(outFeatures)), -bound, bound, generator);
    }

    public override Tensor Forward(Tensor input) => F.Linear(input, Weight, Bias);
    protected override string Describe() => $"in_features={InFeatures}, out_features={OutFeatures}, bias={Bias != null}";
}

/// <summary>Runs its registered children "0", "1", ... one after another (replacing one with
/// <see cref="Module.SetSubmodule"/> replaces that step).</summary>
public sealed class Sequential : Module
{
    public Sequential(params Module[] layers)
    {
        foreach (var layer in layers) Add(layer);
    }

    public Sequential Add(Module layer)
    {
        RegisterModule(Count.ToString(), layer);
        return this;
    }

    public Module this[int index] => Children().ElementAt(index);
    public int Count => Children().Count();

    public override Tensor Forward(Tensor input)
    {
        foreach (var (name, layer) in NamedChildren()) input = RunChild(name, layer, input);
        return input;
    }
}

/// <summary>Returns its input: what replaces a layer that is removed, as a classifier's head when the body's features are wanted.</summary>
public sealed class Identity : Module { public override Tensor Forward(Tensor input) => input; }

public sealed class ReLU : Module { public override Tensor Forward(Tensor input) => input.Relu(); }

public sealed class LeakyReLU(float negativeSlope = 0.01f) : Module
{
    public override Tensor Forward(Tensor input) => input.LeakyRelu(negativeSlope);
    protected override string Describe() => $"negative_slope={negativeSlope}";
}

public sealed class GELU(GeluApproximation approximate = GeluApproximation.None) : Module
{
    public override Tensor Forward(Tensor input) => input.Gelu(approximate);
    protected override string Describe() => $"approximate={approximate}";
}

public sealed class SiLU : Module { public override Tensor Forward(Tensor input) => input.Silu(); }
public sealed class Sigmoid : Module { public override Tensor Forward(Tensor input) => input.Sigmoid(); }
public sealed class Tanh : Module { public override Tensor Forward(Tensor input) => input.Tanh(); }
public sealed class Softplus : Module { public override Tensor Forward(Tensor input) => input.Softplus(); }

public sealed class Softmax(int dim = -1) : Module
{
    public override Tensor Forward(Tensor input) => input.Softmax(dim);
}

/// <summary>Flattens all dimensions but the first (the batch).</summary>
public sealed class Flatten(int startDim = 1, int endDim = -1) : Module
{
    public override Tensor Forward(Tensor input) => input.Flatten(startDim, endDim);
}

/// <summary>What the dropout layers share: the probability p (checked once, here) and the random generator.</summary>
public abstract class DropoutLayer : Module
{
    public float P { get; }
    private protected readonly Generator? _generator;

    private protected DropoutLayer(float p, Generator? generator)
    {
        if (p is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(p), $"{GetType().Name} probability must be in [0, 1], got {p}.");
        P = p;
        _generator = generator;
    }

    protected override string Describe() => $"p={P}";
}

/// <summary>Randomly zeroes activations with probability p in training mode (scaling the rest by 1/(1-p)).</summary>
public sealed class Dropout(float p = 0.5f, Generator? generator = null) : DropoutLayer(p, generator)
{
    public override Tensor Forward(Tensor input) => F.Dropout(input, P, Training, _generator);
}

/// <summary>Zeroes whole channels of (N, C, H, W) feature maps with probability p in training mode (scaling the
/// rest by 1/(1-p)): see <see cref="F.Dropout2d"/>.</summary>
public sealed class Dropout2d(float p = 0.5f, Generator? generator = null) : DropoutLayer(p, generator)
{
    public override Tensor Forward(Tensor input) => F.Dropout2d(input, P, Training, _generator);
}

/// <summary>Layer normalisation over the last dimensions, with a learned scale (ones) and shift (zeros).</summary>
public sealed class LayerNorm : Module
{
    public int[] NormalizedShape { get; }
    public float Eps { get; }
    public Tensor? Weight { get; }
    public Tensor? Bias { get; }

    public LayerNorm(int normalizedSize, float eps = 1e-5f, bool elementwiseAffine = true)
        : this([normalizedSize], eps, elementwiseAffine) { }

    public LayerNorm(int[] normalizedShape, float eps = 1e-5f, bool elementwiseAffine = true)
    {
        NormalizedShape = normalizedShape.ToArray();
        Eps = eps;
        if (elementwiseAffine)
        {
            Weight = RegisterParameter("weight", Tensor.Ones(normalizedShape));
            Bias = RegisterParameter("bias", Tensor.Zeros(normalizedShape));
        }
    }

    public override Tensor Forward(Tensor input) => F.LayerNorm(input, NormalizedShape, Weight, Bias, Eps);
    protected override string Describe() => $"{Kernels.ShapeMath.Format(NormalizedShape)}, eps={Eps}";
}

/// <summary>A lookup table of learned vectors: Int32 indices of any shape in, vectors out. Initialised N(0, 1) as in PyTorch.</summary>
public sealed class Embedding : Module
{
    public int NumEmbeddings { get; }
    public int EmbeddingDim { get; }
    public Tensor Weight { get; }

    public Embedding(int numEmbeddings, int embeddingDim, Generator? generator = null)
    {
        NumEmbeddings = numEmbeddings;
        EmbeddingDim = embeddingDim;
        Weight = RegisterParameter("weight", Tensor.Zeros(numEmbeddings, embeddingDim));
        Init.Normal(Weight, 0, 1, generator);
    }

    public override Tensor Forward(Tensor input) => F.Embedding(input, Weight);
    protected override string Describe() => $"{NumEmbeddings}, {EmbeddingDim}";
}
