using Nabla.Autograd;

namespace Nabla.NN;

/// <summary>Which activation follows a layer, for the gain of <see cref="Init"/>'s Kaiming and Xavier initialisers.</summary>
public enum Nonlinearity
{
    Linear,
    Relu,
    LeakyRelu,
    Tanh,
    Sigmoid,
}

/// <summary>Whether Kaiming initialisation preserves the variance of activations (fan in) or of gradients (fan out).</summary>
public enum FanMode
{
    FanIn,
    FanOut,
}

/// <summary>Weight initialisers (PyTorch's <c>nn.init</c>), in place, drawing from a seeded <see cref="Generator"/>.</summary>
public static unsafe class Init
{
    /// <summary>(fan in, fan out) of a weight: (in, out) for (out, in) matrices; convolution weights (out, in, k...) multiply by the kernel size.</summary>
    public static (int FanIn, int FanOut) Fans(Tensor w)
    {
        if (w.Rank < 2) throw new ArgumentException($"Fan in/out needs a weight of at least 2 dimensions, got {w.ShapeString}.");
        int receptive = 1;
        for (int d = 2; d < w.Rank; d++) receptive *= w.Size(d);
        return (w.Size(1) * receptive, w.Size(0) * receptive);
    }

    public static float Gain(Nonlinearity nonlinearity, float negativeSlope = 0.01f) => nonlinearity switch
    {
        Nonlinearity.Relu => MathF.Sqrt(2f),
        Nonlinearity.LeakyRelu => MathF.Sqrt(2f / (1 + negativeSlope * negativeSlope)),
        Nonlinearity.Tanh => 5f / 3f,
        _ => 1f,
    };

    public static Tensor Uniform(Tensor t, float low, float high, Generator? generator = null) =>
        Fill(t, g => low + (high - low) * g.NextFloat(), generator);

    public static Tensor Normal(Tensor t, float mean = 0f, float std = 1f, Generator? generator = null) =>
        Fill(t, g => (float)(mean + std * g.NextNormal()), generator);

    public static Tensor Zeros(Tensor t) => Constant(t, 0f);
    public static Tensor Ones(Tensor t) => Constant(t, 1f);

    public static Tensor Constant(Tensor t, float value)
    {
        using var _ = GradMode.NoGrad();
        return t.Fill(value);
    }

    /// <summary>A (semi-)orthogonal matrix, as torch.nn.init.orthogonal_: the Q of a Gaussian matrix's QR decomposition
    /// (Gram-Schmidt in double), times <paramref name="gain"/>; rows orthonormal if rows ≤ cols, else columns. For
    /// recurrent weights: every singular value is 1, so repeated products neither shrink nor grow the state.</summary>
    public static Tensor Orthogonal(Tensor t, float gain = 1f, Generator? generator = null)
    {
        if (t.Rank != 2 || !t.IsContiguous) throw new ArgumentException($"Init.Orthogonal: needs a contiguous 2-D tensor, got {t.ShapeString}.");
        int rows = t.Size(0), cols = t.Size(1), n = Math.Max(rows, cols), k = Math.Min(rows, cols);
        var g = generator ?? Generator.Default;
        var vectors = new double[k][]; // k orthonormal vectors of length n (columns of the tall form)
        for (int i = 0; i < k; i++)
        {
            var v = new double[n];
            for (int j = 0; j < n; j++) v[j] = g.NextNormal();
            for (int pass = 0; pass < 2; pass++) // twice, for orthogonality to rounding (Kahan's "twice is enough")
                for (int p = 0; p < i; p++)
                {
                    double dot = 0;
                    for (int j = 0; j < n; j++) dot += v[j] * vectors[p][j];
                    for (int j = 0; j < n; j++) v[j] -= dot * vectors[p][j];
                }
            double norm = Math.Sqrt(v.Sum(x => x * x));
            for (int j = 0; j < n; j++) v[j] /= norm;
            vectors[i] = v;
        }
        return Write(t, span =>
        {
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    span[r * cols + c] = (float)(gain * (rows >= cols ? vectors[c][r] : vectors[r][c]));
        });
    }

    /// <summary>Glorot/Xavier uniform: U(-a, a), a = gain·sqrt(6/(fan_in + fan_out)).</summary>
    public static Tensor XavierUniform(Tensor t, float gain = 1f, Generator? generator = null)
    {
        var (fanIn, fanOut) = Fans(t);
        float a = gain * MathF.Sqrt(6f / (fanIn + fanOut));
        return Uniform(t, -a, a, generator);
    }

    /// <summary>Glorot/Xavier normal: N(0, gain²·2/(fan_in + fan_out)).</summary>
    public static Tensor XavierNormal(Tensor t, float gain = 1f, Generator? generator = null)
    {
        var (fanIn, fanOut) = Fans(t);
        return Normal(t, 0, gain * MathF.Sqrt(2f / (fanIn + fanOut)), generator);
    }

    /// <summary>He/Kaiming uniform: U(-b, b), b = gain·sqrt(3/fan).</summary>
    public static Tensor KaimingUniform(Tensor t, float negativeSlope = 0f, FanMode mode = FanMode.FanIn,
        Nonlinearity nonlinearity = Nonlinearity.LeakyRelu, Generator? generator = null)
    {
        var (fanIn, fanOut) = Fans(t);
        float bound = Gain(nonlinearity, negativeSlope) * MathF.Sqrt(3f / (mode == FanMode.FanIn ? fanIn : fanOut));
        return Uniform(t, -bound, bound, generator);
    }

    /// <summary>He/Kaiming normal: N(0, gain²/fan).</summary>
    public static Tensor KaimingNormal(Tensor t, float negativeSlope = 0f, FanMode mode = FanMode.FanIn,
        Nonlinearity nonlinearity = Nonlinearity.LeakyRelu, Generator? generator = null)
    {
        var (fanIn, fanOut) = Fans(t);
        return Normal(t, 0, Gain(nonlinearity, negativeSlope) / MathF.Sqrt(mode == FanMode.FanIn ? fanIn : fanOut), generator);
    }

    private static Tensor Fill(Tensor t, Func<Generator, float> sample, Generator? generator)
    {
        if (!t.IsContiguous) throw new ArgumentException("Initialisers need a contiguous tensor.");
        var g = generator ?? Generator.Default;
        return Write(t, span =>
        {
            for (int i = 0; i < span.Length; i++) span[i] = sample(g);
        });
    }

    private delegate void ValueWriter(Span<float> values);

    /// <summary>Lets <paramref name="write"/> set every value of the contiguous tensor <paramref name="t"/> on the host:
    /// in place for a host tensor, through a host array copied to the device otherwise.</summary>
    private static Tensor Write(Tensor t, ValueWriter write)
    {
        if (t.Device.IsCpu)
        {
            write(t.AsSpan());
            return t;
        }
        var values = new float[t.Count];
        write(values);
        t.CopyFromHost(values);
        return t;
    }
}
