using System.Runtime.CompilerServices;
using Nabla.Kernels.Reference;

namespace Nabla.Kernels.Cpu;

/// <summary>Building blocks of the vector forms of element-wise functions, for every vector width.</summary>
public static class VectorMath
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V Sigmoid<V>(V x) where V : struct, IVec<V> => V.Splat(1f) / (V.Splat(1f) + V.Exp(-x));

    /// <summary>Φ(x) = 0.5·erfc(-x/√2), with the erfc of <see cref="ScalarMath.Erfc"/> (relative error &lt; 1.2e-7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V NormalCdf<V>(V x) where V : struct, IVec<V>
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
