namespace Nabla;

/// <summary>Element type of a tensor. Float32 is the compute type; Int32 carries indices (class labels,
/// token ids). BFloat16 and Float16 are storage types: a tensor of them holds half-precision values as a file
/// stored them (safetensors read with <c>keepHalfPrecision</c>), at half the memory; ops do not compute on them,
/// <see cref="Tensor.To"/> converts. Int8 is reserved for compressed storage (quantised inference).</summary>
public enum DType
{
    Float32,
    Int32,
    BFloat16,
    Int8,
    Float16,
}

public static class DTypeExtensions
{
    public static int SizeInBytes(this DType dtype) => dtype switch
    {
        DType.Float32 => 4,
        DType.Int32 => 4,
        DType.BFloat16 or DType.Float16 => 2,
        DType.Int8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>True for the two 16-bit floating-point storage types.</summary>
    public static bool IsHalfPrecision(this DType dtype) => dtype is DType.BFloat16 or DType.Float16;

    /// <summary>The dtype name used by the safetensors format.</summary>
    public static string SafetensorsName(this DType dtype) => dtype switch
    {
        DType.Float32 => "F32",
        DType.Int32 => "I32",
        DType.BFloat16 => "BF16",
        DType.Float16 => "F16",
        DType.Int8 => "I8",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };
}
