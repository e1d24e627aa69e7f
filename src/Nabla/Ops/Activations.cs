using Nabla.Kernels;

namespace Nabla;

/// <summary>Which GELU: the exact one (x·Φ(x)) or GPT-2's tanh approximation.</summary>
public enum GeluApproximation
{
    None,
    Tanh,
}

// Activation functions. The math (and its derivative) is defined once in Kernels/Reference/ScalarMath.cs
// and vectorised in Kernels/Cpu/UnaryFunctions.cs; these methods only name them.
public sealed partial class Tensor
{
    public Tensor Relu() => Unary(UnaryOp.Relu);
    public Tensor LeakyRelu(float negativeSlope = 0.01f) => Unary(UnaryOp.LeakyRelu, negativeSlope);
    public Tensor Gelu(GeluApproximation approximate = GeluApproximation.None) =>
        Unary(approximate == GeluApproximation.Tanh ? UnaryOp.GeluTanh : UnaryOp.GeluExact);
    public Tensor Silu() => Unary(UnaryOp.Silu);
    public Tensor Sigmoid() => Unary(UnaryOp.Sigmoid);
    public Tensor Tanh() => Unary(UnaryOp.Tanh);
}
