using System.Numerics.Tensors;

namespace Nabla.Kernels;

/// <summary>Conversions between float32 and the two 16-bit float formats, on raw 16-bit patterns. bfloat16 is the
/// top half of a float32 (same exponent range, 7 mantissa bits); float16 is IEEE binary16 (5 exponent bits, 10
/// mantissa bits). Narrowing rounds to nearest, ties to even, as PyTorch's <c>.to(torch.bfloat16)</c> and
/// <c>.half()</c> do.</summary>
public static class HalfPrecision
{
    /// <summary>bfloat16 → float32: exact (the pattern becomes the float's top 16 bits).</summary>
    public static void BFloat16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++) destination[i] = BitConverter.Int32BitsToSingle(source[i] << 16);
    }

    /// <summary>float32 → bfloat16, round to nearest even; NaN becomes the quiet NaN 0x7FC0 (c10::BFloat16's choice).</summary>
    public static void SingleToBFloat16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        CheckLengths(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++)
        {
            float x = source[i];
            if (float.IsNaN(x)) { destination[i] = 0x7FC0; continue; }
            uint bits = BitConverter.SingleToUInt32Bits(x);
            // Adding 0x7FFF plus the lowest kept bit rounds to nearest and a tie towards the even neighbour; a carry
            // out of the mantissa raises the exponent, which is right (up to infinity at the top).
            destination[i] = (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
        }
    }

    /// <summary>float16 → float32: exact.</summary>
    public static void Float16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertToSingle(System.Runtime.InteropServices.MemoryMarshal.Cast<ushort, Half>(source), destination);
    }

    /// <summary>float32 → float16, round to nearest even (beyond ±65504 to infinity).</summary>
    public static void SingleToFloat16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertToHalf(source, System.Runtime.InteropServices.MemoryMarshal.Cast<ushort, Half>(destination));
    }

    /// <summary>Widens <paramref name="source"/>, stored as <paramref name="dtype"/> (BFloat16 or Float16), to float32.</summary>
    public static void ToSingle(DType dtype, ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (dtype == DType.BFloat16) BFloat16ToSingle(source, destination);
        else if (dtype == DType.Float16) Float16ToSingle(source, destination);
        else throw new ArgumentException($"{dtype} is not a 16-bit float type.", nameof(dtype));
    }

    /// <summary>Narrows float32 values to <paramref name="dtype"/> (BFloat16 or Float16).</summary>
    public static void FromSingle(DType dtype, ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (dtype == DType.BFloat16) SingleToBFloat16(source, destination);
        else if (dtype == DType.Float16) SingleToFloat16(source, destination);
        else throw new ArgumentException($"{dtype} is not a 16-bit float type.", nameof(dtype));
    }

    private static void CheckLengths(int source, int destination)
    {
        if (source != destination) throw new ArgumentException($"{source} values to convert into {destination} places.");
    }
}
