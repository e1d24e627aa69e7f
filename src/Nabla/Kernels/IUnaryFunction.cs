using Nabla.Kernels.Cpu;

namespace Nabla.Kernels;

/// <summary>
/// An element-wise function of one tensor, defined once, in one struct: its spec (value and derivative in double,
/// what <see cref="Reference.ReferenceBackend"/> computes and every other form is tested against) and its vector form
/// (written once for every vector width, what <see cref="CpuBackend"/> runs). Every backend takes it as a type
/// argument — <c>Unary&lt;F&gt;</c>, <c>UnaryBackward&lt;F&gt;</c> — so a new function needs no backend edits;
/// <c>tensor.Unary&lt;F&gt;(alpha)</c> applies it with its backward. A parameter of the function (a slope, an
/// exponent) arrives as <c>alpha</c>.
/// </summary>
public interface IUnaryFunction
{
    /// <summary>Its name in the graph, in errors and in profiles.</summary>
    static abstract string Name { get; }

    /// <summary>f(x): the spec.</summary>
    static abstract double Forward(double x, double alpha);

    /// <summary>f'(x), given y = f(x) (rounded to float, as the backward receives it): the spec.</summary>
    static abstract double Derivative(double x, double y, double alpha);

    /// <summary>f over a vector.</summary>
    static abstract V Forward<V>(V x, V alpha) where V : struct, IVec<V>;

    /// <summary>dy·f'(x) over vectors, given x, y = f(x) and dy.</summary>
    static abstract V Backward<V>(V x, V y, V dy, V alpha) where V : struct, IVec<V>;

    /// <summary>A whole-span forward to run instead of the vector form where a library one is more accurate
    /// (TensorPrimitives' exp, log, tanh and pow); returns false when there is none.</summary>
    static virtual bool TryForwardSpan(ReadOnlySpan<float> x, float alpha, Span<float> y) => false;
}
