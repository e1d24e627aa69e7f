namespace Nabla.Kernels.Reference;

/// <summary>
/// The definition of every element-wise function and its derivative, one scalar at a time. This is the spec
/// the vectorised kernels are tested against; read it to learn what an op computes.
/// </summary>
public static class ScalarMath
{
    public const double SqrtHalf = 0.70710678118654752440;
    public const double SqrtTwoOverPi = 0.79788456080286535588;
    public const double InvSqrtTwoPi = 0.39894228040143267794;
    public const double GeluTanhCoefficient = 0.044715;

    /// <summary>Complementary error function, relative error below 1.2e-7 everywhere (Numerical Recipes' erfcc,
    /// a Chebyshev fit). .NET has no Math.Erf.</summary>
    public static double Erfc(double x)
    {
        double z = Math.Abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                   t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
                   t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2.0 - r;
    }

    /// <summary>Standard normal CDF Φ(x) = 0.5·erfc(-x/√2).</summary>
    public static double NormalCdf(double x) => 0.5 * Erfc(-x * SqrtHalf);

    public static float Forward(UnaryOp op, float alpha, float xf)
    {
        double x = xf;
        return op switch
        {
            UnaryOp.Neg => -xf,
            UnaryOp.Exp => (float)Math.Exp(x),
            UnaryOp.Log => (float)Math.Log(x),
            UnaryOp.Sqrt => (float)Math.Sqrt(x),
            UnaryOp.Abs => Math.Abs(xf),
            UnaryOp.Scale => xf * alpha,
            UnaryOp.Shift => xf + alpha,
            UnaryOp.PowScalar => (float)Math.Pow(x, alpha),
            UnaryOp.Relu => xf > 0 ? xf : 0f,
            UnaryOp.LeakyRelu => xf > 0 ? xf : alpha * xf,
            UnaryOp.Sigmoid => (float)(1.0 / (1.0 + Math.Exp(-x))),
            UnaryOp.Tanh => (float)Math.Tanh(x),
            UnaryOp.GeluExact => (float)(x * NormalCdf(x)),
            UnaryOp.GeluTanh => (float)(0.5 * x * (1.0 + Math.Tanh(SqrtTwoOverPi * (x + GeluTanhCoefficient * x * x * x)))),
            UnaryOp.Silu => (float)(x / (1.0 + Math.Exp(-x))),
            _ => throw new ArgumentOutOfRangeException(nameof(op)),
        };
    }

    /// <summary>dy/dx at x, where y = Forward(x).</summary>
    public static float Derivative(UnaryOp op, float alpha, float xf, float yf)
    {
        double x = xf, y = yf;
        return op switch
        {
            UnaryOp.Neg => -1f,
            UnaryOp.Exp => yf,
            UnaryOp.Log => (float)(1.0 / x),
            UnaryOp.Sqrt => (float)(0.5 / y),
            UnaryOp.Abs => xf > 0 ? 1f : xf < 0 ? -1f : 0f,
            UnaryOp.Scale => alpha,
            UnaryOp.Shift => 1f,
            UnaryOp.PowScalar => alpha == 0 ? 0f : (float)(alpha * Math.Pow(x, alpha - 1)),
            UnaryOp.Relu => xf > 0 ? 1f : 0f,
            UnaryOp.LeakyRelu => xf > 0 ? 1f : alpha,
            UnaryOp.Sigmoid => (float)(y * (1 - y)),
            UnaryOp.Tanh => (float)(1 - y * y),
            UnaryOp.GeluExact => (float)(NormalCdf(x) + x * InvSqrtTwoPi * Math.Exp(-0.5 * x * x)),
            UnaryOp.GeluTanh => GeluTanhDerivative(x),
            UnaryOp.Silu => SiluDerivative(x),
            _ => throw new ArgumentOutOfRangeException(nameof(op)),
        };
    }

    private static float GeluTanhDerivative(double x)
    {
        double u = SqrtTwoOverPi * (x + GeluTanhCoefficient * x * x * x);
        double t = Math.Tanh(u);
        double du = SqrtTwoOverPi * (1 + 3 * GeluTanhCoefficient * x * x);
        return (float)(0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du);
    }

    private static float SiluDerivative(double x)
    {
        double s = 1.0 / (1.0 + Math.Exp(-x));
        return (float)(s * (1 + x * (1 - s)));
    }

    public static float Binary(BinaryOp op, float a, float b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Pow => MathF.Pow(a, b),
        BinaryOp.Maximum => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : Math.Max(a, b),
        BinaryOp.Minimum => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : Math.Min(a, b),
        BinaryOp.Greater => a > b ? 1f : 0f,
        BinaryOp.Less => a < b ? 1f : 0f,
        BinaryOp.Equal => a == b ? 1f : 0f,
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };
}
