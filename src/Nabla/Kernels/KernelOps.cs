namespace Nabla.Kernels;

/// <summary>Element-wise functions of one tensor. Those that take a parameter read it from <c>alpha</c>.</summary>
public enum UnaryOp
{
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    /// <summary>x · alpha</summary>
    Scale,
    /// <summary>x + alpha</summary>
    Shift,
    /// <summary>x ^ alpha</summary>
    PowScalar,
    Relu,
    /// <summary>x if x &gt; 0 else alpha · x</summary>
    LeakyRelu,
    Sigmoid,
    Tanh,
    /// <summary>x · Φ(x), with the exact normal CDF.</summary>
    GeluExact,
    /// <summary>GPT-2's approximation 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))).</summary>
    GeluTanh,
    /// <summary>x · sigmoid(x) (also called swish).</summary>
    Silu,
}

/// <summary>Element-wise functions of two tensors (broadcast against each other).</summary>
public enum BinaryOp
{
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
    /// <summary>1 where a &gt; b, else 0.</summary>
    Greater,
    /// <summary>1 where a &lt; b, else 0.</summary>
    Less,
    /// <summary>1 where a == b, else 0.</summary>
    Equal,
}
