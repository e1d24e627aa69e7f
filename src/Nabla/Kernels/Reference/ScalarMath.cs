namespace Nabla.Kernels.Reference;

/// <summary>
/// Scalar definitions the element-wise specs share (the functions of one tensor are defined in their
/// <see cref="IUnaryFunction"/> structs), and the binary functions, one scalar at a time: the spec the vectorised
/// kernels are tested against.
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
