namespace Nabla.Kernels.Cpu;

/// <summary>An element-wise function of two operands, written once for every vector width.</summary>
public interface IBinaryFunction
{
    static abstract V Apply<V>(V a, V b) where V : struct, IVec<V>;
}

public struct AddFn : IBinaryFunction { public static V Apply<V>(V a, V b) where V : struct, IVec<V> => a + b; }
public struct SubFn : IBinaryFunction { public static V Apply<V>(V a, V b) where V : struct, IVec<V> => a - b; }
public struct MulFn : IBinaryFunction { public static V Apply<V>(V a, V b) where V : struct, IVec<V> => a * b; }
public struct DivFn : IBinaryFunction { public static V Apply<V>(V a, V b) where V : struct, IVec<V> => a / b; }
public struct MaxFn : IBinaryFunction { public static V Apply<V>(V a, V b) where V : struct, IVec<V> => V.Max(a, b); }
public struct MinFn : IBinaryFunction { public static V Apply<V>(V a, V b) where V : struct, IVec<V> => V.Min(a, b); }
public struct GreaterFn : IBinaryFunction { public static V Apply<V>(V a, V b) where V : struct, IVec<V> => V.Select(V.Greater(a, b), V.Splat(1f), V.Splat(0f)); }
public struct LessFn : IBinaryFunction { public static V Apply<V>(V a, V b) where V : struct, IVec<V> => V.Select(V.Less(a, b), V.Splat(1f), V.Splat(0f)); }
public struct EqualFn : IBinaryFunction { public static V Apply<V>(V a, V b) where V : struct, IVec<V> => V.Select(V.Equal(a, b), V.Splat(1f), V.Splat(0f)); }

/// <summary>a^b. MathF.Pow lane by lane: exact for negative bases with integer exponents, which exp(b·log a) is not.</summary>
public struct PowFn : IBinaryFunction
{
    public static unsafe V Apply<V>(V a, V b) where V : struct, IVec<V>
    {
        float* pa = stackalloc float[V.Count], pb = stackalloc float[V.Count];
        V.Store(pa, a);
        V.Store(pb, b);
        for (int i = 0; i < V.Count; i++) pa[i] = MathF.Pow(pa[i], pb[i]);
        return V.Load(pa);
    }
}
