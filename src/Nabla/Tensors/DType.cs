namespace Nabla;

/// <summary>Element type of a tensor. Float32 is the compute type; Int32 carries indices (class labels,
/// token ids). BFloat16 and Int8 are reserved for compressed storage (quantised inference).</summary>
public enum DType
{
    Float32,
    Int32,
    BFloat16,
    Int8,
}

public static class DTypeExtensions
{
    public static int SizeInBytes(this DType dtype) => dtype switch
    {
        DType.Float32 => 4,
        DType.Int32 => 4,
        DType.BFloat16 => 2,
        DType.Int8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>The dtype name used by the safetensors format.</summary>
    public static string SafetensorsName(this DType dtype) => dtype switch
    {
        DType.Float32 => "F32",
        DType.Int32 => "I32",
        DType.BFloat16 => "BF16",
        DType.Int8 => "I8",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };
}
