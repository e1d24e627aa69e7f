using Nabla.Kernels;

namespace Nabla;

/// <summary>BFloat16 and Float16 tensors: storage that keeps a file's 16-bit values as they are (half the memory of
/// float32). Views (reshape, permute, slice) work on them like on any tensor; computing needs float32, which
/// <see cref="To"/> makes.</summary>
public sealed unsafe partial class Tensor
{
    /// <summary>A new contiguous BFloat16 or Float16 tensor holding the 16-bit patterns <paramref name="bits"/>
    /// (row-major, little-endian as a file stores them).</summary>
    public static Tensor FromHalfPrecisionBits(DType dtype, ushort[] bits, params int[] shape)
    {
        if (!dtype.IsHalfPrecision()) throw new ArgumentException($"FromHalfPrecisionBits: {dtype} is not BFloat16 or Float16.", nameof(dtype));
        if (shape.Length == 0) shape = [bits.Length];
        CheckCount(bits.Length, shape);
        var t = Empty(shape.ToArray(), dtype);
        bits.AsSpan().CopyTo(new Span<ushort>(t.HalfPrecisionBits, t.Count));
        return t;
    }

    /// <summary>The 16-bit patterns in row-major order (BFloat16 or Float16 tensors).</summary>
    public ushort[] ToHalfPrecisionBits()
    {
        var result = new ushort[Count];
        fixed (ushort* p = result) CopyHalfPrecisionBitsTo(p);
        return result;
    }

    /// <summary>Address of element [0, ...] of a BFloat16 or Float16 tensor, as 16-bit patterns.</summary>
    internal ushort* HalfPrecisionBits
    {
        get
        {
            if (!DType.IsHalfPrecision()) throw new InvalidOperationException($"Expected a BFloat16 or Float16 tensor, got {DType}.");
            RequireHost($"{DType} storage"); // 16-bit tensors are converted on the host
            return (ushort*)Storage.Pointer + Offset;
        }
    }

    /// <summary>Writes the 16-bit patterns in row-major order, walking any strides (views of half tensors need no
    /// float kernel).</summary>
    internal void CopyHalfPrecisionBitsTo(ushort* destination)
    {
        if (Count == 0) return;
        ushort* source = HalfPrecisionBits;
        if (IsContiguous)
            Buffer.MemoryCopy(source, destination, Count * 2L, Count * 2L);
        else
        {
            var index = new int[Rank];
            long offset = 0;
            for (int k = 0; k < Count; k++)
            {
                destination[k] = source[offset];
                for (int d = Rank - 1; d >= 0; d--)
                {
                    offset += _strides[d];
                    if (++index[d] < _shape[d]) break;
                    offset -= (long)_strides[d] * _shape[d];
                    index[d] = 0;
                }
            }
        }
        GC.KeepAlive(this);
    }

    /// <summary>This BFloat16/Float16 tensor's values as a new contiguous Float32 tensor (exact).</summary>
    private Tensor WidenHalfPrecision()
    {
        var half = Contiguous();
        var y = Empty(_shape.ToArray());
        HalfPrecision.ToSingle(DType, new ReadOnlySpan<ushort>(half.HalfPrecisionBits, Count), new Span<float>(y.Data, Count));
        GC.KeepAlive(half);
        return y;
    }

    /// <summary>This Float32 tensor's values rounded to <paramref name="dtype"/> (nearest, ties to even).</summary>
    private Tensor NarrowToHalfPrecision(DType dtype)
    {
        var source = Contiguous();
        var y = Empty(_shape.ToArray(), dtype);
        HalfPrecision.FromSingle(dtype, new ReadOnlySpan<float>(source.Data, Count), new Span<ushort>(y.HalfPrecisionBits, Count));
        GC.KeepAlive(source);
        return y;
    }
}
