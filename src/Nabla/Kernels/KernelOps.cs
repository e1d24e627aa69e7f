namespace Nabla.Kernels;

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
