using System.Numerics.Tensors;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;

// The arithmetic element-wise functions of one tensor, each defined once (see IUnaryFunction): spec in double,
// derivative, vector form. Tensor.Neg(), Exp(), ... apply them.
namespace Nabla.Functions;

public struct Neg : IUnaryFunction
{
    public static string Name => "Neg";
    public static double Forward(double x, double alpha) => -x;
    public static double Derivative(double x, double y, double alpha) => -1;
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => -x;
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => -dy;
}

public struct Exp : IUnaryFunction
{
    public static string Name => "Exp";
    public static double Forward(double x, double alpha) => Math.Exp(x);
    public static double Derivative(double x, double y, double alpha) => y;
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Exp(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy * y;
    public static bool TryForwardSpan(ReadOnlySpan<float> x, float alpha, Span<float> y) { TensorPrimitives.Exp(x, y); return true; }
}

public struct Log : IUnaryFunction
{
    public static string Name => "Log";
    public static double Forward(double x, double alpha) => Math.Log(x);
    public static double Derivative(double x, double y, double alpha) => 1 / x;
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Log(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy / x;
    public static bool TryForwardSpan(ReadOnlySpan<float> x, float alpha, Span<float> y) { TensorPrimitives.Log(x, y); return true; }
}

public struct Sqrt : IUnaryFunction
{
    public static string Name => "Sqrt";
    public static double Forward(double x, double alpha) => Math.Sqrt(x);
    public static double Derivative(double x, double y, double alpha) => 0.5 / y;
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Sqrt(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => V.Splat(0.5f) * dy / y;
}

public struct Abs : IUnaryFunction
{
    public static string Name => "Abs";
    public static double Forward(double x, double alpha) => Math.Abs(x);
    public static double Derivative(double x, double y, double alpha) => x > 0 ? 1 : x < 0 ? -1 : 0;
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Abs(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>
    {
        var zero = V.Splat(0f);
        return V.Select(V.Greater(x, zero), dy, V.Select(V.Less(x, zero), -dy, zero));
    }
}

/// <summary>x · alpha.</summary>
public struct Scale : IUnaryFunction
{
    public static string Name => "Scale";
    public static double Forward(double x, double alpha) => x * alpha;
    public static double Derivative(double x, double y, double alpha) => alpha;
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => x * alpha;
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy * alpha;
}

/// <summary>x + alpha.</summary>
public struct Shift : IUnaryFunction
{
    public static string Name => "Shift";
    public static double Forward(double x, double alpha) => x + alpha;
    public static double Derivative(double x, double y, double alpha) => 1;
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => x + alpha;
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy;
}

/// <summary>x ^ alpha.</summary>
public struct PowScalar : IUnaryFunction
{
    public static string Name => "PowScalar";
    public static double Forward(double x, double alpha) => Math.Pow(x, alpha);
    public static double Derivative(double x, double y, double alpha) => alpha == 0 ? 0 : alpha * Math.Pow(x, alpha - 1);
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Exp(alpha * V.Log(x));
    public static bool TryForwardSpan(ReadOnlySpan<float> x, float alpha, Span<float> y) { TensorPrimitives.Pow(x, alpha, y); return true; }

    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>
    {
        // α·x^(α-1) = α·y/x where x ≠ 0; computed directly to stay finite at x = 0.
        var zero = V.Splat(0f);
        var d = alpha * V.Select(V.Equal(x, zero), PowAtZero(alpha - V.Splat(1f)), y / x);
        return V.Select(V.Equal(alpha, zero), zero, dy * d);
    }

    private static V PowAtZero<V>(V e) where V : struct, IVec<V> =>
        V.Select(V.Equal(e, V.Splat(0f)), V.Splat(1f), V.Select(V.Greater(e, V.Splat(0f)), V.Splat(0f), V.Splat(float.PositiveInfinity)));
}
