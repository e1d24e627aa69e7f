namespace Nabla.Kernels;

/// <summary>Index arithmetic shared by tensors and kernels.</summary>
public static class ShapeMath
{
    public static long Count(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        return n;
    }

    /// <summary>Row-major multi-index of a flat position.</summary>
    public static void Unravel(long flat, ReadOnlySpan<int> shape, Span<int> index)
    {
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            index[d] = (int)(flat % shape[d]);
            flat /= shape[d];
        }
    }

    public static long Offset(ReadOnlySpan<int> index, ReadOnlySpan<int> strides)
    {
        long o = 0;
        for (int d = 0; d < index.Length; d++) o += (long)index[d] * strides[d];
        return o;
    }

    public static int[] ContiguousStrides(ReadOnlySpan<int> shape)
    {
        var strides = new int[shape.Length];
        int s = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            strides[d] = s;
            s *= Math.Max(shape[d], 1);
        }
        return strides;
    }

    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}
