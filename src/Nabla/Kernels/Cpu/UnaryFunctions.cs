using System.Runtime.CompilerServices;
using Nabla.Kernels.Reference;

namespace Nabla.Kernels.Cpu;

/// <summary>An element-wise function written once for every vector width, with its derivative beside it.
/// The scalar definitions in <see cref="ScalarMath"/> are the spec these are tested against.</summary>
public interface IUnaryFunction
{
    static abstract V Forward<V>(V x, V alpha) where V : struct, IVec<V>;
    /// <summary>dy · f'(x), given x, y = f(x) and dy.</summary>
    static abstract V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>;
}

internal static class UnaryFunctions
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static V Sigmoid<V>(V x) where V : struct, IVec<V> => V.Splat(1f) / (V.Splat(1f) + V.Exp(-x));

    /// <summary>Φ(x) = 0.5·erfc(-x/√2), with the erfc of <see cref="ScalarMath.Erfc"/> (relative error &lt; 1.2e-7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static V NormalCdf<V>(V x) where V : struct, IVec<V>
    {
        var a = x * V.Splat(-(float)ScalarMath.SqrtHalf);
        var z = V.Abs(a);
        var t = V.Splat(1f) / V.Fma(V.Splat(0.5f), z, V.Splat(1f));
        var p = V.Splat(0.17087277f);
        p = V.Fma(p, t, V.Splat(-0.82215223f));
        p = V.Fma(p, t, V.Splat(1.48851587f));
        p = V.Fma(p, t, V.Splat(-1.13520398f));
        p = V.Fma(p, t, V.Splat(0.27886807f));
        p = V.Fma(p, t, V.Splat(-0.18628806f));
        p = V.Fma(p, t, V.Splat(0.09678418f));
        p = V.Fma(p, t, V.Splat(0.37409196f));
        p = V.Fma(p, t, V.Splat(1.00002368f));
        p = V.Fma(p, t, V.Splat(-1.26551223f));
        var r = t * V.Exp(p - z * z);
        var erfc = V.Select(V.Less(a, V.Splat(0f)), V.Splat(2f) - r, r);
        return V.Splat(0.5f) * erfc;
    }
}

public struct NegFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => -x;
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => -dy;
}

public struct ExpFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Exp(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy * y;
}

public struct LogFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Log(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy / x;
}

public struct SqrtFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Sqrt(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => V.Splat(0.5f) * dy / y;
}

public struct AbsFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Abs(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>
    {
        var zero = V.Splat(0f);
        return V.Select(V.Greater(x, zero), dy, V.Select(V.Less(x, zero), -dy, zero));
    }
}

public struct ScaleFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => x * alpha;
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy * alpha;
}

public struct ShiftFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => x + alpha;
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy;
}

public struct ReluFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Select(V.Greater(x, V.Splat(0f)), x, V.Select(V.Equal(x, x), V.Splat(0f), x));
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => V.Select(V.Greater(x, V.Splat(0f)), dy, V.Splat(0f));
}

public struct LeakyReluFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Select(V.Greater(x, V.Splat(0f)), x, x * alpha);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => V.Select(V.Greater(x, V.Splat(0f)), dy, dy * alpha);
}

public struct SigmoidFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => UnaryFunctions.Sigmoid(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy * y * (V.Splat(1f) - y);
}

public struct TanhFn : IUnaryFunction
{
    // Forward goes through TensorPrimitives.Tanh (accurate near 0); only the derivative is needed here.
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V>
    {
        // tanh(x) = sign(x)·(1 - 2/(exp(2|x|)+1)); used for tails only (the bulk runs in TensorPrimitives).
        var ax = V.Abs(x);
        var t = V.Splat(1f) - V.Splat(2f) / (V.Exp(ax + ax) + V.Splat(1f));
        return V.Select(V.Less(x, V.Splat(0f)), -t, t);
    }
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V> => dy * (V.Splat(1f) - y * y);
}

public struct GeluExactFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => x * UnaryFunctions.NormalCdf(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>
    {
        // d/dx x·Φ(x) = Φ(x) + x·φ(x)
        var pdf = V.Splat((float)ScalarMath.InvSqrtTwoPi) * V.Exp(V.Splat(-0.5f) * x * x);
        return dy * V.Fma(x, pdf, UnaryFunctions.NormalCdf(x));
    }
}

public struct GeluTanhFn : IUnaryFunction
{
    // 0.5·x·(1 + tanh(u)) == x·sigmoid(2u): the sigmoid form has no cancellation for large negative x.
    private static V TwoU<V>(V x) where V : struct, IVec<V>
    {
        var x3 = x * x * x;
        return V.Splat(2f * (float)ScalarMath.SqrtTwoOverPi) * V.Fma(V.Splat((float)ScalarMath.GeluTanhCoefficient), x3, x);
    }

    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => x * UnaryFunctions.Sigmoid(TwoU(x));

    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>
    {
        var s = UnaryFunctions.Sigmoid(TwoU(x));
        var du = V.Splat((float)ScalarMath.SqrtTwoOverPi) * V.Fma(V.Splat(3f * (float)ScalarMath.GeluTanhCoefficient), x * x, V.Splat(1f));
        // s + 2·x·s·(1-s)·du
        var grad = V.Fma(V.Splat(2f) * x * s * (V.Splat(1f) - s), du, s);
        return dy * grad;
    }
}

public struct SiluFn : IUnaryFunction
{
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => x * UnaryFunctions.Sigmoid(x);
    public static V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>
    {
        var s = UnaryFunctions.Sigmoid(x);
        return dy * s * V.Fma(x, V.Splat(1f) - s, V.Splat(1f));
    }
}

public struct PowScalarFn : IUnaryFunction
{
    // Bulk goes through TensorPrimitives.Pow; this is the derivative (and the forward for tails).
    public static V Forward<V>(V x, V alpha) where V : struct, IVec<V> => V.Exp(alpha * V.Log(x));
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
